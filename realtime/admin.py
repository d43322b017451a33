"""Operators can look at stored conversations (read-only) and delete them."""

from django.contrib import admin

from realtime.models import ChatMessage, ChatSession


class ChatMessageInline(admin.TabularInline):
    model = ChatMessage
    extra = 0
    can_delete = False
    fields = (
        "role",
        "content",
        "model",
        "cancelled",
        "prompt_tokens",
        "completion_tokens",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = ("session_id", "api_key", "user", "created_at", "updated_at")
    list_select_related = ("api_key", "user")
    search_fields = ("session_id",)
    ordering = ("-updated_at",)
    readonly_fields = ("session_id", "api_key", "user", "created_at", "updated_at")
    inlines = [ChatMessageInline]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

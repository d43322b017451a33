"""ORM helpers of the WebSocket chat: conversations and their history.

Sync, keyword-only functions; consumers call them through
`database_sync_to_async`. Ownership rules (see README, "WebSocket chat"):
a conversation is owned by the API key that opened it, or by the user when the
connection was authenticated by a Django session. Another owner using the same
`session_id` gets a separate conversation, so it can never read this one.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from keys.policy import Caller
from realtime.models import ChatMessage, ChatSession


def chat_session_get_or_create(*, owner: Caller, session_id: str) -> ChatSession:
    """The owner's conversation named `session_id`, created when new."""
    if owner.api_key is not None:
        chat_session, _ = ChatSession.objects.get_or_create(
            api_key=owner.api_key, session_id=session_id
        )
    else:
        chat_session, _ = ChatSession.objects.get_or_create(user=owner.user, session_id=session_id)
    return chat_session


def chat_history_list(
    *, chat_session: ChatSession, limit: int | None = None
) -> list[dict[str, Any]]:
    """The conversation as Ollama-shaped messages, oldest first.

    With `limit`, only the latest `limit` messages (a long conversation must
    not grow the backend request without bound).
    """
    messages = ChatMessage.objects.filter(chat_session=chat_session).order_by("-id")
    if limit is not None:
        messages = messages[:limit]
    rows = list(messages.values("role", "content"))
    rows.reverse()
    return rows


@transaction.atomic
def chat_turn_save(
    *,
    chat_session: ChatSession,
    user_content: str,
    assistant_content: str,
    model: str,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cancelled: bool = False,
) -> None:
    """Store one exchange (the user's message and the answer) together.

    A turn is stored whole or not at all, so a failed generation leaves no
    unanswered message behind to be sent again with the next one.
    """
    ChatMessage.objects.bulk_create(
        [
            ChatMessage(
                chat_session=chat_session,
                role=ChatMessage.Role.USER,
                content=user_content,
                model=model,
            ),
            ChatMessage(
                chat_session=chat_session,
                role=ChatMessage.Role.ASSISTANT,
                content=assistant_content,
                model=model,
                cancelled=cancelled,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            ),
        ]
    )
    # Bumps updated_at: the admin lists recently active conversations first.
    chat_session.save(update_fields=["updated_at"])


def chat_history_clear(*, chat_session: ChatSession) -> int:
    """Forget the conversation's messages; returns how many were deleted."""
    deleted, _ = ChatMessage.objects.filter(chat_session=chat_session).delete()
    return deleted

"""Routes of the Anthropic Messages API (`/anthropic/v1/`, also under `/ollama/v1/`)."""

from rest_framework.routers import SimpleRouter

from compat import anthropic_views as views

app_name = "anthropic_compat"

router = SimpleRouter(trailing_slash=False)
router.register("messages/count_tokens", views.AnthropicCountTokensViewSet, basename="count_tokens")
router.register("messages", views.AnthropicMessageViewSet, basename="messages")

urlpatterns = router.urls

"""Routes of the OpenAI-compatible API (`/openai/v1/`)."""

from rest_framework.routers import SimpleRouter

from compat import openai_views as views
from compat import responses_views

app_name = "openai_compat"

router = SimpleRouter(trailing_slash=False)
router.register("models", views.OpenAIModelViewSet, basename="models")
router.register("chat/completions", views.OpenAIChatCompletionViewSet, basename="chat")
router.register("completions", views.OpenAICompletionViewSet, basename="completions")
router.register("embeddings", views.OpenAIEmbeddingViewSet, basename="embeddings")
router.register("responses", responses_views.ResponseViewSet, basename="responses")

urlpatterns = router.urls

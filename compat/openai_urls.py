"""Routes of the OpenAI-compatible API (`/openai/v1/`)."""

from rest_framework.routers import SimpleRouter

from compat import openai_views as views

app_name = "openai_compat"

router = SimpleRouter(trailing_slash=False)
router.register("models", views.OpenAIModelViewSet, basename="models")
router.register("chat/completions", views.OpenAIChatCompletionViewSet, basename="chat")
router.register("completions", views.OpenAICompletionViewSet, basename="completions")
router.register("embeddings", views.OpenAIEmbeddingViewSet, basename="embeddings")

urlpatterns = router.urls

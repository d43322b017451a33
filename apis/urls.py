"""Routes of the native API (`/v1/`)."""

from rest_framework.routers import SimpleRouter

from apis import views

app_name = "apis"

router = SimpleRouter(trailing_slash=False)
router.register("models", views.ModelViewSet, basename="models")
router.register("chat/completions", views.ChatCompletionViewSet, basename="chat")
router.register("embeddings", views.EmbeddingViewSet, basename="embeddings")

urlpatterns = router.urls

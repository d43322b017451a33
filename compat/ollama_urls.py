"""Routes of the Ollama-compatible API (`/ollama/`), Ollama's own paths."""

from django.urls import path, re_path

from compat import ollama_views as views

app_name = "ollama_compat"

urlpatterns = [
    path("", views.ollama_root, name="root"),
    path("api/chat", views.OllamaChatView.as_view(), name="chat"),
    path("api/generate", views.OllamaGenerateView.as_view(), name="generate"),
    path("api/embed", views.OllamaEmbedView.as_view(), name="embed"),
    path("api/embeddings", views.OllamaEmbeddingsView.as_view(), name="embeddings"),
    path("api/tags", views.OllamaTagsView.as_view(), name="tags"),
    path("api/show", views.OllamaShowView.as_view(), name="show"),
    path("api/ps", views.OllamaPsView.as_view(), name="ps"),
    path("api/version", views.OllamaVersionView.as_view(), name="version"),
    path("api/pull", views.OllamaPullView.as_view(), name="pull"),
    path("api/push", views.OllamaPushView.as_view(), name="push"),
    path("api/create", views.OllamaCreateView.as_view(), name="create"),
    path("api/delete", views.OllamaDeleteView.as_view(), name="delete"),
    path("api/copy", views.OllamaCopyView.as_view(), name="copy"),
    # Not under v1/: that is the OpenAI mirror (included before this), whose
    # unknown routes answer in the gateway's envelope like every OpenAI route.
    re_path(r"^(?!v1/)(?P<path>.+)$", views.ollama_not_found, name="not_found"),
]

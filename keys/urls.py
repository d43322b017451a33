"""Routes of the key-management API; included before `admin/` in the root URLconf."""

from django.urls import path

from keys import views

app_name = "keys"

urlpatterns = [
    path("admin/api-keys", views.ApiKeyListView.as_view(), name="api-keys"),
    path("admin/api-keys/<str:prefix>", views.ApiKeyDetailView.as_view(), name="api-key"),
    path(
        "admin/api-keys/<str:prefix>/revoke",
        views.ApiKeyRevokeView.as_view(),
        name="api-key-revoke",
    ),
]

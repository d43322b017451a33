"""Routes of the key-management API; included before `admin/` in the root URLconf."""

from django.urls import path, re_path

from keys import views

app_name = "keys"

urlpatterns = [
    path("admin/api-keys", views.ApiKeyListView.as_view(), name="api-keys"),
    path("admin/api-keys/<str:prefix>", views.ApiKeyDetailView.as_view(), name="api-key"),
    # Any prefix, the empty one included: `admin/api-keys//revoke` is this API's 404
    # (or 401) in the envelope, not the admin's HTML CSRF page.
    re_path(
        r"^admin/api-keys/(?P<prefix>[^/]*)/revoke$",
        views.ApiKeyRevokeView.as_view(),
        name="api-key-revoke",
    ),
]

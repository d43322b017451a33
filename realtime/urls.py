"""The chat page (`/`), its model list, and Django's sign-in / sign-out views."""

from django.contrib.auth import views as auth_views
from django.urls import path

from realtime import views

app_name = "realtime"

urlpatterns = [
    path("", views.chat_page, name="chat"),
    path("chat/models", views.chat_models, name="models"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="realtime/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]

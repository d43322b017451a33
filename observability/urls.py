"""The operator's admin pages (staff only), under /admin/ops/."""

from django.contrib import admin
from django.urls import path

from observability import views

app_name = "observability"

urlpatterns = [
    path("dashboard/", admin.site.admin_view(views.dashboard), name="dashboard"),
    path("dashboard/live", admin.site.admin_view(views.dashboard_live), name="dashboard_live"),
    path("broadcast/", admin.site.admin_view(views.broadcast_view), name="broadcast"),
]

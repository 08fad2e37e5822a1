from __future__ import annotations

from django.urls import path

from approvals import views

app_name = "approvals"
urlpatterns = [
    path("", views.approval_queue, name="queue"),
    path("nav-count", views.approval_nav_count, name="nav-count"),
    path("<uuid:pk>/", views.approval_detail, name="detail"),
    path("<uuid:pk>/decide", views.approval_decide, name="decide"),
]

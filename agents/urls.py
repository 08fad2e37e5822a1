from __future__ import annotations

from django.urls import path

from agents import views

app_name = "agents"
urlpatterns = [
    path("", views.agent_list, name="list"),
    path("new", views.agent_new, name="new"),
    path("<str:name>/", views.agent_detail, name="detail"),
    path("<str:name>/actions/<str:action>", views.agent_action, name="action"),
    path("<str:name>/diff", views.agent_diff, name="diff"),
    path("<str:name>/webhook-secret", views.agent_webhook_rotate, name="webhook-rotate"),
    path("<str:name>/versions/new", views.version_new, name="version-new"),
    path("<str:name>/versions/<str:version>/edit", views.version_edit, name="version-edit"),
]

from __future__ import annotations

from django.urls import path

from policies import views

app_name = "policies"
urlpatterns = [
    path("", views.policy_list, name="list"),
    path("new", views.policy_new, name="new"),
    path("dry-run", views.policy_dry_run, name="dry-run"),
    path("<uuid:pk>/", views.policy_edit, name="edit"),
    path("<uuid:pk>/enable", views.policy_toggle, {"enabled": True}, name="enable"),
    path("<uuid:pk>/disable", views.policy_toggle, {"enabled": False}, name="disable"),
    path("<uuid:pk>/delete", views.policy_delete, name="delete"),
]

"""The project's URLs: every app's pages and API under one root (``ROOT_URLCONF``)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from agents import urls as agent_urls
from console import views as console_views
from controlplane import views
from controlplane.api.docs import SchemaView, SwaggerView
from executions import urls as execution_urls
from schedules import urls as schedule_urls

admin.site.site_header = "Agent Control Plane"
admin.site.site_title = "Agent Control Plane admin"
admin.site.index_title = "Administration"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard", permanent=False), name="home"),
    path("dashboard/", console_views.dashboard, name="dashboard"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The agent pages' URLs: the registry's, and the other apps' actions on an agent.
    path(
        "agents/",
        include(
            (
                [
                    *agent_urls.urlpatterns,
                    *execution_urls.agent_page_patterns,
                    *schedule_urls.agent_page_patterns,
                ],
                agent_urls.app_name,
            )
        ),
    ),
    path("executions/", include("executions.urls")),
    path("policies/", include("policies.urls")),
    path("approvals/", include("approvals.urls")),
    path("audit/", views.audit_log, name="audit"),
    path("api-keys/", views.api_keys, name="api-keys"),
    path("api-keys/<str:prefix>/revoke", views.api_key_revoke, name="api-key-revoke"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("console.api_urls")),
    # Both for signed-in users unless PUBLIC_SCHEMA (controlplane.api.docs).
    path("api/schema/", SchemaView.as_view(), name="schema"),
    # The split view: Swagger UI's initialising script is a request of its own, not inline
    # (the Content-Security-Policy allows no inline script).
    path(
        "api/docs/",
        SwaggerView.as_view(url_name="schema", template_name="console/api_docs.html"),
        name="swagger-ui",
    ),
]

handler400 = "controlplane.views.handler400"
handler403 = "controlplane.views.handler403"
handler404 = "controlplane.views.handler404"
handler500 = "controlplane.views.handler500"

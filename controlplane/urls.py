from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from controlplane import views

admin.site.site_header = "Agent Control Plane"
admin.site.site_title = "Agent Control Plane admin"
admin.site.index_title = "Administration"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard", permanent=False), name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("agents/", include("agents.urls")),
    path("executions/", include("executions.urls")),
    path("policies/", include("policies.urls")),
    path("approvals/", include("approvals.urls")),
    path("audit/", views.audit_log, name="audit"),
    path("api-keys/", views.api_keys, name="api-keys"),
    path("api-keys/<str:prefix>/revoke", views.api_key_revoke, name="api-key-revoke"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("controlplane.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

handler400 = "controlplane.views.handler400"
handler403 = "controlplane.views.handler403"
handler404 = "controlplane.views.handler404"
handler500 = "controlplane.views.handler500"

from __future__ import annotations

from django.urls import path

from executions import views

app_name = "executions"
urlpatterns = [
    path("", views.execution_list, name="list"),
    path("<uuid:pk>/", views.execution_detail, name="detail"),
    path("<uuid:pk>/cancel", views.execution_cancel, name="cancel"),
]

# Under /agents/ (the root URLconf puts them in the agents namespace: agents:run).
agent_page_patterns = [path("<str:name>/run", views.agent_run, name="run")]

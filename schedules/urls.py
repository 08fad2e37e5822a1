from __future__ import annotations

from django.urls import path

from schedules import views

# Under /agents/ (the root URLconf puts them in the agents namespace: agents:schedule).
agent_page_patterns = [path("<str:name>/schedule", views.agent_schedule, name="schedule")]

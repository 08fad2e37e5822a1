from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from controlplane.access import actor_from_request
from controlplane.admin import ServiceErrorsAsMessages
from policies.models import Policy
from policies.services import policy_delete, policy_save, policy_snapshot


@admin.register(Policy)
class PolicyAdmin(ServiceErrorsAsMessages, admin.ModelAdmin):
    list_display = [
        "policy_name",
        "policy_type",
        "applies_to",
        "target_agent",
        "enabled",
        "priority",
    ]
    list_filter = ["policy_type", "applies_to", "enabled"]
    search_fields = ["policy_name"]
    filter_horizontal = ["target_tags"]
    autocomplete_fields = ["target_agent"]
    # Set by the service to whoever created the policy, never chosen in the form.
    readonly_fields = ["created_by", "created_at", "updated_at"]

    def save_model(self, request: HttpRequest, obj: Policy, form: Any, change: bool) -> None:
        before = policy_snapshot(Policy.objects.get(pk=obj.pk)) if change else None
        policy_save(
            actor=actor_from_request(request),
            policy=obj,
            tags=list(form.cleaned_data.get("target_tags", [])),
            before=before,
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # target tags are set by the service

    def delete_model(self, request: HttpRequest, obj: Policy) -> None:
        policy_delete(actor=actor_from_request(request), policy=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Policy]) -> None:
        for policy in queryset:
            policy_delete(actor=actor_from_request(request), policy=policy)

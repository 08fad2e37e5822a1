"""Policies in the Django admin: the rules validated per type as the API validates them,
and every write through ``policies.services`` (which decide who may, and audit)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from rest_framework.exceptions import ValidationError

from agents.selectors import agent_visible_qs
from controlplane.access import actor_from_request, can
from controlplane.admin import ServiceErrorsAsMessages
from controlplane.errors import Forbidden, ServiceError, flatten_errors
from policies import selectors, services
from policies.forms import tag_names
from policies.models import Policy
from policies.rules import validated_rules

if TYPE_CHECKING:
    from django.db.models import ForeignKey
    from django.forms import BaseFormSet

    # Django's admin and form classes take their model as a type argument only in the stubs.
    PolicyModelForm = forms.ModelForm[Policy]
    PolicyModelAdmin = admin.ModelAdmin[Policy]
else:
    PolicyModelForm = forms.ModelForm
    PolicyModelAdmin = admin.ModelAdmin


class PolicyAdminForm(PolicyModelForm):
    target_tags = forms.CharField(
        required=False, help_text="For a policy that applies to a tag: tag names, comma-separated."
    )
    rules = forms.JSONField(
        widget=forms.Textarea(attrs={"rows": 16, "cols": 90, "style": "font-family: monospace"}),
        required=False,
        initial=dict,
        help_text="The rules of the policy type, as JSON (the API's format); empty: {}.",
    )

    class Meta:
        model = Policy
        fields = [
            "policy_name",
            "policy_type",
            "applies_to",
            "target_agent",
            "target_tags",
            "rules",
            "enabled",
            "priority",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["target_tags"] = ", ".join(
                tag.name for tag in self.instance.target_tags.all()
            )

    def clean_target_tags(self) -> list[str]:
        return tag_names(self.cleaned_data["target_tags"])

    def clean(self) -> dict[str, Any]:
        cleaned = cast(dict[str, Any], super().clean())  # a Form's clean: its cleaned_data
        policy_type, rules = cleaned.get("policy_type"), cleaned.get("rules")
        if policy_type and "rules" in cleaned:
            try:
                cleaned["rules"] = validated_rules(policy_type, {} if rules is None else rules)
            except ValidationError as exc:
                for item in flatten_errors(exc.detail):
                    self.add_error("rules", f"{item['field']}: {item['message']}")
        return cleaned

    def _save_m2m(self) -> None:
        pass  # target tags are set by the service


@admin.register(Policy)
class PolicyAdmin(ServiceErrorsAsMessages, PolicyModelAdmin):
    form = PolicyAdminForm
    list_display = ["policy_name", "policy_type", "applies_to", "target", "enabled", "priority"]
    list_filter = ["policy_type", "applies_to", "enabled"]
    search_fields = ["policy_name", "target_agent__name", "target_tags__name"]
    autocomplete_fields = ["target_agent"]
    # Set by the service to whoever created the policy, never chosen in the form.
    readonly_fields = ["created_by", "created_at", "updated_at"]
    fields = [*PolicyAdminForm.Meta.fields, *readonly_fields]
    actions = ["enable_selected", "disable_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Policy]:
        try:
            return selectors.policy_list(actor=actor_from_request(request))
        except Forbidden:
            return Policy.objects.none()

    @admin.display(description="target")
    def target(self, obj: Policy) -> str:
        if obj.applies_to == Policy.Scope.AGENT:
            return obj.target_agent.name if obj.target_agent else "—"
        if obj.applies_to == Policy.Scope.TAG:
            return ", ".join(f"#{tag.name}" for tag in obj.target_tags.all())
        return "all agents"

    # The role decides which pages and buttons show; each policy is checked by the service.
    def has_view_permission(self, request: HttpRequest, obj: Policy | None = None) -> bool:
        return can(actor_from_request(request), "policies.view_policy")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can(actor_from_request(request), "policies.add_policy")

    def has_change_permission(self, request: HttpRequest, obj: Policy | None = None) -> bool:
        return can(actor_from_request(request), "policies.change_policy")

    def has_delete_permission(self, request: HttpRequest, obj: Policy | None = None) -> bool:
        return can(actor_from_request(request), "policies.delete_policy")

    def get_form(
        self, request: HttpRequest, obj: Policy | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Policy]]:
        if obj is not None and not self.has_change_permission(request, obj):
            kwargs["form"] = forms.ModelForm  # read only: no declared fields to fill in
        return super().get_form(request, obj, change, **kwargs)

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField[Any] | None:
        if db_field.name == "target_agent":
            kwargs["queryset"] = agent_visible_qs(actor=actor_from_request(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(
        self, request: HttpRequest, obj: Policy, form: forms.ModelForm[Policy], change: bool
    ) -> None:
        actor = actor_from_request(request)
        data = {name: form.cleaned_data[name] for name in PolicyAdminForm.Meta.fields}
        if change:
            policy = services.policy_update(actor=actor, policy=obj, data=data)
        else:
            policy = services.policy_create(actor=actor, data=data)
        obj.pk = policy.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def save_related(
        self,
        request: HttpRequest,
        form: forms.ModelForm[Policy],
        formsets: Iterable[BaseFormSet[Any]],
        change: bool,
    ) -> None:
        pass  # target tags are set by the service

    def delete_model(self, request: HttpRequest, obj: Policy) -> None:
        services.policy_delete(actor=actor_from_request(request), policy=obj)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:policies_policy_change", args=[object_id]))

    def get_actions(
        self, request: HttpRequest
    ) -> dict[str, tuple[Callable[..., str], str, str] | None]:
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            # Django's own deletes the rows in bulk; each policy goes through the service.
            # (The stubs type an action as returning str: it returns a response or None.)
            actions["delete_selected"] = (  # type: ignore[assignment]
                PolicyAdmin.delete_selected_policies,
                "delete_selected",
                delete_selected.short_description,  # type: ignore[attr-defined]  # by @action
            )
        return actions

    def delete_selected_policies(
        self, request: HttpRequest, queryset: QuerySet[Policy]
    ) -> HttpResponse | None:
        if not request.POST.get("post"):
            return delete_selected(self, request, queryset)  # the confirmation page
        actor = actor_from_request(request)
        for policy in queryset:
            try:
                services.policy_delete(actor=actor, policy=policy)
            except ServiceError as exc:
                self.message_user(request, f"{policy.policy_name}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"Deleted {policy.policy_name}.", messages.SUCCESS)
        return None

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Policy], on: bool) -> None:
        actor = actor_from_request(request)
        for policy in queryset:
            try:
                services.policy_set_enabled(actor=actor, policy=policy, enabled=on)
            except ServiceError as exc:
                self.message_user(request, f"{policy.policy_name}: {exc.message}", messages.ERROR)
            else:
                state = "enabled" if on else "disabled"
                self.message_user(request, f"{policy.policy_name} is {state}.", messages.SUCCESS)

    @admin.action(description="Enable selected policies", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[Policy]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected policies", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[Policy]) -> None:
        self._set_enabled(request, queryset, False)

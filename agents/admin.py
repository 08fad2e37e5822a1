"""The registry in the Django admin: the same rules and services as the API and console.

Operators see only the agents they may see (object permissions, granted by the agent's owner
or an admin on django-guardian's "Object permissions" page); lifecycle moves are admin actions
that call ``agents.services``; a version that has left draft is read-only; delete is the soft
delete.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.html import format_html
from guardian.admin import (
    AdminGroupObjectPermissionsForm,
    AdminUserObjectPermissionsForm,
    GuardedModelAdmin,
)
from rest_framework.exceptions import ValidationError

from agents import access, selectors, services
from agents.config import validate_name, validate_semver, validated_config
from agents.models import Agent, AgentVersion, Tag
from controlplane.access import actor_from_request, can
from controlplane.admin import ServiceErrorsAsMessages
from controlplane.errors import ServiceError, flatten_errors
from controlplane.hooks import Registry

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups
    from django.db.models import ForeignKey
    from django.forms import BaseFormSet
    from rest_framework.exceptions import ErrorDetail

    # Django's admin and form classes take their model as a type argument only in the stubs.
    AgentModelForm = forms.ModelForm[Agent]
    VersionModelForm = forms.ModelForm[AgentVersion]
    VersionInlineAdmin = admin.TabularInline[AgentVersion, Agent]
    VersionModelAdmin = admin.ModelAdmin[AgentVersion]
    # An admin action of the agent list.
    LifecycleAction = Callable[["AgentAdmin", HttpRequest, QuerySet[Agent]], None]
else:
    AgentModelForm = VersionModelForm = forms.ModelForm
    VersionInlineAdmin = admin.TabularInline
    VersionModelAdmin = admin.ModelAdmin

DEFAULT_CONFIG = {
    "runtime": "llm",
    "llm": {"provider": "simulated", "system_prompt": "You are a helpful agent."},
    "capabilities": {"read": True, "write": False, "notify": False, "execute": False},
}


def _json_field(**kwargs: Any) -> forms.JSONField:
    return forms.JSONField(
        widget=forms.Textarea(attrs={"rows": 20, "cols": 100, "style": "font-family: monospace"}),
        **kwargs,
    )


def _drf_to_form_errors(form: forms.Form, field: str, exc: ValidationError) -> None:
    for item in flatten_errors(exc.detail):
        form.add_error(
            field, f"{item['field']}: {item['message']}" if item["field"] else item["message"]
        )


class VersionFieldsMixin:
    """A version string and a whole config, checked as the API checks them."""

    cleaned_data: dict[str, Any]

    def clean_version(self) -> str:
        return _drf_validate(validate_semver, self.cleaned_data["version"])

    def clean_config(self) -> dict[str, Any]:
        try:
            return validated_config(self.cleaned_data["config"])
        except ValidationError as exc:
            _drf_to_form_errors(self, "config", exc)  # type: ignore[arg-type]
            raise forms.ValidationError("The config is not valid.") from None


class AgentAddForm(VersionFieldsMixin, AgentModelForm):
    version = forms.CharField(max_length=50, initial="1.0.0")
    config = _json_field(initial=DEFAULT_CONFIG, help_text="The first version's config (JSON).")

    class Meta:
        model = Agent
        fields = ["name", "description", "owner_email", "team", "tags"]

    def clean_name(self) -> str:
        return _drf_validate(validate_name, self.cleaned_data["name"])


def _drf_validate(validator: Callable[[str], str], value: str) -> str:
    try:
        return validator(value)
    except ValidationError as exc:
        # Raised with one message: its detail is a list of one.
        raise forms.ValidationError(str(cast("list[ErrorDetail]", exc.detail)[0])) from None


def _access_form(base: type[forms.Form], request: HttpRequest, holder: str) -> type[forms.Form]:
    """guardian's form, saving through ``agents.services.agent_access_set`` (audited)."""
    actor = actor_from_request(request)

    class AccessForm(base):  # type: ignore[valid-type,misc]
        def save_obj_perms(self) -> None:
            access.agent_access_set(
                actor=actor,
                agent=self.obj,
                perms=list(self.cleaned_data[self.get_obj_perms_field_name()]),
                **{holder: getattr(self, holder)},
            )

    return AccessForm


class AgentVersionInline(VersionInlineAdmin):
    model = AgentVersion
    fk_name = "agent"
    fields = ["version", "stage", "changelog", "config_hash", "created_by", "created_at"]
    readonly_fields = cast(list[str], fields)  # names only (the stubs allow groups in fields)
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        return False


def _lifecycle_action(name: str, label: str) -> LifecycleAction:
    def run(modeladmin: AgentAdmin, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        actor = actor_from_request(request)
        for agent in queryset:
            try:
                if name == "promote":
                    version = services.agent_version_promote(actor=actor, agent=agent)
                    done = f"{agent.name}: {version.version} is now {version.stage}"
                elif name == "rollback":
                    version = services.agent_rollback(actor=actor, agent=agent)
                    done = f"{agent.name}: rolled back to {version.version}"
                else:
                    agent = services.agent_transition(actor=actor, agent=agent, action=name)
                    done = f"{agent.name} is now {agent.status}"
                modeladmin.message_user(request, done, messages.SUCCESS)
            except ServiceError as exc:
                modeladmin.message_user(request, f"{agent.name}: {exc.message}", messages.ERROR)

    run.__name__ = f"action_{name}"
    run.short_description = label  # type: ignore[attr-defined]
    run.allowed_permissions = ("change",)  # type: ignore[attr-defined]
    return run


# Admin actions other apps add to the agent list (the executions app's "Run selected
# agents"), registered when their admin module loads.
agent_admin_actions: Registry[Callable[..., None]] = Registry("agents.agent_admin_actions")


# guardian declares change_form_template a str, the admin's stubs a template or a list of them.
@admin.register(Agent)
class AgentAdmin(ServiceErrorsAsMessages, GuardedModelAdmin):  # type: ignore[misc]
    list_display = [
        "name",
        "status",
        "production_version",
        "staging_version",
        "owner_email",
        "team",
        "updated_at",
    ]
    # Only the teams and tags of agents the user may see are offered as filters.
    list_filter = [
        "status",
        ("team", admin.RelatedOnlyFieldListFilter),
        ("tags", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["name", "description", "owner_email"]
    inlines = [AgentVersionInline]
    readonly_fields = [
        "id",
        "status",
        "production_version",
        "staging_version",
        "owner",
        "created_by",
        "created_at",
        "updated_at",
        "archived_at",
    ]
    fields = [
        "id",
        "name",
        "description",
        "owner_email",
        "team",
        "tags",
        "status",
        "production_version",
        "staging_version",
        "owner",
        "created_by",
        "created_at",
        "updated_at",
        "archived_at",
    ]
    filter_horizontal = ["tags"]
    lifecycle_actions = [
        _lifecycle_action("activate", "Activate selected agents"),
        _lifecycle_action("pause", "Pause selected agents"),
        _lifecycle_action("deprecate", "Deprecate selected agents"),
        _lifecycle_action("promote", "Promote (staging → production, else newest draft → staging)"),
        _lifecycle_action("rollback", "Roll back production to the previous version"),
        _lifecycle_action("archive", "Delete (archive) selected agents"),
    ]

    # Read when a list page is shown: the actions other apps registered by then are offered.
    @property
    def actions(self) -> list[Callable[..., None]]:  # type: ignore[override]  # read-only here
        return [*self.lifecycle_actions, *agent_admin_actions]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        # The version columns print "agent@version": without their agent, a query per row.
        return selectors.agent_list(actor=actor_from_request(request)).select_related(
            "production_version__agent", "staging_version__agent"
        )

    def get_form(
        self, request: HttpRequest, obj: Agent | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Agent]]:
        if obj is None:
            kwargs["form"] = AgentAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Agent | None = None) -> _FieldGroups:
        if obj is None:
            return [*AgentAddForm.Meta.fields, "version", "config"]
        return self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Agent | None = None) -> list[str]:
        if obj is None:
            return []
        return [*self.readonly_fields, "name"]

    def has_change_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        return can(actor_from_request(request), "agents.change_agent", obj)

    def has_view_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        return can(actor_from_request(request), "agents.view_agent", obj)

    def has_delete_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        return False  # deleting is the soft delete: the "archive" action

    def has_execute_permission(self, request: HttpRequest) -> bool:
        """Offers the "Run" action to roles that may run agents (each agent is checked by
        the service)."""
        return can(actor_from_request(request), "agents.execute_agent")

    # django-guardian's "Object permissions" pages only ask for the model's change
    # permission, so a team member could grant themselves (or anyone) the owner's rights.
    # Sharing is the owner's right: it takes the right to archive the agent.
    def _require_owner_rights(self, request: HttpRequest, object_pk: str) -> None:
        agent = self.get_object(request, unquote(object_pk))
        if agent is None:
            raise Http404("No such agent.")  # not visible, or not an agent id at all
        if not can(actor_from_request(request), "agents.delete_agent", agent):
            raise PermissionDenied

    def get_obj_perms_manage_user_form(self, request: HttpRequest) -> type[forms.Form]:
        return _access_form(AdminUserObjectPermissionsForm, request, "user")

    def get_obj_perms_manage_group_form(self, request: HttpRequest) -> type[forms.Form]:
        return _access_form(AdminGroupObjectPermissionsForm, request, "group")

    # guardian's views are not annotated: what they return is a page (or a redirect).
    def obj_perms_manage_view(self, request: HttpRequest, object_pk: str) -> HttpResponse:
        self._require_owner_rights(request, object_pk)
        response: HttpResponse = super().obj_perms_manage_view(  # type: ignore[no-untyped-call]
            request, object_pk
        )
        return response

    def obj_perms_manage_user_view(
        self, request: HttpRequest, object_pk: str, user_id: int
    ) -> HttpResponse:
        self._require_owner_rights(request, object_pk)
        response: HttpResponse = super().obj_perms_manage_user_view(  # type: ignore[no-untyped-call]
            request, object_pk, user_id
        )
        return response

    def obj_perms_manage_group_view(
        self, request: HttpRequest, object_pk: str, group_id: int
    ) -> HttpResponse:
        self._require_owner_rights(request, object_pk)
        response: HttpResponse = super().obj_perms_manage_group_view(  # type: ignore[no-untyped-call]
            request, object_pk, group_id
        )
        return response

    def save_model(
        self, request: HttpRequest, obj: Agent, form: forms.ModelForm[Agent], change: bool
    ) -> None:
        actor = actor_from_request(request)
        data = form.cleaned_data
        fields = {
            "description": data["description"],
            "owner_email": data["owner_email"],
            "team": data["team"].name if data.get("team") else None,
            "tags": [tag.name for tag in data["tags"]],
        }
        if change:
            services.agent_update(actor=actor, agent=obj, data=fields)
            return
        agent, _ = services.agent_create(
            actor=actor,
            data={
                "name": data["name"],
                "version": data["version"],
                "config": data["config"],
                **fields,
            },
        )
        obj.pk = agent.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def save_related(
        self,
        request: HttpRequest,
        form: forms.ModelForm[Agent],
        formsets: Iterable[BaseFormSet[Any]],
        change: bool,
    ) -> None:
        pass  # tags and team are set by the service; versions change through their own admin

    def construct_change_message(
        self,
        request: HttpRequest,
        form: forms.Form,
        formsets: Iterable[BaseFormSet[Any]],
        add: bool = False,
    ) -> list[dict[str, dict[str, list[str]]]]:
        # The read-only version inline is never saved, so its formsets have no saved
        # objects to report (Django's default reads ``formset.new_objects`` and fails).
        return super().construct_change_message(request, form, [], add)


class AgentVersionForm(VersionFieldsMixin, VersionModelForm):
    config = _json_field()

    class Meta:
        model = AgentVersion
        fields = ["agent", "version", "changelog", "config"]


@admin.register(AgentVersion)
class AgentVersionAdmin(ServiceErrorsAsMessages, VersionModelAdmin):
    form = AgentVersionForm
    list_display = ["__str__", "stage", "config_hash", "created_by", "created_at"]
    list_filter = ["stage"]
    search_fields = ["agent__name", "version", "changelog"]
    readonly_fields = [
        "stage",
        "config_hash",
        "previous_production",
        "created_by",
        "created_at",
        "updated_at",
        "stage_changed_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AgentVersion]:
        visible = selectors.agent_visible_qs(actor=actor_from_request(request))
        return AgentVersion.objects.filter(agent__in=visible).select_related("agent", "created_by")

    def get_readonly_fields(
        self, request: HttpRequest, obj: AgentVersion | None = None
    ) -> list[str]:
        if obj is None:
            return self.readonly_fields
        if not obj.is_editable:
            return ["agent", "version", "changelog", "pretty_config", *self.readonly_fields]
        return ["agent", "version", *self.readonly_fields]

    def get_fields(self, request: HttpRequest, obj: AgentVersion | None = None) -> _FieldGroups:
        if obj is not None and not obj.is_editable:
            return ["agent", "version", "changelog", "pretty_config", *self.readonly_fields]
        return ["agent", "version", "changelog", "config", *self.readonly_fields]

    @admin.display(description="config")
    def pretty_config(self, obj: AgentVersion) -> str:

        return format_html("<pre>{}</pre>", json.dumps(obj.config, indent=2, sort_keys=True))

    def has_change_permission(self, request: HttpRequest, obj: AgentVersion | None = None) -> bool:
        actor = actor_from_request(request)
        if obj is None:
            return can(actor, "agents.change_agent")
        return obj.is_editable and can(actor, "agents.change_agent", obj.agent)

    def has_view_permission(self, request: HttpRequest, obj: AgentVersion | None = None) -> bool:
        return can(actor_from_request(request), "agents.view_agent", obj.agent if obj else None)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can(actor_from_request(request), "agents.change_agent")

    def has_delete_permission(self, request: HttpRequest, obj: AgentVersion | None = None) -> bool:
        return False

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField[Any] | None:
        if db_field.name == "agent":
            kwargs["queryset"] = selectors.agent_visible_qs(
                actor=actor_from_request(request), perm="agents.change_agent"
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(
        self,
        request: HttpRequest,
        obj: AgentVersion,
        form: forms.ModelForm[AgentVersion],
        change: bool,
    ) -> None:
        actor = actor_from_request(request)
        data = form.cleaned_data
        if change:
            services.agent_version_update(
                actor=actor, version=obj, config=data["config"], changelog=data["changelog"]
            )
            obj.refresh_from_db()
            return
        created = services.agent_version_create(
            actor=actor,
            agent=data["agent"],
            version=data["version"],
            config=data["config"],
            changelog=data["changelog"],
        )
        obj.pk = created.pk
        obj._state.adding = False
        obj.refresh_from_db()


admin.site.register(Tag)

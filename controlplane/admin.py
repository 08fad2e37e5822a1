from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as LibraryAPIKey

from controlplane import services
from controlplane.access import actor_from_request, actor_is_admin, can
from controlplane.errors import ServiceError
from controlplane.models import APIKey, AuditEvent
from controlplane.selectors import api_key_list, api_key_roles_for, audit_event_list

if TYPE_CHECKING:
    from django.db.models import Field as ModelField
    from django.db.models import ForeignKey, Model
    from django.forms import ModelChoiceField, TypedChoiceField

    # The admin's classes are generic only for the type checker (not subscriptable at run
    # time); these bases serve any model.
    _ModelAdmin = admin.ModelAdmin[Any]
    _TabularInline = admin.TabularInline[Any, Any]
else:
    _ModelAdmin = admin.ModelAdmin
    _TabularInline = admin.TabularInline


class ServiceErrorsAsMessages:
    """A service refusing an admin save (a rule the form could not know) becomes an error
    message on the same form, not a 500. The admin's transaction is rolled back."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response: HttpResponse = super().changeform_view(request, *args, **kwargs)  # type: ignore[misc]
            return response
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())


class ReadOnlyAdmin(_ModelAdmin):
    """A record the admin shows and never adds, changes or deletes (the services write it)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyInline(_TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "seq",
        "created_at",
        "actor_label",
        "action",
        "target_type",
        "target_repr",
        "ip",
    ]
    list_filter = ["action", "actor_type", "target_type"]
    search_fields = ["actor_label", "action", "target_id", "target_repr", "request_id"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in AuditEvent._meta.fields]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return audit_event_list(actor=actor_from_request(request))


admin.site.unregister(LibraryAPIKey)  # the library's own concrete model is unused


# The library's admin declares its options as tuples of its own columns, and narrows Django's
# signatures to its abstract model: this admin's differ, as Django allows (the ignores below).
@admin.register(APIKey)
class APIKeyAdmin(ServiceErrorsAsMessages, APIKeyModelAdmin):
    list_display = [  # type: ignore[assignment]
        "prefix",
        "name",
        "owner",
        "role",
        "created",
        "expiry_date",
        "last_used_at",
        "revoked",
    ]
    list_filter = ["role", "revoked"]  # type: ignore[assignment]
    search_fields = ["name", "prefix", "owner__username"]  # type: ignore[assignment]
    actions = ["revoke_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[APIKey]:
        return api_key_list(actor=actor_from_request(request))

    # A list of names is one of Django's field groups; a list is invariant, so mypy says no.
    def get_fields(self, request: HttpRequest, obj: APIKey | None = None) -> list[str]:  # type: ignore[override]
        if obj is None:
            return ["name", "owner", "role", "expiry_date"]
        return [*self.list_display, "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: APIKey | None = None) -> list[str]:  # type: ignore[override]
        return [] if obj is None else self.get_fields(request, obj)

    # Only an admin may create a key for someone else, and a key never has a role its owner
    # lacks: offer only what the service would accept (and list no one else's username).
    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        if db_field.name == "owner" and not actor_is_admin(actor_from_request(request)):
            user = cast(User, request.user)  # the admin serves signed-in staff only
            kwargs["queryset"] = User.objects.filter(pk=user.pk)
            kwargs["initial"] = user.pk
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_choice_field(
        self, db_field: ModelField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> TypedChoiceField | None:
        if db_field.name == "role":
            roles = api_key_roles_for(actor=actor_from_request(request))
            kwargs["choices"] = [("", "---------"), *((role.value, role.label) for role in roles)]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: APIKey | None = None) -> bool:
        return False  # revoke instead: the audit log keeps referring to the key

    def save_model(self, request: HttpRequest, obj: APIKey, form: Any, change: bool) -> None:  # type: ignore[override]
        if change:
            return  # keys are immutable; revoking is an action
        key, secret = services.api_key_create(
            actor=actor_from_request(request),
            name=obj.name,
            role=obj.role,
            owner=obj.owner,
            expiry_date=obj.expiry_date,
        )
        obj.pk, obj.prefix, obj.hashed_key, obj.created = (
            key.pk,
            key.prefix,
            key.hashed_key,
            key.created,
        )
        obj._state.adding = False
        self.message_user(
            request,
            f"The API key for {key.name} is: {secret} — store it now: it is not shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[APIKey]) -> None:
        actor = actor_from_request(request)
        for key in queryset:
            try:
                services.api_key_revoke(actor=actor, key=key)
                self.message_user(request, f"Revoked {key.prefix} ({key.name}).", messages.SUCCESS)
            except ServiceError as exc:
                self.message_user(request, f"{key.prefix}: {exc.message}", messages.ERROR)

    def has_change_permission(self, request: HttpRequest, obj: APIKey | None = None) -> bool:
        return can(actor_from_request(request), "controlplane.change_apikey")

"""Credentials in the Django admin: the secret is write-only.

The secret field is a JSON textarea that never renders a value — not the stored secret, and
not what was just typed when the form comes back with an error. Left empty on an edit it
keeps the stored secret. Saving and deleting go through ``integrations.vault`` (encrypted,
permission-checked, audited without the secret).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from controlplane.access import actor_from_request, can
from controlplane.admin import ServiceErrorsAsMessages
from integrations.models import Credential
from integrations.vault import credential_delete, credential_save

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups

    # Generic in the stubs only: Django's classes take no type arguments at run time.
    CredentialModelForm = forms.ModelForm[Credential]
    CredentialModelAdmin = admin.ModelAdmin[Credential]
else:
    CredentialModelForm = forms.ModelForm
    CredentialModelAdmin = admin.ModelAdmin

MONOSPACE = {"rows": 6, "cols": 80, "style": "font-family: monospace"}


class SecretTextarea(forms.Textarea):
    """A textarea that renders empty, always (like ``PasswordInput(render_value=False)``)."""

    def format_value(self, value: Any) -> None:
        return None


class CredentialForm(CredentialModelForm):
    secret = forms.JSONField(
        required=False,
        widget=SecretTextarea(attrs={**MONOSPACE, "autocomplete": "off"}),
        help_text='A JSON object, e.g. {"token": "xoxb-…"}. Never shown again after saving; '
        "leave empty to keep the stored secret.",
    )
    config = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs=MONOSPACE),
        help_text='What is not secret, as a JSON object, e.g. {"base_url": "https://…"}.',
    )

    class Meta:
        model = Credential
        fields = ["name", "kind", "description", "config"]

    def clean_secret(self) -> dict[str, Any] | None:
        value = self.cleaned_data.get("secret")
        if value in (None, "", {}):
            if self.instance._state.adding:
                raise forms.ValidationError("A new credential needs its secret.")
            return None  # keep the stored one
        if not isinstance(value, dict):
            raise forms.ValidationError("The secret must be a JSON object.")
        return value

    def clean_config(self) -> dict[str, Any]:
        value = self.cleaned_data.get("config")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("The config must be a JSON object.")
        return value


@admin.register(Credential)
class CredentialAdmin(ServiceErrorsAsMessages, CredentialModelAdmin):
    form = CredentialForm
    list_display = ["name", "kind", "last_used_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]
    audit_fields = ["created_by", "created_at", "updated_at", "last_used_at"]

    def get_fields(self, request: HttpRequest, obj: Credential | None = None) -> _FieldGroups:
        fields: _FieldGroups = ["name", "kind", "description", "secret", "config"]
        return fields if obj is None else [*fields, *self.audit_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Credential | None = None) -> list[str]:
        # The name is how agents' tool configs refer to it: renaming would break them.
        return [] if obj is None else ["name", *self.audit_fields]

    def _may(self, request: HttpRequest, action: str) -> bool:
        return can(actor_from_request(request), f"integrations.{action}_credential")

    def has_view_permission(self, request: HttpRequest, obj: Credential | None = None) -> bool:
        return self._may(request, "view") or self._may(request, "change")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "add")

    def has_change_permission(self, request: HttpRequest, obj: Credential | None = None) -> bool:
        return self._may(request, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Credential | None = None) -> bool:
        return self._may(request, "delete")

    def save_model(
        self, request: HttpRequest, obj: Credential, form: CredentialForm, change: bool
    ) -> None:
        saved = credential_save(
            actor=actor_from_request(request),
            name=obj.name,
            kind=form.cleaned_data["kind"],
            secret=form.cleaned_data.get("secret"),
            config=form.cleaned_data.get("config") or {},
            description=form.cleaned_data.get("description", ""),
        )
        # The admin goes on with ``obj`` (messages, log entry, redirect): make it the row.
        obj.pk = saved.pk
        obj.ciphertext = saved.ciphertext
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: Credential) -> None:
        credential_delete(actor=actor_from_request(request), credential=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        actor = actor_from_request(request)
        for credential in queryset:
            credential_delete(actor=actor, credential=credential)

from __future__ import annotations

from typing import Any

from django import forms


class APIKeyForm(forms.Form):
    name = forms.CharField(max_length=50, help_text="What the key is for, e.g. ci-deploy.")
    role = forms.ChoiceField(help_text="The key never has more rights than this role.")
    expiry_date = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional, in UTC. After this moment the key is refused.",
    )

    def __init__(self, *args: Any, roles: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(role.value, role.label) for role in roles]

"""API key authentication: ``Authorization: Api-Key <key>`` or ``Authorization: Bearer <key>``."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from controlplane.models import APIKey

if TYPE_CHECKING:
    from django.contrib.auth.models import User

KEYWORDS = ("api-key", "bearer")
# last_used_at is refreshed at most this often, so that a busy key doesn't write on every call.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class APIKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, APIKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        keyword, _, key = header.partition(" ")
        if keyword.lower() not in KEYWORDS:
            return None  # not ours: session authentication may still apply
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("No API key after the Authorization keyword.")
        if len(key) > 200 or not key.isprintable():
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        try:
            api_key = APIKey.objects.get_from_key(key)
        except APIKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from None
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        if not api_key.owner.is_active:
            raise exceptions.AuthenticationFailed("The owner of this API key is inactive.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            APIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return api_key.owner, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Api-Key realm="api"'

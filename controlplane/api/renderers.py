"""The API's JSON renderer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import renderers


class _ASCIIJSONRenderer(renderers.JSONRenderer):
    ensure_ascii = True


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer (UTF-8), except that a value holding text UTF-8 cannot encode
    (a lone surrogate in a row stored before the edge refused such input) is written with
    ``\\u`` escapes instead of failing the read with a 500."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return _ASCIIJSONRenderer().render(data, accepted_media_type, renderer_context)

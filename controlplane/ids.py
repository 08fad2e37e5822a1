"""Ids from the outside world (a URL, a query string) read as UUIDs, or not at all.

``parse_uuid`` answers the UUID the text spells (32 hexadecimal digits, with or without the
canonical hyphens, either case) and ``None`` for anything else: ``"0" * 36``, ``"abc"``,
control characters. Callers turn ``None`` into their own "not found" (``NotFound`` with the
resource's code), so a malformed id is 404 like an unknown one and never reaches the
database, where Django's ``UUIDField`` would raise ``ValidationError`` (a 500).
"""

from __future__ import annotations

import re
import uuid

_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}")


def parse_uuid(value: object) -> uuid.UUID | None:
    """The UUID ``value`` is or spells, else ``None``."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        return None
    return uuid.UUID(value)

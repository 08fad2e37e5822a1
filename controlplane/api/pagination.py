"""The API's two paginations, strict about what they are asked.

``page`` and ``page_size`` are whole numbers of at least 1; anything else (``0``, ``-1``,
``abc``) is a 400 ``validation_error`` naming the parameter (an empty value counts as not
given). A ``page_size`` above ``MAX_PAGE_SIZE`` (200) is clamped to it. A page past the
last one is 404 ``not_found`` ("Invalid page."), as DRF answers. A cursor that was not
made by the API (not decodable, or pointing nowhere) is a 400 ``validation_error`` on
``cursor``.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination, PageNumberPagination
from rest_framework.request import Request

from controlplane.errors import Invalid

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
_DIGITS = 18


def positive_int(request: Request, name: str) -> int | None:
    """The query parameter ``name`` as a whole number ≥ 1; ``None`` when absent or empty;
    ``Invalid`` (400, naming the parameter) otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    # isdecimal() alone would take other scripts' digits; int() would take "+1", " 1", "1_0".
    digits = raw.lstrip("0") if raw.isascii() and raw.isdecimal() else ""
    if not digits:  # not digits, or zero
        raise Invalid.field(name, "A whole number of at least 1.", "invalid")
    # Past 18 digits every number is past the last page and above the largest page size
    # (and Python refuses to read numbers of thousands of digits).
    return int(digits) if len(digits) <= _DIGITS else 10**_DIGITS


PAGE_SIZE_DESCRIPTION = (
    f"Results per page: a whole number of at least 1 (default {DEFAULT_PAGE_SIZE}; "
    f"above {MAX_PAGE_SIZE} counts as {MAX_PAGE_SIZE}). Anything else is 400."
)


def page_size(request: Request, name: str) -> int:
    """``page_size``: the default when not given, at most ``MAX_PAGE_SIZE`` (clamped)."""
    size = positive_int(request, name)
    return DEFAULT_PAGE_SIZE if size is None else min(size, MAX_PAGE_SIZE)


class PagePagination(PageNumberPagination):
    """``?page=N&page_size=M`` (at most 200); answers {count, next, previous, results}."""

    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    page_size_query_description = PAGE_SIZE_DESCRIPTION
    max_page_size = MAX_PAGE_SIZE

    page_query_description = (
        "Page number: a whole number of at least 1 (anything else is 400; past the last page: 404)."
    )
    last_page_strings = ()  # ``page`` is a number, nothing else

    def get_page_size(self, request: Request) -> int:
        return page_size(request, self.page_size_query_param)

    def get_page_number(self, request: Request, paginator: Paginator[Any]) -> int:
        number = positive_int(request, self.page_query_param)
        return 1 if number is None else number


class NewestFirstCursorPagination(CursorPagination):
    """Stable pages over a table that keeps growing: ``?cursor=...&page_size=M``."""

    ordering = ("-created_at", "-id")
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    page_size_query_description = PAGE_SIZE_DESCRIPTION
    max_page_size = MAX_PAGE_SIZE
    cursor_query_description = (
        "The `next` or `previous` link's cursor, as the API gave it (anything else is 400)."
    )

    def get_page_size(self, request: Request) -> int:
        return page_size(request, self.page_size_query_param)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            cursor = None
            valid = False
        else:
            # The position is compared with created_at: a string that is no date would fail
            # in the database.
            valid = cursor is None or cursor.position is None or _is_datetime(str(cursor.position))
        if not valid:
            raise Invalid.field(self.cursor_query_param, "Not a cursor this API gave.", "invalid")
        return cursor


def _is_datetime(value: str) -> bool:
    try:
        return parse_datetime(value) is not None
    except ValueError:  # well formed but impossible, e.g. month 13
        return False

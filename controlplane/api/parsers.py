from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from controlplane.serializers import JSON_PROBLEMS, json_problem


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus: a body nested deeper than Python's recursion limit, not
    UTF-8, or with a string that is not storable text (NUL, or a lone surrogate written as
    ``"\\udfff"``) anywhere in it, is a 400, not a 500 or a row half-written later."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:  # any JSON value (DRF's stubs say an object)
        try:
            value = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        except UnicodeDecodeError:
            raise ParseError("JSON parse error - the body is not UTF-8.") from None
        problem = json_problem(value, max_depth=sys.maxsize)
        if problem:
            raise ParseError(f"JSON parse error - {JSON_PROBLEMS[problem]}")
        return value

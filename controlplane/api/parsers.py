from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ErrorDetail, ParseError, ValidationError

from controlplane.serializers import JSON_PROBLEMS, json_problem


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus: a body nested deeper than Python's recursion limit, not
    UTF-8, or with a string that is not text (a lone surrogate, written ``"\\udfff"``, which
    no UTF-8 encoder writes) anywhere in it, is a 400, not a 500 or a row half-written later:
    a validation error naming the top-level field that holds it, code ``not_text``. (NUL,
    which PostgreSQL refuses, is refused by the fields: ``JSONValueField`` and DRF's
    ``CharField``, each naming its path.)"""

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
        fields = value.items() if isinstance(value, dict) else [("", value)]
        for name, item in fields:
            if json_problem([name, item], max_depth=sys.maxsize, nul=False) is None:
                continue
            if name and json_problem(name, nul=False) is None:
                raise ValidationError(
                    {name: [ErrorDetail(JSON_PROBLEMS["not_text"], code="not_text")]}
                )
            raise ParseError(f"JSON parse error - {JSON_PROBLEMS['not_text']}")
        return value

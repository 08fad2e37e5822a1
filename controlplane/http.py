"""The request as the pages receive it, for annotations."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request past django-htmx's middleware, which every request goes through:
    ``request.htmx`` says whether htmx sent it and what it asks for. Only for annotations
    (django-htmx's advice): Django passes its own request class."""

    htmx: HtmxDetails

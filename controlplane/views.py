"""Console pages of the kernel (audit log, API keys), the helpers every app's pages use
(``render_page``, ``paginate``) and the error handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.functional import cached_property
from django.views.decorators.http import require_http_methods, require_POST
from django.views.defaults import page_not_found, permission_denied, server_error

from controlplane import services
from controlplane.access import actor_from_request, can
from controlplane.errors import ServiceError, error_response, is_api_request
from controlplane.filters import AuditEventFilter
from controlplane.forms import APIKeyForm
from controlplane.http import HtmxHttpRequest
from controlplane.selectors import api_key_list, api_key_roles_for, audit_event_list

_Row = TypeVar("_Row")

if TYPE_CHECKING:
    _QuerySetPaginator = Paginator[Any]  # the rows of any queryset
else:
    _QuerySetPaginator = Paginator  # not subscriptable at run time


class CappedPaginator(_QuerySetPaginator):
    """Counts at most ``CAP`` rows: a page of a list of millions costs its own rows, not a
    count of the whole table. Past the cap the list says "more than 10,000"."""

    CAP = 10_000
    object_list: QuerySet[Any, Any]

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.CAP


def paginate(request: HttpRequest, queryset: QuerySet[Any, _Row], per_page: int = 50) -> Page[_Row]:
    return CappedPaginator(queryset, per_page).get_page(request.GET.get("page"))


def render_page(
    request: HttpRequest,
    page: str,
    partial: str,
    context: dict[str, Any],
    status: int = 200,
) -> HttpResponse:
    """The partial for an HTMX swap, else the full page.

    When htmx restores history after a cache miss it asks with ``HX-Request`` too, but
    wants the whole page. The answer varies on ``HX-Request`` so that no cache (nor the
    browser's back button) hands out a partial for a page or the other way round.
    """
    htmx = cast(HtmxHttpRequest, request).htmx
    swap = bool(htmx) and not htmx.history_restore_request
    response = render(request, partial if swap else page, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


# Panels the live dashboard fetches again when a feed says something changed
# (``?panel=`` with HX-Request): template and what it needs.
@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    actor = actor_from_request(request)
    if not can(actor, "controlplane.view_auditevent"):
        # Django only renders str(exception) (the 403 page does not show it): there is none.
        return permission_denied(request, None)  # type: ignore[arg-type]
    filterset = AuditEventFilter(request.GET, queryset=audit_event_list(actor=actor))
    events = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    context = {
        "filter": filterset,
        "page": paginate(request, events),
        "target_types": ["agent", "agent_version", "policy", "api_key", "user"],
    }
    return render_page(request, "controlplane/audit.html", "controlplane/_audit_rows.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    actor = actor_from_request(request)
    roles = api_key_roles_for(actor=actor)
    form = APIKeyForm(request.POST or None, roles=roles)
    created_secret = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                _, created_secret = services.api_key_create(
                    actor=actor,
                    name=form.cleaned_data["name"],
                    role=form.cleaned_data["role"],
                    expiry_date=form.cleaned_data["expiry_date"],
                )
            except ServiceError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
            else:
                form = APIKeyForm(roles=roles)
        else:
            status = 400
    context = {
        "form": form,
        "keys": api_key_list(actor=actor),
        "created_secret": created_secret,
        "can_create": bool(roles),
    }
    response = render(request, "controlplane/api_keys.html", context, status=status)
    if created_secret:
        # The secret is shown once: no cache, back button or proxy may show it again.
        add_never_cache_headers(response)
        response["Cache-Control"] += ", no-store"
    return response


@login_required
@require_POST
def api_key_revoke(request: HttpRequest, prefix: str) -> HttpResponse:
    actor = actor_from_request(request)
    key = get_object_or_404(api_key_list(actor=actor), prefix=prefix)
    try:
        services.api_key_revoke(actor=actor, key=key)
        messages.success(request, f"Key {key.prefix} ({key.name}) is revoked.")
    except (ServiceError, DjangoValidationError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
    return redirect("api-keys")


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return error_response(404, "not_found", f"No API endpoint at {request.path}.")
    return page_not_found(request, exception)


def handler403(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return error_response(403, "permission_denied", "You do not have permission.")
    return permission_denied(request, exception)


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return error_response(400, "bad_request", "Bad request.")
    return render(request, "400.html", status=400)


def handler500(request: HttpRequest) -> HttpResponse:
    if is_api_request(request):
        return error_response(500, "internal_error", "Internal error; it was logged.")
    return server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if is_api_request(request):
        return error_response(403, "csrf_failed", f"CSRF verification failed: {reason}")
    return render(request, "403_csrf.html", {"reason": reason}, status=403)

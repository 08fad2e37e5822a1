"""Liveness (no I/O) and readiness (database, Redis, a live Celery worker)."""

from __future__ import annotations

import time
from typing import Any, cast

import redis
from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.celery import app as celery_app
from controlplane.errors import error_body

CHECK_TIMEOUT_SECONDS = 1.0


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def check_redis() -> dict[str, Any]:
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()
    return {}


def ping_workers(
    *, destination: list[str] | None = None, timeout: float = CHECK_TIMEOUT_SECONDS
) -> list[str]:
    """The workers that answer a ping. A fresh broker connection each time: a pooled one
    may be dead after a Redis restart. Without ``destination`` it returns as soon as one
    worker answers, instead of waiting out the timeout."""
    with celery_app.connection_for_write() as connection:
        # A ping waits for replies: a list (None is only for broadcasts that want none).
        replies = cast(
            "list[dict[str, Any]]",
            celery_app.control.ping(
                destination=destination,
                timeout=timeout,
                connection=connection,
                limit=None if destination else 1,
            ),
        )
    return sorted(name for reply in replies for name in reply)


def check_celery() -> dict[str, Any]:
    workers = ping_workers()
    if not workers:
        raise RuntimeError("no Celery worker answered a ping")
    return {"workers": workers}


CHECKS = {"database": check_database, "redis": check_redis, "celery": check_celery}


def readiness() -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            detail = check()
            results[name] = {"ok": True, **detail}
        except Exception as exc:  # any failure means "not ready", with its reason
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        results[name]["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        if name == "redis" and not results[name]["ok"]:
            # The worker ping goes through Redis too: don't wait for its timeout.
            results["celery"] = {"ok": False, "error": "skipped: Redis is down", "latency_ms": 0}
            break
    return results


class _Public(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]


class LivenessView(_Public):
    @extend_schema(
        summary="Liveness: the process answers (no I/O)",
        responses=inline_serializer("Liveness", {"status": serializers.CharField()}),
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadinessView(_Public):
    @extend_schema(
        summary="Readiness: database, Redis and at least one live Celery worker",
        responses={
            200: inline_serializer(
                "Readiness", {"status": serializers.CharField(), "checks": serializers.DictField()}
            ),
            503: inline_serializer("NotReady", {"error": serializers.DictField()}),
        },
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        checks = readiness()
        failed = [name for name, result in checks.items() if not result["ok"]]
        if failed:
            return Response(
                error_body(
                    "not_ready",
                    f"Not ready: {', '.join(failed)} failed.",
                    {"failed": failed, "checks": checks},
                ),
                status=503,
            )
        return Response({"status": "ok", "checks": checks})

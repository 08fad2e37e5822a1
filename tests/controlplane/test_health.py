"""Liveness and readiness, against the real database, the real Redis and a real Celery
worker process."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.test import override_settings

from tests.processes import celery_worker

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_liveness_needs_no_auth_and_no_io(client: Any, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        response = client.get("/api/v1/health", HTTP_AUTHORIZATION="Api-Key broken")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_without_a_worker_is_503_naming_celery(client: Any) -> None:
    response = client.get("/api/v1/health/ready")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"]["failed"] == ["celery"]
    assert "celery" in error["message"]
    assert error["details"]["checks"]["database"]["ok"] is True
    assert error["details"]["checks"]["redis"]["ok"] is True


def test_ready_with_redis_down_is_503_naming_redis(client: Any) -> None:
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        response = client.get("/api/v1/health/ready")

    assert response.status_code == 503
    assert "redis" in response.json()["error"]["details"]["failed"]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_ready_with_a_live_worker_then_not_when_it_stops(client: Any) -> None:
    with celery_worker():
        response = client.get("/api/v1/health/ready")

        assert response.status_code == 200, response.content
        body = response.json()
        assert body["status"] == "ok"
        assert body["checks"]["celery"]["workers"]

    after = client.get("/api/v1/health/ready")
    assert after.status_code == 503
    assert after.json()["error"]["details"]["failed"] == ["celery"]

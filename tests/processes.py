"""Real processes for end-to-end tests: a Celery worker on the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from controlplane.health import ping_workers

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """The URL of the database the tests run on (the test database, not the main one)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = quote(db.get("USER") or "")
    password = quote(db.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": test_database_url(), **extra}
    env["CONTROLPLANE_VAR_DIR"] = str(settings.VAR_DIR)
    if not settings.EMBEDDED_REDIS:
        env["REDIS_URL"] = settings.REDIS_URL
    return env


@dataclass(frozen=True)
class Worker:
    hostname: str
    process: subprocess.Popen[bytes]


@contextmanager
def celery_worker(
    queues: str = "default,executions,llm,maintenance",
    timeout: float = 60,
    *,
    env: dict[str, str] | None = None,
    concurrency: int = 4,
) -> Iterator[Worker]:
    """Start ``celery worker`` as the Procfile does (threads pool) and wait until it answers
    a ping. The process is stopped (SIGTERM) afterwards, if it still runs."""
    with _celery(
        [
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(concurrency),
            "--queues",
            queues,
            "--without-mingle",
            "--without-gossip",
        ],
        env=env,
    ) as (process, hostname, log_path):
        deadline = time.monotonic() + timeout
        while not ping_workers(destination=[hostname], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the test worker did not start: {log_path.read_text()[-2000:]}")
        yield Worker(hostname, process)


@contextmanager
def celery_beat(env: dict[str, str] | None = None) -> Iterator[Path]:
    """``celery beat`` with the database scheduler, as the Procfile runs it; yields the path
    of its log."""
    with _celery(
        ["beat", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler", "--pidfile", ""],
        env=env,
    ) as (_, _, log_path):
        yield log_path


@contextmanager
def asgi_server(timeout: float = 60) -> Iterator[str]:
    """The Procfile's web server (uvicorn, ASGI: pages and websockets) on the test database;
    yields its base URL."""
    from bench.harness import free_port, wait_for_http

    port = free_port()
    log_path = settings.VAR_DIR / f"web-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "console.asgi:application",
             "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off", "--no-access-log"],
            cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            if not wait_for_http(port, "/api/v1/health", process, timeout):
                raise RuntimeError(f"the web server did not start: {log_path.read_text()}")
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(process)


@contextmanager
def _celery(
    arguments: list[str], env: dict[str, str] | None
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    hostname = f"{name}@localhost"
    log_path = settings.VAR_DIR / f"{arguments[0]}-{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "controlplane",
                *arguments,
                "--hostname",
                hostname,
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=child_env(**(env or {})),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process, hostname, log_path
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL to its whole group if it has not ended within 30 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything it started (a worker machine losing power)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def bench_figures(*arguments: str) -> dict[str, Any]:
    """``manage.py bench ... --json`` run as a user runs it (it makes its own temporary
    database next to the test one); each figure checked to carry its floor and ratio."""
    done = subprocess.run(
        [sys.executable, "manage.py", "bench", *arguments, "--json"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    for name, figure in results.items():
        if name == "database":
            continue
        assert figure["value"] > 0 and figure["floor"] > 0, (name, figure)
        assert abs(figure["ratio"] - figure["value"] / figure["floor"]) <= 0.01 * figure["ratio"]
        assert figure["better"] in ("lower", "higher")
    return results

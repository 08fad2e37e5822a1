"""What every ``manage.py bench`` needs: a throwaway environment, real processes (a Celery
worker, the ASGI server), an HTTP load generator and percentiles.

A benchmark never touches the configured database or Redis: it runs in a temporary
environment — a temporary PostgreSQL database on the same server when PostgreSQL is
configured (else SQLite), and its own embedded Redis — so that its rows and audit events do
not land in the real ones, and it measures the same stack the real one runs.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from dj_database_url import DBConfig

    from agents.models import Agent
    from controlplane.access import Actor

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=1000, method="inclusive")[int(q * 10) - 1]


def _rounded(number: float) -> float:
    """Three decimals, or four significant digits for what is smaller than 1."""
    return round(number, 3) if abs(number) >= 1 else float(f"{number:.4g}")


def metric(value: float, floor: float, *, unit: str, target: str, better: str) -> dict[str, Any]:
    """One figure next to its floor measured in the same run."""
    return {
        "value": _rounded(value),
        "floor": _rounded(floor),
        "ratio": _rounded(value / floor) if floor else None,
        "unit": unit,
        "target": target,
        "better": better,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the throwaway environment ---------------------------------------------------------------


@contextmanager
def isolated_environment() -> Iterator[dict[str, str]]:
    """Environment variables for child processes running on a temporary database and an
    embedded Redis of their own; everything is removed afterwards."""
    from controlplane.embedded_redis import EmbeddedRedis

    var_dir = Path(tempfile.mkdtemp(prefix="cp-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["CONTROLPLANE_VAR_DIR"] = str(var_dir)
    env["LOG_LEVEL"] = "WARNING"
    redis_server = EmbeddedRedis(var_dir / "redis.sock", var_dir / "redis")
    redis_server.start()
    database = settings.DATABASES["default"]
    temporary_db = None
    try:
        if database["ENGINE"].endswith("postgresql"):
            temporary_db = f"cp_bench_{uuid.uuid4().hex[:10]}"
            _postgres_admin(f'CREATE DATABASE "{temporary_db}"')
            env["DATABASE_URL"] = _postgres_url(database, temporary_db)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        yield env
    finally:
        redis_server.stop()
        if temporary_db:
            _postgres_admin(f'DROP DATABASE IF EXISTS "{temporary_db}" WITH (FORCE)')
        shutil.rmtree(var_dir, ignore_errors=True)


def _postgres_url(database: DBConfig, name: str) -> str:
    from urllib.parse import quote

    user = quote(database.get("USER") or "")
    password = quote(database.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
    port = f":{database['PORT']}" if database.get("PORT") else ""
    return f"postgres://{auth}{database.get('HOST') or 'localhost'}{port}/{name}"


def _postgres_admin(statement: str) -> None:
    import psycopg

    database = settings.DATABASES["default"]
    with psycopg.connect(
        dbname="postgres",
        user=database.get("USER") or None,
        password=database.get("PASSWORD") or None,
        host=database.get("HOST") or None,
        port=database.get("PORT") or None,
        autocommit=True,
    ) as connection:
        connection.execute(statement)


# --- real processes ----------------------------------------------------------------------------


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    name: str

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def _spawn(arguments: list[str], name: str, extra_env: dict[str, str] | None = None) -> Process:
    log = Path(settings.VAR_DIR) / f"bench-{name}.log"
    with log.open("wb") as output:
        popen = subprocess.Popen(
            arguments,
            cwd=ROOT,
            env={**os.environ, **(extra_env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(popen, name)


@contextmanager
def celery_worker(
    *, concurrency: int, queues: str = "default,executions,llm,maintenance"
) -> Iterator[str]:
    """The Procfile's worker (threads pool), started and pinged; stopped afterwards."""
    from controlplane.health import ping_workers

    hostname = f"bench-{uuid.uuid4().hex[:6]}@localhost"
    process = _spawn(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "controlplane",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(concurrency),
            "--queues",
            queues,
            "--hostname",
            hostname,
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        "worker",
    )
    try:
        deadline = time.monotonic() + 60
        while not ping_workers(destination=[hostname], timeout=0.5):
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark worker did not start (var/bench-worker.log)")
        yield hostname
    finally:
        process.stop()


@contextmanager
def web_server(port: int) -> Iterator[str]:
    """The Procfile's web server, with the benchmark's bare view mounted at /bench/bare."""
    process = _spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "console.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        "web",
        {"CONTROLPLANE_BENCH_URLS": "1"},
    )
    try:
        if not wait_for_http(port, "/bench/bare", process.popen, timeout=60):
            raise RuntimeError("the benchmark web server did not start (var/bench-web.log)")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def wait_for_http(port: int, path: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Until ``GET path`` on the local ``port`` answers 200: True; False if ``process`` ended
    or ``timeout`` seconds passed first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def active_agent(actor: Actor, payload: dict[str, Any]) -> Agent:
    """An agent made from seed 000's registration ``payload``, its version promoted to
    production and the agent activated — through the services, as a person would."""
    from agents import services as agent_services
    from agents.api.serializers import AgentCreateSerializer

    serializer = AgentCreateSerializer(data=payload)
    serializer.is_valid(raise_exception=True)
    agent, _ = agent_services.agent_create(actor=actor, data=serializer.validated_data)
    for _ in range(2):
        agent_services.agent_version_promote(actor=actor, agent=agent)
    agent_services.agent_transition(actor=actor, agent=agent, action="activate")
    agent.refresh_from_db()
    return agent


# --- load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    port: int
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    seconds: float
    threads: int
    expect_status: int


def _hammer(load: Load) -> tuple[int, int]:
    """One client process: ``threads`` keep-alive connections for ``seconds``; (ok, errors)."""
    import threading

    counts = {"ok": 0, "errors": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + load.seconds

    def loop() -> None:
        ok = errors = 0
        connection = http.client.HTTPConnection("127.0.0.1", load.port, timeout=30)
        while time.monotonic() < stop_at:
            try:
                connection.request(load.method, load.path, body=load.body, headers=load.headers)
                response = connection.getresponse()
                response.read()
                if response.status == load.expect_status:
                    ok += 1
                else:
                    errors += 1
            except (OSError, http.client.HTTPException):
                errors += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", load.port, timeout=30)
        with lock:
            counts["ok"] += ok
            counts["errors"] += errors

    workers = [threading.Thread(target=loop) for _ in range(load.threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counts["ok"], counts["errors"]


def requests_per_second(load: Load, processes: int = 2) -> tuple[float, int]:
    """Successful requests per second from ``processes`` client processes; and the errors."""
    with ProcessPoolExecutor(processes) as pool:
        results = list(pool.map(_hammer, [load] * processes))
    ok = sum(result[0] for result in results)
    return ok / load.seconds, sum(result[1] for result in results)


def json_body(value: Any) -> bytes:
    return json.dumps(value).encode()

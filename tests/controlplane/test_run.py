"""``make run`` for real: a fresh var directory, the embedded Redis, migrate, the demo, web +
worker + beat; the printed admin password works; a process that dies is restarted while the
others keep running; Ctrl-C stops everything, Redis last."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from controlplane.embedded_redis import ping
from tests.processes import ROOT

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """``python -m controlplane.run`` (what ``make run`` runs) in its own process group,
    as a terminal would run it, so that SIGINT to the group is a Ctrl-C."""

    def __init__(self, var_dir: Path, **env: str) -> None:
        self.var_dir = var_dir
        self.port = free_port()
        self.log_path = var_dir.parent / f"run-{self.port}.log"
        clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        self.env = {
            **clean,
            "CONTROLPLANE_VAR_DIR": str(var_dir),
            "WEB_PORT": str(self.port),
            "CELERY_CONCURRENCY": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controlplane.run"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 180) -> dict[str, Any]:
        import json

        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(
                    f"make run exited early ({self.process.returncode}):\n{self.output[-3000:]}"
                )
            try:
                with urllib.request.urlopen(
                    self.url("/api/v1/health/ready"), timeout=5
                ) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                last = exc.read().decode()[:300]
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        pytest.fail(f"not ready after {timeout}s ({last}):\n{self.output[-3000:]}")

    def interrupt(self, timeout: float = 60, *, group: bool = True) -> int:
        """Ctrl-C (SIGINT to the whole group), or SIGTERM to the run command alone."""
        assert self.process is not None
        if group:
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.log.close()

    def pids(self, name: str) -> list[int]:
        """The pids the supervisor logged for a Procfile process, oldest first."""
        return [int(pid) for pid in re.findall(rf"==> {name} started \(pid (\d+)\)", self.output)]

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def processes_using(var_dir: Path) -> list[int]:
    """Processes whose environment names this var directory: ours, wherever they went."""
    marker = f"CONTROLPLANE_VAR_DIR={var_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    """A live (not zombie) process."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def running(var_dir: Path, role: str) -> list[int]:
    """The live web (uvicorn), worker or beat (celery) processes of the stack on var_dir."""
    found = []
    for pid in processes_using(var_dir):
        argv = cmdline(pid)
        if role == "web":
            match = any(arg.endswith("uvicorn") for arg in argv)
        else:
            match = role in argv and any(arg.endswith("celery") for arg in argv)
        if match and alive(pid):
            found.append(pid)
    return found


def wait_for(condition: Any, timeout: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert stack.process is not None
        if stack.process.poll() is not None:
            pytest.fail(
                f"make run exited ({stack.process.returncode}) while waiting for {what}:\n"
                f"{stack.output[-3000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {timeout}s:\n{stack.output[-3000:]}")
        time.sleep(0.2)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def log_in(stack: Stack, username: str, password: str) -> tuple[urllib.request.OpenerDirector, str]:
    """Log in through the login form; the browser (its session cookie) and the agents page
    as it gets it."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(stack.url("/login/")).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode(
        {
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": token,
            "next": "/agents/",
        }
    ).encode()
    request = urllib.request.Request(
        stack.url("/login/"), data=data, headers={"Referer": stack.url("/login/")}
    )
    return opener, opener.open(request).read().decode()


def probe(stack: Stack, name: str) -> int:
    return subprocess.run(
        [sys.executable, "-m", "controlplane.probe", name],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        timeout=60,
        check=False,
    ).returncode


@pytest.fixture
def short_var_dir() -> Any:
    """A var directory with a path short enough for a unix socket."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cp-run-") as path:
        yield Path(path) / "var"


def test_make_run_starts_everything_and_ctrl_c_stops_everything(short_var_dir: Path) -> None:
    stack = Stack(short_var_dir)
    stack.start()
    try:
        ready = stack.wait_ready()
        socket_path = short_var_dir / "redis.sock"

        assert ready["status"] == "ok"
        assert ready["checks"]["celery"]["workers"]
        assert ping(socket_path), "the embedded Redis answers on its socket"
        assert (short_var_dir / "db.sqlite3").exists()
        password = re.search(r"Log in as\s+admin / (\S+)", stack.output).group(1)
        browser, page = log_in(stack, "admin", password)
        for name in ("job-application-agent", "email-summarizer", "data-sync-agent"):
            assert name in page
        with browser.open(stack.url("/api/docs/")) as docs:  # for signed-in users
            assert b"swagger-ui" in docs.read()
        for name in ("web", "worker", "beat"):  # docker-compose.yml's healthchecks
            assert probe(stack, name) == 0, name

        assert stack.interrupt() == 0
    finally:
        stack.kill()

    assert not ping(socket_path), "Ctrl-C stops the embedded Redis"
    assert not socket_path.exists()
    assert not port_open(stack.port)
    assert processes_using(short_var_dir) == []
    assert "Redis stopped" in stack.output
    assert probe(stack, "web") == 1

    again = Stack(short_var_dir)
    again.start()
    try:
        again.wait_ready()
        assert "demo data already loaded" in again.output
        assert "Log in as" not in again.output
        # A supervisor's SIGTERM to the run command alone stops everything as well.
        assert again.interrupt(group=False) == 0
    finally:
        again.kill()
    assert processes_using(short_var_dir) == []
    assert not ping(socket_path)


@pytest.mark.skipif(settings.EMBEDDED_REDIS, reason="needs an external Redis (REDIS_URL)")
def test_make_run_with_urls_starts_nothing_embedded(short_var_dir: Path) -> None:
    short_var_dir.mkdir(parents=True)
    stack = Stack(
        short_var_dir,
        DATABASE_URL=f"sqlite:///{short_var_dir / 'external.sqlite3'}",
        REDIS_URL=settings.REDIS_URL,
    )
    stack.start()
    try:
        stack.wait_ready()

        assert not (short_var_dir / "redis.sock").exists()
        assert (short_var_dir / "external.sqlite3").exists()
        assert not (short_var_dir / "db.sqlite3").exists()
        assert "Redis: REDIS_URL" in stack.output
        assert stack.interrupt() == 0
    finally:
        stack.kill()
    assert processes_using(short_var_dir) == []


def test_make_run_restarts_a_process_that_dies(short_var_dir: Path) -> None:
    """SIGKILL of the worker: it is started again (logged), web and beat keep running and web
    keeps answering; a Ctrl-C afterwards still stops everything with exit code 0."""
    stack = Stack(short_var_dir)
    stack.start()
    answers: list[int] = []
    polling = threading.Event()

    def poll_web() -> None:
        while not polling.is_set():
            try:
                with urllib.request.urlopen(stack.url("/api/v1/health"), timeout=5) as response:
                    answers.append(response.status)
            except urllib.error.HTTPError as exc:
                answers.append(exc.code)
            except OSError:
                answers.append(0)
            time.sleep(0.2)

    poller = threading.Thread(target=poll_web, daemon=True)
    try:
        stack.wait_ready()
        socket_path = short_var_dir / "redis.sock"
        [web], [worker], [beat] = (running(short_var_dir, r) for r in ("web", "worker", "beat"))
        poller.start()

        os.kill(worker, signal.SIGKILL)
        wait_for(
            lambda: "==> worker exited (signal 9, SIGKILL); restarting in 1 s" in stack.output,
            30,
            "the restart line",
            stack,
        )
        wait_for(
            lambda: [p for p in running(short_var_dir, "worker") if p != worker],
            30,
            "a new worker process",
            stack,
        )
        [new_worker] = running(short_var_dir, "worker")
        assert not alive(worker)
        assert stack.pids("worker") == [worker, new_worker], "each start is logged with its pid"
        wait_for(lambda: probe(stack, "worker") == 0, 90, "the new worker answering", stack)
        ready = stack.wait_ready()
        assert ready["checks"]["celery"]["workers"]
        polling.set()
        poller.join(10)

        assert running(short_var_dir, "web") == [web], "web kept running"
        assert running(short_var_dir, "beat") == [beat], "beat kept running"
        assert stack.pids("web") == [web] and stack.pids("beat") == [beat]
        assert answers and set(answers) == {200}, f"web kept answering: {answers}"

        assert stack.interrupt() == 0
    finally:
        polling.set()
        stack.kill()
    assert not ping(socket_path), "Ctrl-C stops the embedded Redis"
    assert "Redis stopped" in stack.output
    assert stack.output.rindex("worker stopped") < stack.output.rindex("Redis stopped")
    assert processes_using(short_var_dir) == []
    assert not port_open(stack.port)

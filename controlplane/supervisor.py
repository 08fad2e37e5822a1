"""Runs the Procfile's processes in the foreground and keeps them running (``make run``).

The ``Procfile`` is the one list of processes (``name: command`` a line; ``#`` comments and
blank lines are skipped). Each command runs through ``/bin/sh`` (so ``${WEB_PORT:-8000}``
expands as it would under a Procfile runner; a simple command is ``exec``-ed, so the process
signalled and waited for is the program itself) with the virtualenv's ``bin`` directory first on
``PATH``, in a session and process group of its own: a Ctrl-C in the terminal reaches only the
supervisor, which then stops the processes itself. Their output (stdout and stderr)
is forwarded line by line, each line prefixed with the time and the process's name.

A process that exits while nothing asked it to is started again after a back-off: 1 s, doubled
at each further exit up to 30 s, and back to 1 s once the process had stayed up for 60 s. Each
start and exit is logged, e.g. ``==> worker started (pid 4242)`` and
``==> worker exited (signal 9, SIGKILL); restarting in 1 s``.

Only SIGINT (Ctrl-C) or SIGTERM stops everything: every process group gets SIGTERM, those
still running after 30 s get SIGKILL, and :meth:`Supervisor.run` returns 0. A second Ctrl-C
during that wait sends SIGKILL at once. The handlers for both signals are installed
explicitly, so this holds even when the supervisor was started with SIGINT ignored (as a shell
starts a background job).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

SHELL = "/bin/sh"
POLL_INTERVAL = 0.2
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


class ProcfileError(ValueError):
    pass


def read_procfile(path: Path) -> list[tuple[str, str]]:
    """The ``(name, command)`` pairs of a Procfile, in its order."""
    entries: list[tuple[str, str]] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not sep or not name or not command or not name.replace("-", "").isalnum():
            raise ProcfileError(f"{path}:{number}: expected 'name: command', got {raw!r}")
        if any(name == known for known, _ in entries):
            raise ProcfileError(f"{path}:{number}: process {name!r} is listed twice")
        entries.append((name, command))
    if not entries:
        raise ProcfileError(f"{path}: no processes")
    return entries


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the processes: this Python's ``bin`` directory first on ``PATH``
    (``uvicorn``, ``celery`` from the virtualenv), and unbuffered Python output."""
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}" if env.get("PATH") else bin_dir
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def is_simple(command: str) -> bool:
    """Whether ``exec`` can go in front of a command: one program and its arguments, no
    ``;``, ``&&``, ``|``, ``&`` or subshell, no leading ``NAME=value``."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()")
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: the shell will say so
        return False
    if not tokens or ASSIGNMENT.match(tokens[0]):
        return False
    return not any(token and set(token) <= set(";&|()") for token in tokens)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {-returncode}, {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


@dataclass
class Child:
    """One Procfile process and its current run."""

    name: str
    command: str
    process: subprocess.Popen[bytes] | None = None
    reader: threading.Thread | None = None
    started_at: float = 0.0
    backoff: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Starts every process, restarts the ones that die, stops them all on SIGINT/SIGTERM."""

    def __init__(
        self,
        entries: Iterable[tuple[str, str]],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        out: IO[str] | None = None,
        min_backoff: float = 1.0,
        max_backoff: float = 30.0,
        stable_after: float = 60.0,
        grace: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = [Child(name, command, backoff=min_backoff) for name, command in entries]
        self.cwd = cwd
        self.env = child_env(env)
        self.out = out if out is not None else sys.stdout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.grace = grace
        self.clock = clock
        self.width = max((len(child.name) for child in self.children), default=0)
        self._lock = threading.Lock()
        self._signals: list[int] = []

    # -- output --

    def log(self, message: str) -> None:
        self._write(f"==> {message}\n")

    def _write(self, text: str) -> None:
        with self._lock:
            self.out.write(text)
            self.out.flush()

    def _forward(self, child: Child, stream: IO[bytes]) -> None:
        prefix = child.name.ljust(self.width)
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace").rstrip("\r\n")
                self._write(f"{time.strftime('%H:%M:%S')} {prefix} | {line}\n")

    # -- processes --

    def _start(self, child: Child) -> None:
        # The command is the Procfile's own line, run by the shell as a Procfile runner
        # does; ``exec`` makes the process itself the one we signal and wait for.
        script = f"exec {child.command}" if is_simple(child.command) else child.command
        process = subprocess.Popen(
            [SHELL, "-c", script],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdout is not None
        child.process = process
        child.started_at = self.clock()
        child.restart_at = None
        self.log(f"{child.name} started (pid {process.pid})")
        child.reader = threading.Thread(
            target=self._forward, args=(child, process.stdout), daemon=True
        )
        child.reader.start()

    def _exited(self, child: Child, returncode: int) -> None:
        if child.reader is not None:
            child.reader.join(timeout=1)  # its last lines before the news of its exit
        now = self.clock()
        if now - child.started_at >= self.stable_after:
            child.backoff = self.min_backoff
        delay = child.backoff
        child.backoff = min(child.backoff * 2, self.max_backoff)
        child.process = None
        child.restart_at = now + delay
        child.restarts += 1
        self.log(f"{child.name} exited ({describe_exit(returncode)}); restarting in {delay:g} s")

    def _signal_groups(self, signum: int) -> None:
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # exited just now
                    os.killpg(child.process.pid, signum)

    def _running(self) -> list[Child]:
        return [c for c in self.children if c.process is not None and c.process.poll() is None]

    # -- signals --

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _install_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    # -- the loop --

    def run(self) -> int:
        """Run until SIGINT or SIGTERM; then stop every process and return 0."""
        previous = self._install_handlers()
        try:
            for child in self.children:
                if not self._signals:
                    self._start(child)
            while not self._signals:
                now = self.clock()
                for child in self.children:
                    if child.process is not None:
                        returncode = child.process.poll()
                        if returncode is not None:
                            self._exited(child, returncode)
                    elif child.restart_at is not None and now >= child.restart_at:
                        self._start(child)
                time.sleep(POLL_INTERVAL)
            self._stop()
            return 0
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _stop(self) -> None:
        name = signal.Signals(self._signals[0]).name
        running = self._running()
        self.log(f"{name}: stopping {_names(running) or 'nothing'}")
        self._signal_groups(signal.SIGTERM)
        handled = len(self._signals)
        deadline = self.clock() + self.grace
        while self._running() and self.clock() < deadline:
            if len(self._signals) > handled:
                self.log("asked again: killing them now")
                break
            time.sleep(POLL_INTERVAL)
        left = self._running()
        if left:
            if len(self._signals) <= handled:
                self.log(f"still running after {self.grace:g} s, killing: {_names(left)}")
            self._signal_groups(signal.SIGKILL)
        for child in self.children:
            if child.process is not None:
                returncode = child.process.wait()
                if child.reader is not None:
                    child.reader.join(timeout=1)
                self.log(f"{child.name} stopped ({describe_exit(returncode)})")
                child.process = None


def _names(children: Sequence[Child]) -> str:
    return ", ".join(child.name for child in children)


def run_procfile(procfile: Path, *, cwd: Path | None = None, **options: Any) -> int:
    """Supervise a Procfile's processes until SIGINT/SIGTERM (see the module docstring)."""
    return Supervisor(read_procfile(procfile), cwd=cwd or procfile.parent, **options).run()

"""The Procfile supervisor on small Procfiles: parsing, restart with back-off, and stopping on
SIGINT/SIGTERM (even when started with SIGINT ignored), SIGKILL for a process that holds on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from controlplane.supervisor import ProcfileError, is_simple, read_procfile
from tests.processes import ROOT


def test_read_procfile_keeps_the_order_and_skips_comments(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text("# the stack\n\nweb: serve --port ${PORT:-1}\nworker-2: work a:b\n")

    assert read_procfile(procfile) == [("web", "serve --port ${PORT:-1}"), ("worker-2", "work a:b")]
    assert [name for name, _ in read_procfile(ROOT / "Procfile")] == ["web", "worker", "beat"]


@pytest.mark.parametrize("text", ["web serve\n", "web:\n", "a: x\na: y\n", "# empty\n"])
def test_read_procfile_refuses_what_it_cannot_run(tmp_path: Path, text: str) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text(text)
    with pytest.raises(ProcfileError):
        read_procfile(procfile)


def test_only_a_simple_command_is_execed() -> None:
    assert is_simple("celery -A controlplane worker --hostname worker@%h")
    assert is_simple('echo "a; b" > /dev/null')
    for compound in ("a; b", "a && b", "a | b", "a &", "(a)", "FOO=1 a", 'a "unbalanced'):
        assert not is_simple(compound), compound


def supervise(
    tmp_path: Path, procfile: str, *, ignore_sigint: bool = False
) -> subprocess.Popen[str]:
    (tmp_path / "Procfile").write_text(textwrap.dedent(procfile))
    script = textwrap.dedent(
        f"""
        import signal, sys
        from pathlib import Path
        from controlplane.supervisor import run_procfile
        if {ignore_sigint!r}:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job
        sys.exit(run_procfile(
            Path({str(tmp_path / "Procfile")!r}),
            min_backoff=0.1, max_backoff=0.4, stable_after=60, grace=1,
        ))
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_a_process_that_dies_is_restarted_with_back_off_and_ctrl_c_stops_all(
    tmp_path: Path,
) -> None:
    process = supervise(
        tmp_path,
        """\
        steady: echo up ${GREETING:-hello}; exec sleep 600
        flaky: echo going; exit 3
        """,
        ignore_sigint=True,
    )
    time.sleep(3)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the supervisor's group only
    output, _ = process.communicate(timeout=30)

    assert process.returncode == 0, output
    assert "==> steady started (pid" in output
    assert output.count("==> steady started") == 1, "the steady one is left alone"
    assert "steady | up hello" in output
    assert "flaky  | going" in output, "names padded to the longest"
    for delay in ("0.1", "0.2", "0.4"):
        assert f"==> flaky exited (exit code 3); restarting in {delay} s" in output
    assert "restarting in 0.8 s" not in output, "the back-off stops at its maximum"
    assert "==> SIGINT: stopping steady" in output
    assert "==> steady stopped (signal 15, SIGTERM)" in output


def test_sigterm_stops_all_and_kills_what_holds_on(tmp_path: Path) -> None:
    process = supervise(
        tmp_path,
        """\
        stubborn: trap '' TERM; echo holding; while true; do sleep 0.1; done
        """,
    )
    deadline = time.monotonic() + 20
    assert process.stdout is not None
    while "holding" not in process.stdout.readline():
        assert time.monotonic() < deadline
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)

    assert process.returncode == 0, output
    assert "==> SIGTERM: stopping stubborn" in output
    assert "still running after 1 s, killing: stubborn" in output
    assert "==> stubborn stopped (signal 9, SIGKILL)" in output

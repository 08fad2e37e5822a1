"""``make run``: migrate, load the demo, then web + worker + beat in the foreground.

With no REDIS_URL it first starts the embedded Redis (``controlplane.embedded_redis``). With
DATABASE_URL / REDIS_URL set, those are used and nothing embedded is started.

The processes are the ``Procfile``'s, run by ``controlplane.supervisor``: a process that dies
is started again after a back-off (1 s doubling up to 30 s, logged as ``==> worker exited
(signal 9, SIGKILL); restarting in 1 s``) while the others keep running. Only Ctrl-C (SIGINT)
or SIGTERM stops everything: web, worker and beat first, the embedded Redis last; the exit code
is then 0. Ctrl-C or SIGTERM during the migration or the demo load stops as cleanly.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

import django


class Stop(BaseException):
    """SIGINT or SIGTERM before the supervisor runs (it handles them itself while it runs)."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def main() -> int:
    # Both installed explicitly: started with SIGINT ignored (a shell's background job),
    # Python would otherwise not turn Ctrl-C into KeyboardInterrupt at all.
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from controlplane.embedded_redis import EmbeddedRedis
    from controlplane.supervisor import run_procfile

    embedded = None
    try:
        if settings.EMBEDDED_REDIS:
            embedded = EmbeddedRedis(settings.EMBEDDED_REDIS_SOCKET, settings.VAR_DIR / "redis")
            started = embedded.start()
            print(
                f"==> Redis: {'started' if started else 'reusing the one'} on {embedded.url}",
                flush=True,
            )
        else:
            print("==> Redis: REDIS_URL", flush=True)
        database = settings.DATABASES["default"]
        engine = database["ENGINE"].rsplit(".", 1)[-1]
        print(f"==> Database: {engine} {database['NAME']}", flush=True)

        call_command("migrate", interactive=False, verbosity=1)
        call_command("demo")
        port = os.environ.get("WEB_PORT", "8000")
        host = os.environ.get("WEB_HOST", "127.0.0.1")
        print(
            f"==> Console http://{host}:{port}/   admin /admin/   API docs /api/docs/\n"
            "==> A process that dies is restarted; Ctrl-C stops everything.",
            flush=True,
        )
        return run_procfile(settings.BASE_DIR / "Procfile", cwd=settings.BASE_DIR)
    except Stop:
        return 0
    finally:
        # Nothing interrupts stopping Redis: it flushes its append-only file and exits.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if embedded is not None:
            embedded.stop()
            print("==> Redis stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())

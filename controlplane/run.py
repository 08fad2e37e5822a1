"""``make run``: migrate, load the demo, then web + worker + beat in the foreground.

With no REDIS_URL it first starts the embedded Redis (``controlplane.embedded_redis``) and
stops it after the others on Ctrl-C. With DATABASE_URL / REDIS_URL set, those are used and
nothing embedded is started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import django


class Stop(Exception):
    """SIGTERM (a supervisor, ``kill``), handled like Ctrl-C."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from controlplane.embedded_redis import EmbeddedRedis

    embedded = None
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
    print(f"==> Database: {database['ENGINE'].rsplit('.', 1)[-1]} {database['NAME']}", flush=True)

    signal.signal(signal.SIGTERM, _raise_stop)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    honcho = None
    try:
        call_command("migrate", interactive=False, verbosity=1)
        call_command("demo")
        port = os.environ.get("WEB_PORT", "8000")
        host = os.environ.get("WEB_HOST", "127.0.0.1")
        print(
            f"==> Console http://{host}:{port}/   admin /admin/   API docs /api/docs/\n"
            "==> Ctrl-C stops everything.",
            flush=True,
        )
        honcho = subprocess.Popen(
            [
                str(bin_dir / "honcho"),
                "start",
                "-f",
                str(settings.BASE_DIR / "Procfile"),
                "-d",
                str(settings.BASE_DIR),
            ],
            env=env,
        )
        return honcho.wait()
    except (KeyboardInterrupt, Stop):
        if honcho is not None:
            # A Ctrl-C reached honcho too; a SIGTERM reached only us. Either way honcho stops
            # web, worker and beat gracefully (it ignores a repeated request).
            honcho.send_signal(signal.SIGTERM)
            try:
                honcho.wait(timeout=30)
            except (subprocess.TimeoutExpired, KeyboardInterrupt, Stop):
                honcho.kill()
                honcho.wait()
        return 0
    finally:
        if embedded is not None:
            embedded.stop()
            print("==> Redis stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())

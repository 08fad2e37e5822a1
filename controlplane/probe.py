"""Container health probes: ``python -m controlplane.probe web|worker|beat``.

Exit 0 when healthy. Used by docker-compose.yml; cheap enough to run every few seconds.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
from pathlib import Path


def web() -> bool:
    port = os.environ.get("WEB_PORT", "8000")
    # HTTP to loopback only: no URL is parsed, so no other scheme (file:, ftp:) can be opened.
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=3)
    try:
        connection.request("GET", "/api/v1/health")
        return connection.getresponse().status == 200
    finally:
        connection.close()


def worker() -> bool:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    import django

    django.setup()
    from controlplane.health import ping_workers

    # The Procfile names the worker worker@<host name>.
    return bool(ping_workers(destination=[f"worker@{socket.gethostname()}"], timeout=3))


def beat() -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"beat" in argv and any(part.endswith(b"celery") for part in argv):
                return True
    return False


PROBES = {"web": web, "worker": worker, "beat": beat}

if __name__ == "__main__":
    try:
        healthy = PROBES[sys.argv[1]]()
    except Exception as exc:  # any failure is "unhealthy", with the reason on stderr
        print(f"unhealthy: {exc}", file=sys.stderr)
        healthy = False
    sys.exit(0 if healthy else 1)

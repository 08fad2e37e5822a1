"""make lint: pip-audit over requirements.lock against PyPI's vulnerability data, or, when
that service cannot be reached (an offline machine), a message saying the audit was skipped.

A known vulnerability in a pinned package fails the lint; a package the service does not
know (a private one) is reported and does not."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from pathlib import Path

SERVICE = "pypi.org"
LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"


def reachable() -> bool:
    """PyPI's JSON API answers a release with its vulnerability data, which is what pip-audit
    reads; a proxy that reaches only the package index answers 404 here."""
    connection = http.client.HTTPSConnection(SERVICE, timeout=5)
    try:
        connection.request("GET", "/pypi/pip/24.0/json")
        response = connection.getresponse()
        return response.status == 200 and "vulnerabilities" in json.loads(response.read())
    except (OSError, ValueError):
        return False
    finally:
        connection.close()


def main() -> int:
    if not reachable():
        sys.stdout.write(
            f"pip-audit skipped: {SERVICE}'s vulnerability data cannot be reached from here.\n"
        )
        return 0
    command = [
        sys.executable, "-m", "pip_audit", "--requirement", str(LOCK), "--no-deps",
        "--disable-pip", "--progress-spinner", "off",
    ]  # fmt: skip
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())

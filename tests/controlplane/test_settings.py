"""Settings come from the environment through typed readers that fail loudly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import env_bool, env_int, env_list, env_str
from tests.processes import ROOT


def test_env_bool(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, expected in [
        ("1", True),
        ("yes", True),
        ("TRUE", True),
        ("0", False),
        ("off", False),
        ("", False),
    ]:
        monkeypatch.setenv("CP_FLAG", raw)
        assert env_bool("CP_FLAG") is expected
    monkeypatch.delenv("CP_FLAG")
    assert env_bool("CP_FLAG", True) is True
    monkeypatch.setenv("CP_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="CP_FLAG='maybe' is not a boolean"):
        env_bool("CP_FLAG")


def test_env_int(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CP_NUMBER", "42")
    assert env_int("CP_NUMBER", 1) == 42
    monkeypatch.setenv("CP_NUMBER", "forty")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("CP_NUMBER", 1)
    monkeypatch.setenv("CP_NUMBER", "-1")
    with pytest.raises(ImproperlyConfigured, match="at least 0"):
        env_int("CP_NUMBER", 1, minimum=0)


def test_env_list_and_secret_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CP_HOSTS", "a.example, b.example,,")
    assert env_list("CP_HOSTS", []) == ["a.example", "b.example"]
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("CP_SECRET_FILE", str(secret))
    assert env_str("CP_SECRET") == "from-a-file"
    monkeypatch.setenv("CP_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env_str("CP_SECRET")


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Import the settings in a fresh interpreter with exactly this environment."""
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps({'debug': settings.DEBUG, 'key': settings.SECRET_KEY, "
        "'hosts': settings.ALLOWED_HOSTS, 'engine': settings.DATABASES['default']['ENGINE'], "
        "'redis': settings.REDIS_URL, 'embedded': settings.EMBEDDED_REDIS}))"
    )
    base = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "CONTROLPLANE_VAR_DIR": str(tmp_path / "var"),
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_zero_environment_boots_with_sqlite_embedded_redis_and_a_kept_secret(
    tmp_path: Path,
) -> None:
    import json

    first = load_settings(tmp_path)
    second = load_settings(tmp_path)

    assert first.returncode == 0, first.stderr
    values = json.loads(first.stdout)
    assert values["debug"] is False
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["embedded"] is True
    assert values["redis"] == f"unix://{tmp_path / 'var' / 'redis.sock'}"
    assert len(values["key"]) >= 50
    assert json.loads(second.stdout)["key"] == values["key"]
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o077 == 0


def test_production_environment_is_used(tmp_path: Path) -> None:
    import json

    result = load_settings(
        tmp_path,
        SECRET_KEY="k" * 60,
        DATABASE_URL="postgres://u:p@db.internal:5432/cp",
        REDIS_URL="redis://cache.internal:6379/1",
        ALLOWED_HOSTS="cp.example.com",
        DEBUG="0",
    )

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values == {
        "debug": False,
        "key": "k" * 60,
        "hosts": ["cp.example.com"],
        "engine": "django.db.backends.postgresql",
        "redis": "redis://cache.internal:6379/1",
        "embedded": False,
    }


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "perhaps", "DEBUG='perhaps' is not a boolean"),
        ("API_MAX_BODY_BYTES", "lots", "API_MAX_BODY_BYTES='lots' is not an integer"),
        ("DATABASE_URL", "nosuchdb://x", "DATABASE_URL"),
    ],
)
def test_bad_values_fail_loudly_at_start(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    result = load_settings(tmp_path, **{name: value})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr

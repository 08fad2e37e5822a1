"""``manage.py bench executions`` runs end to end (tiny sizes: a smoke test, not a measure)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.processes import ROOT, child_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

METRICS = {
    "executions_per_second",
    "dispatch_latency_p50_ms",
    "dispatch_latency_p99_ms",
    "trigger_api_requests_per_second",
    "in_flight_10_at_2s_makespan_s",
}


def test_bench_executions_prints_each_figure_with_its_floor_and_ratio() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "bench",
            "executions",
            "--json",
            "--count",
            "20",
            "--samples",
            "5",
            "--seconds",
            "1",
            "--in-flight",
            "10",
        ],
        # The bench makes its own temporary database next to the configured one.
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert set(results) >= METRICS
    for name in METRICS:
        figure = results[name]
        assert figure["value"] > 0 and figure["floor"] > 0, (name, figure)
        assert figure["ratio"] == pytest.approx(figure["value"] / figure["floor"], rel=0.01)
    assert results["in_flight_10_at_2s_makespan_s"]["floor"] >= 2.0  # one run takes the 2 s

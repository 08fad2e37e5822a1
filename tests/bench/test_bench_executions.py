"""``manage.py bench executions`` runs end to end (tiny sizes: a smoke test, not a measure)."""

from __future__ import annotations

import pytest

from tests.processes import bench_figures

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_bench_executions_prints_each_figure_with_its_floor_and_ratio() -> None:
    results = bench_figures(
        "executions", "--count", "20", "--samples", "5", "--seconds", "1", "--in-flight", "10"
    )

    assert set(results) == {
        "database",
        "executions_per_second",
        "dispatch_latency_p50_ms",
        "dispatch_latency_p99_ms",
        "queued_to_running_p50_ms",
        "queued_to_running_p99_ms",
        "trigger_api_requests_per_second",
        "in_flight_10_at_2s_makespan_s",
    }
    assert results["in_flight_10_at_2s_makespan_s"]["floor"] >= 2.0  # one run takes the 2 s

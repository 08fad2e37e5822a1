"""``manage.py bench policies`` runs end to end (small sizes: a smoke test, not a measure)."""

from __future__ import annotations

import pytest

from tests.processes import bench_figures

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_bench_policies_prints_each_figure_with_its_floor_and_ratio() -> None:
    results = bench_figures("policies", "--samples", "50", "--seconds", "0.3", "--policies", "200")

    assert set(results) == {
        "database",
        "decision_in_process_p50_ms",
        "decision_in_process_p99_ms",
        "decision_with_counters_p50_ms",
        "decision_with_counters_p99_ms",
        "decision_p99_ms_at_10000_vs_100_policies",
        "index_rebuild_ms_at_10000_vs_100_policies",
        "rate_limit_checks_per_second",
    }
    # A decision with counters makes at least the raw round trips it is compared with.
    assert results["decision_with_counters_p50_ms"]["ratio"] > 1

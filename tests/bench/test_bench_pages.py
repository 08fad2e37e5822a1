"""``manage.py bench pages`` and ``bench live`` run end to end (tiny sizes: a smoke test,
not a measure)."""

from __future__ import annotations

import pytest

from tests.processes import bench_figures

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_bench_pages_prints_each_page_with_the_floor_and_ratio() -> None:
    results = bench_figures("pages", "--rows", "300", "--samples", "3")
    assert results["database"].endswith("300 executions")
    assert {name for name in results if name != "database"} == {
        "executions_list_p95_ms",
        "executions_list_filtered_p95_ms",
        "execution_page_20_steps_p95_ms",
        "agent_page_p95_ms",
        "agents_list_p95_ms",
        "approvals_queue_p95_ms",
        "dashboard_p95_ms",
        "audit_log_p95_ms",
    }


def test_bench_live_times_commit_to_socket_next_to_a_bare_group_send() -> None:
    results = bench_figures("live", "--sockets", "5", "--samples", "3")
    assert results["database"].endswith("5 sockets")
    assert set(results) == {"database", "commit_to_socket_p50_ms", "commit_to_socket_p99_ms"}

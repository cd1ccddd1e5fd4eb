"""benchmarks/scale.py's growth figures: what the issue's "no faster than linear" is judged by."""
import math

import pytest

from benchmarks.scale import growth_exponent, selection_times


def test_growth_exponent_is_one_for_linear_and_two_for_quadratic_growth():
    sizes = [1_000, 10_000, 100_000]
    assert growth_exponent(sizes, [0.001 * n for n in sizes]) == pytest.approx(1.0)
    assert growth_exponent(sizes, [1e-9 * n * n for n in sizes]) == pytest.approx(2.0)
    assert growth_exponent(sizes, [0.01 * n * math.log(n) for n in sizes]) > 1.0


def test_selection_times_take_every_repeat_and_older_single_times():
    runs = [{"select_s": 1.0, "select_runs_s": [1.0, 2.0, 3.0], "select_cpu_s": 0.9, "select_cpu_runs_s": [0.9]},
            {"select_s": 4.0, "select_cpu_s": 3.5}]
    assert selection_times(runs) == [1.0, 2.0, 3.0, 4.0]
    assert selection_times(runs, "select_cpu") == [0.9, 3.5]


def test_the_database_scale_table_gives_each_view_its_growth_and_names_the_worst():
    from benchmarks.scale_db import ROUND_POOL, render

    def rec(view, pool, ms, queries=4, started="2026-12-02T15:00:00"):
        return {"machine": "m", "command": "c", "started": started, "pool": pool, "view": view, "median_ms": ms,
                "runs_ms": [ms], "queries": queries, "bytes": 10}

    old = [rec("API jobs", 1000, 1.0, started="2026-11-01T00:00:00")]  # an older campaign is not shown
    records = old + [rec("API jobs", 1000, 10.0), rec("API jobs", 100000, 12.0),
                     rec("dashboard page", 1000, 100.0, 30), rec("dashboard page", 100000, 250.0, 30),
                     rec(ROUND_POOL, 1000, 50.0, 3), rec(ROUND_POOL, 100000, 5000.0, 3)]
    text = render(records)
    assert "| API jobs | 10.0 (4) | 12.0 (4) | 1.2× |" in text
    assert "| dashboard page | 100.0 (30) | 250.0 (30) | 2.5× |" in text
    # round_pool grows with the pool by design: the verdict is about the paged views.
    assert "*dashboard page*: 2.5×" in text and "stay the same" in text

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

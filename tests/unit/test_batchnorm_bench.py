"""benchmarks/batchnorm.py's report, from hand-made records (the runs themselves are benchmarks)."""
from __future__ import annotations

from benchmarks.batchnorm import BatchNormRecord, render


def record(dataset: str, seed: int, miou: float, target_miou: float, chosen: str,
           machine: str = "box A, 2 cores") -> BatchNormRecord:
    return BatchNormRecord(dataset, seed, 600, 27648, 600, miou, [0.9, miou - 0.3], [0.8, None], target_miou,
                           [0.9, target_miou - 0.3], [0.85, 0.6], chosen, "why", 46, 1.2, machine)


def test_each_run_is_a_row_with_the_change_and_what_auto_keeps():
    text = render([record("camvid", 0, 0.239, 0.310, "target"), record("polyp", 0, 0.629, 0.548, "training")])
    assert "| camvid | 0 | box A | 600 | 23.9 | 31.0 | +7.1 |" in text
    assert "| polyp | 0 | box A | 600 | 62.9 | 54.8 | -8.1 |" in text
    assert "| pool's statistics | – | 1.2 |" in text and "| as trained | – | 1.2 |" in text  # pool not measured
    assert "mean" not in text.split("| re-estimation s |")[1]  # one run per dataset: no mean row


def test_the_pool_check_is_shown_where_it_was_measured():
    row = record("camvid", 0, 0.239, 0.310, "target")
    row.pool_miou, row.target_pool_miou = 0.281, 0.352
    assert "| pool's statistics | 28.1 → 35.2 | 1.2 |" in render([row])


def test_several_runs_of_a_dataset_get_a_mean_and_spread_and_a_class_never_predicted_has_no_precision():
    text = render([record("demo", 0, 0.471, 0.731, "target"), record("demo", 1, 0.50, 0.70, "target", "box B")])
    assert "| demo | mean |  |  | 48.5 | 71.5 | +23.0 ± 3.0 |" in text
    # The lowest precision counts only classes predicted somewhere (None: never predicted).
    assert "| 80.0 (" in text and ") → 60.0 (" in text  # class names where the dataset is on disk, else indices

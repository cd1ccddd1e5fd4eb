"""benchmarks/finetune.py's report, from hand-made records (the runs themselves are benchmarks)."""
from __future__ import annotations

from benchmarks.finetune import VARIANTS, FinetuneRecord, render


def record(variant: str, labels: str, miou: float, seed: int = 0) -> FinetuneRecord:
    return FinetuneRecord("polyp", seed, variant, labels, 600, 27648, 600, 0.635, [0.913, 0.357], miou,
                          [0.9, miou - 0.3], [0.95, 0.4], 200, 220.0, 218.0, "box A")


def test_each_variant_and_label_set_is_a_row_with_its_change_from_round_zero():
    text = render([record("default", "full", 0.611), record("default", "full", 0.631, seed=1),
                   record("consistency", "none", 0.476)])
    assert "| the app's recipe (no consistency, adversarial on, lr 3e-4) | every pool label | 2 | 63.5 | 62.1 | -1.4 ± 1.0 |" \
        in text
    assert f"| {VARIANTS['consistency'][1]} | none (source only) | 1 | 63.5 | 47.6 | -15.9 |" in text
    # The rarest class by round 0's IoU, named when the dataset is on disk (else by its index).
    assert ("polyp IoU before → after" in text or "1 IoU before → after" in text) and "35.7 → 17.6" in text


def test_the_pool_fit_is_shown_for_full_labels_and_each_machine_is_its_own_run():
    fitted = record("steps400", "full", 0.674)
    fitted.pool_miou = 0.683
    other_machine = record("steps400", "full", 0.654)
    other_machine.machine, other_machine.pool_miou = "box B, 2 cores", 0.663
    text = render([fitted, other_machine, record("steps400", "none", 0.6)])
    assert f"| {VARIANTS['steps400'][1]} | every pool label | 2 | 63.5 | 66.4 | +2.9 ± 1.0 |" in text
    assert "| 67.3 | 200 |" in text  # the mean fit of the two runs, before the steps
    assert f"| {VARIANTS['steps400'][1]} | none (source only) | 1 | 63.5 | 60.0 | -3.5 |" in text
    assert "runs: seed 0 on box A; seed 0 on box B" in text


def test_a_class_absent_from_validation_is_never_the_rarest():
    row = record("default", "full", 0.5)
    row.base_iou, row.iou = [0.8, None, 0.1], [0.8, None, 0.2]
    row.precision = [0.9, None, 0.3]
    text = render([row])
    assert "| 2 IoU before → after |" in text and "| 10.0 → 20.0 |" in text

"""benchmarks/recipe.py's bookkeeping: TrainConfig overrides, and which runs count as the same variant."""
from __future__ import annotations

import pytest

from benchmarks.recipe import RecipeRecord, parse_train_overrides, render, variant_of, variants


def record(**changes) -> RecipeRecord:
    values = dict(dataset="polyp", arm="ce_dice", seed=0, steps=600, size=[144, 192], miou=0.6,
                  per_class_iou=[0.9, 0.3], per_class_precision=[0.95, 0.5], painted_share=[0.9, 0.1],
                  true_share=[0.91, 0.09], train_seconds=600.0, cpu_seconds=590.0, minutes=15.0, machine="box A")
    values.update(changes)
    return RecipeRecord(**values)


def test_overrides_are_typed_as_the_train_config_field_and_unknown_names_are_refused():
    assert parse_train_overrides(["lr=0.002", "adversarial=false", "batch_size=4", "schedule=onecycle"]) == {
        "lr": 0.002, "adversarial": False, "batch_size": 4, "schedule": "onecycle"}
    with pytest.raises(SystemExit, match="not a TrainConfig field of a plain type"):
        parse_train_overrides(["size=96"])  # a tuple: the size comes from --max-train-pixels
    with pytest.raises(SystemExit, match="not a TrainConfig field"):
        parse_train_overrides(["learning_rate=0.1"])
    with pytest.raises(SystemExit, match="lr=fast: not a float"):
        parse_train_overrides(["lr=fast"])


def test_runs_differing_in_overrides_or_machine_are_separate_rows_and_say_so():
    rows = [record(), record(seed=1), record(train_overrides={"lr": 0.002}), record(machine="box B")]
    groups = variants(rows)
    assert len(groups) == 3 and [len(g) for g in groups.values()].count(2) == 1
    assert variant_of(rows[0]) == variant_of(rows[1]) != variant_of(rows[2])
    assert "cross-entropy + soft Dice (default), lr = 0.002 |" in render(rows)

"""The dataset suite's verdicts, from hand-made records (benchmarks/suite.py; the runs themselves are benchmarks)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks import suite
from benchmarks.suite import RoundRecord, verdicts


def record(arm: str, round_: int, miou: float, promoted: bool = True) -> RoundRecord:
    return RoundRecord("polyp", arm, 0, round_, float(round_), miou, miou, promoted, [0.9, miou])


def test_verdicts_state_the_gap_to_random_the_share_closed_and_keep_best_drops():
    records = [record("ours", 0, 0.50), record("ours", 1, 0.58), record("ours", 2, 0.57),
               record("random_region", 0, 0.50), record("random_region", 1, 0.54), record("random_region", 2, 0.55, False),
               record("full", 0, 0.50), record("full", 1, 0.62), record("full", 2, 0.63)]
    lines = verdicts(records)
    assert lines[0].startswith("ours − random regions, mean over rounds 1–2: +3.0 mIoU")
    assert "round 1 (1.0 % labeled): ours at 94 % of full supervision; share of the gap random regions leave " \
           "that ours closes: 50%" in lines
    assert lines[-1].startswith("keep-best: 1 of 6 candidate models rejected") and "1.0 mIoU" in lines[-1]


def test_keep_best_verdict_weighs_the_largest_promoted_drop_against_the_seed_spread():
    from benchmarks.suite import keep_best_verdict

    records = [record("ours", 0, 0.50), record("ours", 1, 0.52), record("ours", 2, 0.505)]
    assert keep_best_verdict(records, 0.02)[0].endswith("1.5 mIoU (within the seed spread 2.0; target: within it)")
    assert "(above the seed spread 1.0;" in keep_best_verdict(records, 0.01)[0]
    assert keep_best_verdict(records, None)[0].endswith("1.5 mIoU") and keep_best_verdict([], 0.01) == []


def test_verdicts_compare_ours_with_random_against_the_seed_spread():
    def seeded(arm, seed, round_, miou):
        return RoundRecord("demo", arm, seed, round_, float(round_), miou, miou, True, [0.9, miou])

    records = [seeded("ours", 0, 1, 0.50), seeded("ours", 1, 1, 0.52), seeded("ours", 0, 2, 0.50),
               seeded("ours", 1, 2, 0.52), seeded("random_region", 0, 1, 0.54), seeded("random_region", 1, 1, 0.56),
               seeded("random_region", 0, 2, 0.51), seeded("random_region", 1, 2, 0.53)]
    spread = next(line for line in verdicts(records) if line.startswith("seed spread"))
    # std across the two seeds is 1.0 point in every group; round 1 falls 4 points short, round 2 only 1
    assert spread.startswith("seed spread (std of val mIoU across seeds, mean over arms and rounds): 1.0")
    assert spread.endswith("in round(s) [1]")


def test_each_dataset_gets_a_plot(tmp_path):
    from benchmarks.suite import plot

    records = [record("ours", 0, 0.50), record("ours", 1, 0.58), record("random_region", 0, 0.50),
               record("random_region", 1, 0.54), record("full", 1, 0.62)]
    plot(records, tmp_path / "suite-polyp.png", "polyp")
    assert (tmp_path / "suite-polyp.png").stat().st_size > 1000


def test_round_options_compare_the_mIoU_a_round_adds_per_cpu_minute():
    from benchmarks.round_options import summary

    def seeded(seed, round_, miou, cpu):
        return RoundRecord("demo", "ours", seed, round_, float(round_), miou, miou, True, [0.9, miou], cpu_seconds=cpu)

    records = [seeded(0, 0, 0.50, 0), seeded(0, 1, 0.55, 60), seeded(0, 2, 0.60, 60),
               seeded(1, 0, 0.50, 0), seeded(1, 1, 0.52, 120), seeded(1, 2, 0.56, 120)]
    result = summary(records)
    assert result["seeds"] == 2 and result["rounds"] == 2
    assert abs(result["gain"] - 0.08) < 1e-9 and abs(result["gain_sd"] - 0.02) < 1e-9
    assert abs(result["cpu_min"] - 1.5) < 1e-9  # 60 and 120 CPU seconds a round
    assert abs(result["per_minute"] - 0.08 / 3.0) < 1e-9  # 2 rounds × 1.5 CPU minutes


def test_round_zero_precision_verdict_names_a_flooding_or_missing_class():
    from benchmarks.suite import round0_precision_verdict

    def round0(precision):
        return RoundRecord("polyp", "ours", 0, 0, 0.0, 0.5, 0.5, True, [0.9, 0.1],
                           extra={"per_class_precision": precision})

    assert round0_precision_verdict([round0([0.95, 0.57])])[0].startswith(
        "round 0 (1 seed(s)): every class predicted with precision ≥ 50%: met (lowest precision 57.0 %, class 1")
    flooding = round0_precision_verdict([round0([0.99, 0.05])])[0]
    assert ": not met (lowest precision 5.0 %, class 1; never predicted: none)" in flooding
    assert "never predicted: class 2" in round0_precision_verdict([round0([0.9, 0.8, None])])[0]
    assert round0_precision_verdict([record("ours", 0, 0.5)]) == []  # records from before precision was kept


def test_settings_keys_of_tracked_records_stay_and_ssl_and_the_promotion_rule_get_their_own():
    from benchmarks.suite import LEGACY_PROMOTION, LEGACY_TRAIN_PIXELS, SuiteSettings
    from learning.promotion import RULE
    from learning.recipe import RecipeSettings, default_max_train_pixels

    # The CamVid campaign's records under the rule before MAX_DROP (benchmarks/results/suite.jsonl): this key.
    assert SuiteSettings(5, 1.0, 300, 40, 0.0).key("camvid") == "90af771ee55a"
    assert SuiteSettings(5, 1.0, 300, 40, 0.0, promotion=LEGACY_PROMOTION).key("camvid") == "90af771ee55a"
    current = SuiteSettings(5, 1.0, 300, 40, 0.0, promotion=RULE)
    assert current.key("camvid") != "90af771ee55a"
    pixels = default_max_train_pixels()
    plain = SuiteSettings(3, 1.0, 300, promotion=RULE, train_pixels=pixels, consistency=False)
    ssl = SuiteSettings(3, 1.0, 300, pretrained="ssl", promotion=RULE, train_pixels=pixels, consistency=False,
                        target_statistics=RecipeSettings.target_statistics)
    assert plain.key("polyp") != ssl.key("polyp")
    assert suite.settings_of(suite.parse_args(["--pretrained", "ssl", "--rounds", "3", "--steps-initial", "300",
                                               "--steps-per-round", "200"])) == ssl  # the ssl records' steps
    # The size cap keys records too: the app's default for this machine's device, unless asked for.
    assert plain.key("polyp") != SuiteSettings(3, 1.0, 300, promotion=RULE, train_pixels=pixels * 2).key("polyp")
    assert suite.settings_of(suite.parse_args(["--train-pixels", "1234"])).train_pixels == 1234
    # A run always uses the app's rule; the legacy one can only be rendered.
    legacy = ["--promotion", LEGACY_PROMOTION, "--rounds", "5", "--steps-initial", "300", "--steps-per-round", "40",
              "--round-minutes", "0", "--train-pixels", str(LEGACY_TRAIN_PIXELS)]
    with pytest.raises(SystemExit, match="only --report-only"):
        suite.settings_of(suite.parse_args(legacy))
    # ... and so did fine-tuning consistency (on then, off now): '--consistency on' finds those records.
    # ... and BatchNorm statistics (as trained then, the recipe's choice now): '--target-statistics off'.
    before = legacy + ["--report-only", "--consistency", "on", "--target-statistics", "off"]
    assert suite.settings_of(suite.parse_args(before)).key("camvid") == "90af771ee55a"
    assert suite.settings_of(suite.parse_args(before[:-2])).key("camvid") != "90af771ee55a"
    assert suite.settings_of(suite.parse_args(legacy + ["--report-only", "--target-statistics", "off"])).key(
        "camvid") != "90af771ee55a"
    assert SuiteSettings(5, 1.0, 300, 40, 0.0, consistency=False).key("camvid") != "90af771ee55a"


def test_runs_without_steps_per_round_take_the_apps_default_and_the_old_default_keeps_its_records():
    from benchmarks.suite import LEGACY_STEPS_PER_ROUND
    from learning.recipe import RecipeSettings

    plain = suite.settings_of(suite.parse_args(["--rounds", "5", "--steps-initial", "600"]))
    assert plain == suite.settings_of(suite.parse_args(["--rounds", "5", "--steps-initial", "600", "--steps-per-round",
                                                        str(RecipeSettings.steps_per_round)]))
    assert plain.recipe_overrides()["steps_per_round"] == RecipeSettings.steps_per_round
    old = suite.settings_of(suite.parse_args(["--rounds", "5", "--steps-initial", "600", "--steps-per-round",
                                              str(LEGACY_STEPS_PER_ROUND)]))
    assert old.steps_per_round is None  # the key of every record from before the default changed
    assert old.recipe_overrides()["steps_per_round"] == LEGACY_STEPS_PER_ROUND  # and a rerun runs what they ran
    assert RecipeSettings.steps_per_round != LEGACY_STEPS_PER_ROUND or plain == old


def test_the_fields_left_out_of_round_zeros_cache_key_are_ones_round_zero_never_sets():
    """Round-0 models are cached by their config without the fine-tuning-only fields (so adding one keeps the
    cache): that is only sound while round 0 leaves each of them at the TrainConfig default."""
    from dataclasses import fields

    from learning.recipe import RecipeSettings, round_train_config
    from learning.train import TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig)}
    recipe = RecipeSettings(arch="deeplabv3_mobilenet_v3_large", num_classes=3, size=(64, 64),
                            finetune_head_only=True)
    round0 = round_train_config(recipe, round_index=0, warm_start=False)
    finetune = round_train_config(recipe, round_index=1, warm_start=True)
    for name in suite.FINETUNE_ONLY_FIELDS:
        assert getattr(round0, name) == defaults[name]
        assert getattr(finetune, name) != defaults[name]  # the recipe does reach fine-tuning rounds


def test_the_exploration_ablation_is_compared_on_its_own_seeds_only():
    from benchmarks.suite import ablation_verdict

    def seeded(arm, seed, round_, miou):
        return RoundRecord("camvid", arm, seed, round_, float(round_), miou, miou, True, [0.9, miou])

    records = [seeded(arm, 0, 0, 0.30) for arm in ("ours", "random_region")] + [
        seeded("ours", 0, 1, 0.40), seeded("random_region", 0, 1, 0.20),  # seed 0: no exploration run
        seeded("ours", 1, 1, 0.35), seeded("random_region", 1, 1, 0.36), seeded("ours_explore", 1, 1, 0.37)]
    lines = ablation_verdict(records)
    assert lines == ["ours + exploration − random regions, mean over rounds 1–1 (seeds [1]): +1.0 mIoU (per round +1.0)",
                     "ours + exploration − ours, mean over rounds 1–1 (seeds [1]): +2.0 mIoU (per round +2.0)"]
    assert ablation_verdict([r for r in records if r.arm != "ours_explore"]) == []


def test_a_section_names_the_machine_of_each_seed(monkeypatch):
    from benchmarks import report
    from benchmarks.suite import machines_text

    monkeypatch.setattr(report, "machine_description", lambda: "Here CPU")
    old = RoundRecord("camvid", "ours", 0, 0, 0.0, 0.3, 0.3, True, [0.3])  # recorded before machines were
    other = RoundRecord("camvid", "ours", 1, 0, 0.0, 0.3, 0.3, True, [0.3], machine="Other CPU")
    assert machines_text([old]) == "Machine: Here CPU."
    assert machines_text([old, other]) == "Machines: seed 0 on Here CPU; seed 1 on Other CPU."
    assert machines_text([]) == "Machine: Here CPU."


def test_an_arm_runs_the_apps_round_step_and_records_the_class_balance_of_its_labels(monkeypatch, tmp_path):
    """A real (tiny) run on the demo data: round 0, one labeling round of an ablation arm at a fixed trade-off."""
    from benchmarks.suite import Simulation, SuiteSettings, run_arm

    monkeypatch.setattr(suite, "BASES", tmp_path)
    settings = SuiteSettings(rounds=1, percent=2.0, steps_initial=2, steps_per_round=2, round_minutes=0.0,
                             target_statistics="auto")
    sim = Simulation("demo", settings)
    records = run_arm(sim, "ours_top", 0, sim.base(0), log=lambda line: None)
    assert [r.round for r in records] == [0, 1] and list(tmp_path.glob("demo-*.pt"))
    labeled = records[1]
    share = labeled.extra["labeled_class_share"]
    assert len(share) == sim.data.num_classes and abs(sum(share) - 1.0) < 1e-6
    assert 1.0 <= labeled.labeled_percent <= 4.0  # the budget (2 % of the pool's pixels), in whole regions
    assert labeled.extra["batchnorm"] in ("training", "target")
    assert len(labeled.extra["candidate_per_class_iou"]) == sim.data.num_classes  # what the labels did, even if refused
    assert suite.ARMS["ours_top"].uncertainty_weight == 1.0 and suite.ARMS["ours_top"].strategy == "region"


def test_a_longer_run_goes_on_from_a_shorter_ones_last_round_with_the_same_results(monkeypatch, tmp_path):
    """Round 2 after a resumed round 1 is round 2 of an unbroken run: same labels, same model, same scores."""
    from benchmarks.suite import Simulation, SuiteSettings, progress_path, run_arm

    monkeypatch.setattr(suite, "BASES", tmp_path)
    short = SuiteSettings(rounds=1, percent=2.0, steps_initial=2, steps_per_round=2, round_minutes=0.0,
                          target_statistics="off")
    sim = Simulation("demo", short)
    base = sim.base(0)
    first = run_arm(sim, "ours", 0, base, log=lambda line: None)
    saved = progress_path(sim, "ours", 0)
    assert saved.exists()

    lines = []
    longer = Simulation("demo", replace(short, rounds=2))
    resumed = run_arm(longer, "ours", 0, base, log=lines.append)
    assert progress_path(longer, "ours", 0) == saved  # the same file: every setting but the rounds
    assert any("rounds 1–1 from" in line for line in lines)
    assert [r.round for r in resumed] == [0, 1, 2]
    assert resumed[1].train_seconds == first[1].train_seconds  # round 1 was not run again
    assert {r.key for r in resumed} == {replace(short, rounds=2).key("demo")}

    saved.unlink()  # the same two rounds unbroken
    unbroken = run_arm(longer, "ours", 0, base, log=lambda line: None)
    for a, b in zip(resumed, unbroken):
        assert (a.round, a.labeled_percent, a.miou, a.candidate_miou, a.promoted, a.per_class_iou) == \
               (b.round, b.labeled_percent, b.miou, b.candidate_miou, b.promoted, b.per_class_iou)

    # a run shorter than the saved one starts over and leaves nothing of the longer run's rounds
    again = run_arm(sim, "ours", 0, base, log=lambda line: None)
    assert [r.round for r in again] == [0, 1] and again[1].miou == first[1].miou

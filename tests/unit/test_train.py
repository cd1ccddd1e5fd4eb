from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from learning.adaptation import OBJECTIVES, TargetObjective, masked_cross_entropy, register_objective
from learning.checkpoint import load_checkpoint
from learning.labels import IGNORE_INDEX
from learning.models import build_model, model_forward
from learning.train import TrainConfig, _main, checkpoint_meta, train
from learning.progress import Cancelled

TINY = dict(arch="lraspp_mobilenet_v3_large", num_classes=2, size=(32, 48), batch_size=2, target_batch_size=2)


def test_training_steps_reduce_the_loss_on_a_fixed_batch(tiny_samples):
    # Two samples and batch size 2, no augmentation: every step sees the same batch.
    config = TrainConfig(**TINY, steps=25, lr=3e-3, schedule="constant", augment=False, log_every=1)
    result = train(config, labeled=tiny_samples(2))
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 25
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])


def test_pixels_at_255_contribute_nothing_to_loss_or_gradient():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, requires_grad=True)
    target = torch.randint(0, 3, (2, 5, 6))
    region = target.clone()
    region[:, :, 3:] = IGNORE_INDEX  # only the left half is labeled
    loss = masked_cross_entropy(logits, region)
    loss.backward()
    assert torch.all(logits.grad[:, :, :, 3:] == 0)
    assert torch.all(logits.grad[:, :, :, :3].abs().sum(1) > 0)
    # ... and it equals the plain mean over the labeled pixels only.
    expected = F.cross_entropy(logits[:, :, :, :3].detach(), target[:, :, :3])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_region_labels_restrict_the_model_gradient(tiny_samples):
    """Changing the labels outside the region changes nothing once they are 255."""
    model = build_model("lraspp_mobilenet_v3_large", 2).train()
    sample = tiny_samples(2)
    x = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1).float() / 255 for s in sample])
    full = torch.stack([torch.from_numpy(s.mask.astype(np.int64)) for s in sample])

    def grads(target):
        model.zero_grad()
        masked_cross_entropy(model_forward(model, x).logits, target).backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    region_a = full.clone()
    region_a[:, 16:] = IGNORE_INDEX
    region_b = region_a.clone()
    flipped = 1 - full
    region_b[:, 16:] = flipped[:, 16:]  # contradictory labels outside the region ...
    region_b[:, 16:] = IGNORE_INDEX  # ... erased again: must be identical to region_a
    for a, b in zip(grads(region_a), grads(region_b)):
        torch.testing.assert_close(a, b)
    differs = [not torch.allclose(a, b) for a, b in zip(grads(region_a), grads(flipped))]
    assert any(differs)


def test_an_all_unlabeled_batch_gives_zero_loss_not_nan():
    logits = torch.randn(1, 2, 3, 3, requires_grad=True)
    loss = masked_cross_entropy(logits, torch.full((1, 3, 3), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0)
    weighted = masked_cross_entropy(logits, torch.full((1, 3, 3), IGNORE_INDEX), weight=torch.ones(2))
    assert weighted.item() == 0.0


def test_progress_is_reported_for_every_step_and_the_evaluation(tiny_samples):
    calls = []
    samples = tiny_samples(3)
    result = train(TrainConfig(**TINY, steps=4), labeled=samples, val=samples[:2],
                   progress=lambda *args: calls.append(args))
    train_calls = [c for c in calls if c[0] == "train"]
    assert [(c[1], c[2]) for c in train_calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(isinstance(c[3], float) for c in train_calls)
    assert ("evaluate", 2, 2, None) in calls
    assert result.metrics is not None and result.metrics.num_classes == 2


def test_cancellation_stops_within_a_step(tiny_samples):
    seen = []

    def should_stop():
        return len(seen) >= 2

    with pytest.raises(Cancelled):
        train(TrainConfig(**TINY, steps=50), labeled=tiny_samples(2),
              progress=lambda phase, step, total, loss: seen.append(step), should_stop=should_stop)
    assert seen == [1, 2]


def test_cancellation_during_pseudo_labeling(tiny_samples):
    init = build_model("lraspp_mobilenet_v3_large", 2).state_dict()
    phases = []
    with pytest.raises(Cancelled):
        train(TrainConfig(**TINY, steps=5, self_training=True), labeled=tiny_samples(2),
              unlabeled=tiny_samples(3, labeled=False, seed=1), init_state=init,
              progress=lambda phase, *rest: phases.append(phase), should_stop=lambda: "pseudo_labels" in phases)
    assert "train" not in phases


def test_warm_start_with_zero_steps_returns_the_initial_weights(tiny_samples):
    init = build_model("lraspp_mobilenet_v3_large", 2).state_dict()
    result = train(TrainConfig(**TINY, steps=0), labeled=tiny_samples(2), init_state=init)
    for key, value in init.items():
        assert torch.equal(result.state_dict[key], value), key


def test_same_seed_same_weights(tiny_samples):
    samples = tiny_samples(3)
    first = train(TrainConfig(**TINY, steps=3, seed=7), labeled=samples).state_dict
    second = train(TrainConfig(**TINY, steps=3, seed=7), labeled=samples).state_dict
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_adversarial_and_self_training_combine(tiny_samples):
    labeled, unlabeled = tiny_samples(3), tiny_samples(3, labeled=False, seed=1)
    config = TrainConfig(**TINY, steps=3, adversarial=True, self_training=True, log_every=1)
    first = train(config, labeled=labeled, unlabeled=unlabeled, init_state=build_model(**{
        "arch": TINY["arch"], "num_classes": 2}).state_dict())
    assert {"supervised", "adversarial", "self_training", "discriminator"} <= set(first.history[-1])
    assert first.objective_summaries["self_training"]["pseudo_labeled_fraction"] > 0


def test_a_registered_objective_plugs_into_the_loop(tiny_samples):
    @register_objective("test_entropy_minimisation")
    class EntropyMinimisation(TargetObjective):
        def setup(self, context):
            self.steps_seen = []

        def loss(self, state):
            probs = state.target_out.logits.softmax(1)
            return {"entropy": -(probs * probs.clamp_min(1e-8).log()).sum(1).mean() * self.options["weight"]}

        def after_step(self, state):
            self.steps_seen.append(state.step)

        def summary(self):
            return {"steps": self.steps_seen}

    try:
        config = TrainConfig(**TINY, steps=3, objectives=("test_entropy_minimisation",),
                             objective_options={"test_entropy_minimisation": {"weight": 0.1}}, log_every=1)
        result = train(config, labeled=tiny_samples(2), unlabeled=tiny_samples(2, labeled=False, seed=1))
        assert result.objective_summaries["test_entropy_minimisation"] == {"steps": [0, 1, 2]}
        assert all("entropy" in h for h in result.history)
    finally:
        OBJECTIVES.pop("test_entropy_minimisation")


def test_config_validation(tiny_samples):
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="unknown architecture"):
        TrainConfig(arch="nope")
    with pytest.raises(ValueError, match="unknown training objective"):
        train(TrainConfig(**TINY, steps=1, objectives=("nope",)), labeled=tiny_samples(2))


def test_enet_class_weighting_trains(tiny_samples):
    result = train(TrainConfig(**TINY, steps=2, class_weighting="enet"), labeled=tiny_samples(2))
    assert np.isfinite(result.history[-1]["loss"])


def test_cli_trains_and_writes_a_checkpoint(tmp_path, tiny_samples):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for sample in tiny_samples(3):
        Image.fromarray(sample.image).save(data / "images" / f"{sample.key}.png")
        Image.fromarray(sample.mask, mode="L").save(data / "masks" / f"{sample.key}.png")
    classes = [{"id": 0, "name": "background"}, {"id": 1, "name": "square"}]
    (data / "classes.json").write_text(json.dumps({"classes": classes, "ignore_index": 255}))
    out = tmp_path / "v1"
    assert _main(["--data", str(data), "--val", str(data), "--out", str(out), "--arch", TINY["arch"],
                  "--size", "32", "48", "--steps", "2", "--batch-size", "2"]) == 0
    state_dict, meta = load_checkpoint(out, expected_classes=["background", "square"])
    assert meta["training_config"]["steps"] == 2 and meta["metrics"]["num_classes"] == 2
    assert meta["data_hashes"]["labeled"] and meta["normalization"]["mean"]
    assert _main(["--data", str(data), "--out", str(tmp_path / "v2"), "--init", str(out), "--arch", TINY["arch"],
                  "--size", "32", "48", "--steps", "1", "--batch-size", "2"]) == 0
    assert load_checkpoint(tmp_path / "v2")[1]["parent_version"] == str(out)


def test_checkpoint_meta_is_json_serialisable(tiny_samples):
    samples = tiny_samples(2)
    result = train(TrainConfig(**TINY, steps=1), labeled=samples, val=samples)
    json.dumps(checkpoint_meta(result, classes=["a", "b"], parent="v0"))


def test_step_plan_fits_the_run_into_the_time_budget_and_wins_steps_back_when_the_machine_frees_up():
    from learning.train import StepPlan

    plan = StepPlan(TrainConfig(**TINY, steps=100, time_budget_s=30.0), started=0.0)
    clock = 2.0  # setup took 2 s, then 1 s per step
    for done in range(1, 6):
        plan.after_step(done, clock + done)
    assert plan.total == 5 + int((30.0 - 7.0) / 1.0)  # = 28: the pace is measured after the first step
    for done in range(6, 16):  # the machine gets twice as slow
        plan.after_step(done, 7.0 + 2.0 * (done - 5))
    # Re-measured at step 15 (27 s): pace (27 - 3) / 14 = 1.71 s, 3 s left → one more step.
    assert plan.total == 16
    plan.after_step(16, 100.0)  # past the budget between checks: the plan never drops below done
    assert plan.total == 16
    freed = StepPlan(TrainConfig(**TINY, steps=100, time_budget_s=60.0), started=0.0)
    for done in range(1, 16):  # a busy start: 4 s a step
        freed.after_step(done, 4.0 * done)
    assert freed.total == 15  # (60 - 60) s left
    freed = StepPlan(TrainConfig(**TINY, steps=100, time_budget_s=100.0), started=0.0)
    for done in range(1, 16):
        freed.after_step(done, 4.0 * done)
    busy = freed.total  # 15 + (100 - 60) / 4 = 25
    for done in range(16, 26):  # the machine frees up: 0.5 s a step
        freed.after_step(done, 60.0 + 0.5 * (done - 15))
    # Re-measured at step 25 (65 s): pace (65 - 4) / 24 = 2.54 s, 35 s left → 13 more steps: more than planned
    assert busy == 25 and freed.total == 25 + int(35.0 / (61.0 / 24))
    quick = StepPlan(TrainConfig(**TINY, steps=40, time_budget_s=1000.0), started=0.0)
    for done in range(1, 36):
        quick.after_step(done, 0.1 * done)
    assert quick.total == 40  # never more than asked for
    untouched = StepPlan(TrainConfig(**TINY, steps=100, time_budget_s=30.0, schedule="onecycle"), started=0.0)
    unbudgeted = StepPlan(TrainConfig(**TINY, steps=100), started=0.0)
    for done in range(1, 30):
        untouched.after_step(done, 100.0 * done)
        unbudgeted.after_step(done, 100.0 * done)
    assert untouched.total == unbudgeted.total == 100


def test_an_exhausted_time_budget_stops_after_the_probe_steps(tiny_samples):
    config = TrainConfig(**TINY, steps=50, lr=1e-3, time_budget_s=1e-6, log_every=1)
    result = train(config, labeled=tiny_samples(2))
    assert result.steps == 5 and len(result.history) == 5
    assert result.history[-1]["step"] == 4
    with pytest.raises(ValueError, match="time_budget_s"):
        TrainConfig(**TINY, time_budget_s=-1)


def test_mixed_batches_take_the_target_share_from_target_labels():
    from learning.data import MixedBatchStream, Sample, labeled_batches

    def sample(value: int, target: bool) -> Sample:
        return Sample(image=np.full((16, 16, 3), value, np.uint8), mask=np.full((16, 16), value % 2, np.uint8),
                      key=f"{'t' if target else 's'}{value}", target=target)

    source = [sample(v, False) for v in range(20, 40)]
    target = [sample(v, True) for v in range(200, 202)]
    stream = labeled_batches(source + target, (16, 16), 8, target_share=0.5, augment=None, seed=0)
    assert isinstance(stream, MixedBatchStream) and stream.target_size == 4
    rows = [stream.next()[0] for _ in range(6)]
    assert all(r.shape[0] == 8 for r in rows)
    firsts = torch.stack([r[:, 0, 0, 0] for r in rows])
    assert firsts[:, 4:].min() > firsts[:, :4].max()  # target rows are the brighter images
    # nothing to mix: uniform draws, and a share of 0 keeps the old behaviour
    assert labeled_batches(target, (16, 16), 8, target_share=0.5, augment=None, seed=0).target_size == 0
    assert labeled_batches(source + target, (16, 16), 8, target_share=0.0, augment=None, seed=0).target_size == 0


def test_supervised_loss_weighs_the_target_rows_by_their_share_not_their_pixel_count():
    from learning.train import supervised_loss

    logits = torch.zeros(2, 2, 8, 8)
    logits[0, 0] = 3.0  # source row predicts class 0 (right): low loss
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[1] = IGNORE_INDEX
    masks[1, 0, 0] = 1  # target row: one labeled pixel, predicted 50/50
    pooled = supervised_loss(logits, masks, weight=None, target_rows=0, target_share=0.5)
    split = supervised_loss(logits, masks, weight=None, target_rows=1, target_share=0.5)
    source_loss = masked_cross_entropy(logits[:1], masks[:1])
    target_loss = masked_cross_entropy(logits[1:], masks[1:])
    assert torch.isclose(split, 0.5 * source_loss + 0.5 * target_loss)
    assert torch.isclose(pooled, masked_cross_entropy(logits, masks))
    assert split > 3 * pooled  # one labeled pixel counts half, not 1/65


def test_a_frozen_backbone_keeps_its_weights_and_batchnorm_statistics_while_the_head_learns(tiny_samples):
    samples = tiny_samples(4)
    init = train(TrainConfig(**TINY, steps=2), labeled=samples).state_dict
    config = TrainConfig(**TINY, steps=4, lr=3e-3, freeze_backbone=True, adversarial=True)
    result = train(config, labeled=samples, unlabeled=samples, init_state=init)
    backbone = [k for k in init if k.startswith("backbone.")]
    head = [k for k in init if k.startswith("classifier.") and init[k].is_floating_point()]
    assert backbone and all(torch.equal(result.state_dict[k], init[k]) for k in backbone)  # running stats included
    assert any(not torch.equal(result.state_dict[k], init[k]) for k in head)
    # The same round unfrozen moves the backbone: the test above is not vacuous.
    moved = train(TrainConfig(**TINY, steps=4, lr=3e-3, adversarial=True), labeled=samples, unlabeled=samples,
                  init_state=init).state_dict
    assert any(not torch.equal(moved[k], init[k]) for k in backbone)

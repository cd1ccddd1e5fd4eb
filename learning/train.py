"""Train a segmentation model: data -> model -> loss -> loop -> evaluation.

``train()`` is a plain function over :class:`~learning.data.Sample` lists, so
the Celery task, the benchmarks, the tests and the CLI all run the same code:

- ``labeled``: source images and labeled target images together. Region labels
  are masks that are 255 outside the labeled region; only labeled pixels count.
- ``unlabeled``: target images for the domain-adaptation objectives (a mask,
  where given, holds human labels that override pseudo-labels).
- ``init_state``: warm start from the previous round (a round costs minutes),
  or None to train from scratch (full retrain).

Domain adaptation is a list of registered target objectives
(:mod:`learning.adaptation`), switched on by ``adversarial`` /
``self_training`` or by name in ``objectives``.

CLI::

    python -m learning.train --data DIR [--target DIR] --out DIR --steps 500 --size 240 320
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from learning.adaptation import (
    ObjectiveContext, StepState, TargetObjective, build_objective, masked_cross_entropy,
)
from learning.adaptation.batchnorm import (
    StatisticsChoice, check_statistics_mode, choose_statistics, needs_target_variant, statistics_images,
    with_target_statistics,
)
from learning.data import (
    NORMALIZATION, Augment, BatchStream, Sample, SegmentationDataset, labeled_batches, samples_fingerprint,
)
from learning.device import numerics_for, pick_device
from learning.losses import WEIGHTINGS, class_weights_from_counts, soft_dice_loss
from learning.metrics import SegmentationMetrics
from learning.models import ARCHITECTURES, DEFAULT_ARCHITECTURE, build_model, model_forward
from learning.progress import Cancelled, ProgressFn

__all__ = ["TrainConfig", "TrainResult", "train", "checkpoint_meta"]

log = logging.getLogger(__name__)



@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in the checkpoint's meta)."""

    arch: str = DEFAULT_ARCHITECTURE
    num_classes: int = 2
    size: tuple[int, int] = (240, 320)  # (H, W) the network trains at
    batch_size: int = 8  # labeled images per step
    # > 0: this share of each labeled batch comes from the target images' labels (Sample.target) when the
    # labeled set mixes source and target images; 0 = uniform draws over all labeled images
    target_label_share: float = 0.0
    target_batch_size: int = 4  # unlabeled target images per step (when an objective needs them)
    steps: int = 500
    lr: float = 1e-3
    optimizer: str = "adamw"  # "adamw" | "sgd"
    weight_decay: float = 1e-4
    momentum: float = 0.9  # SGD only
    schedule: str = "poly"  # "poly" | "onecycle" | "constant"
    warmup_steps: int = 0  # linear warm-up for "poly"/"constant"
    grad_clip: float | None = 10.0
    # > 0: run fewer than ``steps`` when the measured pace would overrun this many seconds (setup included);
    # the poly/constant schedule is rescaled to the shorter run. One-cycle runs always do every step.
    time_budget_s: float = 0.0
    class_weighting: str = "none"  # "none" | "enet" | "sqrt" (learning/losses.py), from the labeled masks
    dice_weight: float = 0.0  # > 0: add this times a soft Dice loss to the cross-entropy (learning/losses.py)
    supervised_weight: float = 1.0  # 0 = no cross-entropy: e.g. a pixel-contrastive-only pretraining stage
    augment: bool = True
    scale_range: tuple[float, float] = (0.75, 1.5)
    seed: int = 0
    device: str | None = None  # None = CUDA when present, else CPU
    precision: str = "auto"  # "auto" | "fp32" | "bf16" | "fp16"
    backbone_checkpoint: str | None = None  # local ImageNet/backbone state_dict for from-scratch runs
    # Train the head alone: the backbone's weights and BatchNorm statistics stay as loaded (a fine-tuning round
    # that must not drift from the model it starts from; each step also costs less, with no backward through it).
    freeze_backbone: bool = False
    # > 0: labeled source images are drawn by rare-class sampling at this temperature (learning.data.
    # rare_class_probabilities; DAFormer used 0.01); 0 = a uniform permutation per epoch.
    rare_class_temperature: float = 0.0
    # After training, BatchNorm statistics re-estimated on the unlabeled target images (AdaBN): "off", "on", or
    # "auto" = only where they score higher on ``val`` (learning.adaptation.batchnorm.choose_statistics).
    target_statistics: str = "off"
    # Domain adaptation on the unlabeled target images.
    adversarial: bool = False
    adversarial_weight: float = 0.001
    discriminator_lr: float = 1e-4
    discriminator_width: int = 64
    discriminator_downsample: int = 4  # the discriminator sees softmax maps at 1/4 of the training size
    self_training: bool = False
    self_training_weight: float = 1.0
    pseudo_label_portion: float = 0.5  # CBST: keep each predicted class's most confident 50 %
    pseudo_label_cap: float = 0.95  # ... but any pixel at least this confident is kept
    pseudo_label_floor: float = 0.0  # ... and none below this
    pseudo_label_target_bn: bool = True  # pseudo-labels from a copy with BatchNorm statistics of the target images
    self_training_start: float = 0.5  # from scratch: first pseudo-labels after this fraction of steps
    objectives: tuple[str, ...] = ()  # further registered objectives by name
    objective_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    log_every: int = 10

    def __post_init__(self) -> None:
        self.size = (int(self.size[0]), int(self.size[1]))
        self.scale_range = (float(self.scale_range[0]), float(self.scale_range[1]))
        self.objectives = tuple(self.objectives)
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {sorted(ARCHITECTURES)}")
        if self.batch_size < 2:
            # DeepLab's ASPP pools each image to 1x1 before a BatchNorm, which cannot train on one value.
            raise ValueError("batch_size must be >= 2 (BatchNorm in the ASPP pooling branch)")
        if self.steps < 0 or self.num_classes < 1:
            raise ValueError("steps must be >= 0 and num_classes >= 1")
        if self.class_weighting not in WEIGHTINGS:
            raise ValueError(f"unknown class_weighting {self.class_weighting!r}; choose one of {WEIGHTINGS}")
        if self.dice_weight < 0:
            raise ValueError("dice_weight must be >= 0")
        if not 0.0 <= self.target_label_share < 1.0:
            raise ValueError("target_label_share must be in [0, 1)")
        if self.time_budget_s < 0:
            raise ValueError("time_budget_s must be >= 0 (0 = no budget)")
        if self.rare_class_temperature < 0:
            raise ValueError("rare_class_temperature must be >= 0 (0 = uniform draws)")
        check_statistics_mode(self.target_statistics)

    @property
    def objective_names(self) -> tuple[str, ...]:
        names = (("adversarial",) if self.adversarial else ()) + (("self_training",) if self.self_training else ())
        return names + tuple(n for n in self.objectives if n not in names)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainResult:
    state_dict: dict[str, torch.Tensor]  # CPU tensors
    metrics: SegmentationMetrics | None  # on ``val``, when given
    history: list[dict[str, float]]  # every ``log_every`` steps: step, lr, loss and its terms
    seconds: float  # wall time of the whole call
    train_seconds: float  # the step loop alone
    steps: int  # steps run: fewer than config.steps when the time budget cut the run short
    epochs: float  # passes over the labeled set
    objective_summaries: dict[str, dict[str, Any]]
    objective_states: dict[str, dict[str, Any]]  # final state worth keeping, e.g. consistency's EMA teacher
    data_hashes: dict[str, str]
    config: TrainConfig
    batchnorm: StatisticsChoice | None = None  # which BatchNorm statistics the model kept (target_statistics)

    @property
    def seconds_per_step(self) -> float:
        return self.train_seconds / self.steps if self.steps else 0.0


def class_weights(samples: Sequence[Sample], num_classes: int, size: tuple[int, int],
                  scheme: str = "enet") -> torch.Tensor | None:
    """Per-class loss weights (``scheme``, see learning/losses.py) from the labeled pixels' class frequencies."""
    from learning.data import labeled_class_counts

    return class_weights_from_counts(labeled_class_counts(samples, size, num_classes).sum(axis=0), scheme)


def supervised_loss(logits: torch.Tensor, masks: torch.Tensor, *, weight: torch.Tensor | None,
                    target_rows: int, target_share: float) -> torch.Tensor:
    """Cross-entropy over the labeled pixels; with ``target_rows`` > 0 the last rows are target images whose
    mean counts ``target_share`` of the loss, the source rows' mean the rest.

    One mean over all pixels would let fully labeled source images outweigh a
    round's region labels (about 1 % of a target image) a hundredfold.
    """
    if target_rows <= 0:
        return masked_cross_entropy(logits, masks, weight=weight)
    split = logits.shape[0] - target_rows
    return ((1.0 - target_share) * masked_cross_entropy(logits[:split], masks[:split], weight=weight)
            + target_share * masked_cross_entropy(logits[split:], masks[split:], weight=weight))


def set_train_mode(model: torch.nn.Module, config: TrainConfig) -> None:
    """Training mode, but a frozen backbone stays in eval mode: its BatchNorm statistics must not move either."""
    model.train()
    if config.freeze_backbone:
        model.backbone.eval()


def _optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    # No weight decay on norms and biases: decaying BatchNorm scales hurts small-batch training.
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


class StepPlan:
    """How many steps this run takes: ``config.steps``, or fewer once the pace shows the time budget is short.

    The pace is measured over the steps after the first (which pays for
    allocator and kernel warm-up) and re-measured every ``RECHECK`` steps, so a
    machine that gets busier mid-run still lands near the budget, and one that
    frees up again wins the steps back (the poly schedule then decays to the
    new end: a small rise in learning rate, where stopping at the old plan
    would leave the rest of the budget unused). Never more than
    ``config.steps``, never fewer than the steps already taken.
    """

    PROBE = 5  # steps before the first estimate
    RECHECK = 10

    def __init__(self, config: TrainConfig, started: float):
        self.total = self._planned = config.steps
        self._budget = config.time_budget_s if config.schedule != "onecycle" else 0.0
        self._started = started  # the budget counts from here (objective setup included)
        self._pace_from: tuple[int, float] | None = None  # (steps done, time) when pace measuring began

    def after_step(self, done: int, now: float) -> None:
        """Called with the number of steps done so far."""
        if self._budget <= 0:
            return
        if done == 1:
            self._pace_from = (done, now)
            return
        if self._pace_from is None or done < self.PROBE or (done - self.PROBE) % self.RECHECK:
            return
        pace = (now - self._pace_from[1]) / (done - self._pace_from[0])
        affordable = done + int(max(0.0, self._budget - (now - self._started)) / pace)
        self.total = max(done, min(self._planned, affordable))


def _scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer,
               plan: StepPlan) -> torch.optim.lr_scheduler.LRScheduler:
    total = max(config.steps, 1)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total + 1,
                                                   pct_start=0.15, div_factor=20.0, final_div_factor=200.0)

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
        if config.schedule == "constant":
            return warm
        if config.schedule == "poly":
            end = max(plan.total, 1)  # a shortened run decays to its own end
            return warm * (1.0 - min(step, end) / (end + 1)) ** 0.9
        raise ValueError(f"unknown schedule {config.schedule!r}")

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def train(config: TrainConfig, *, labeled: Sequence[Sample], unlabeled: Sequence[Sample] = (),
          val: Sequence[Sample] = (), init_state: dict[str, torch.Tensor] | None = None,
          progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train (or fine-tune) a model; raises :class:`learning.progress.Cancelled` when ``should_stop()`` turns True.

    ``progress(phase, step, total, loss)`` is called with phases
    ``"pseudo_labels"``, ``"train"`` (every step, with the loss) and ``"evaluate"``.
    """
    started = time.perf_counter()
    if not labeled and not unlabeled:
        raise ValueError("nothing to train on: no labeled and no unlabeled samples")
    _seed_everything(config.seed)
    device = pick_device(config.device)
    numerics = numerics_for(device, config.precision)

    def check_stop() -> None:
        if should_stop is not None and should_stop():
            raise Cancelled("training cancelled")

    model = build_model(config.arch, config.num_classes, backbone_checkpoint=config.backbone_checkpoint)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = numerics.prepare_model(model)
    if config.freeze_backbone:
        model.backbone.requires_grad_(False)
    set_train_mode(model, config)

    augment = Augment(scale=config.scale_range) if config.augment else None
    target_dataset = SegmentationDataset(unlabeled, config.size, augment=augment, seed=config.seed + 1) \
        if unlabeled else None
    objectives: list[TargetObjective] = [
        build_objective(name, config, config.objective_options.get(name)) for name in config.objective_names
    ]
    context = ObjectiveContext(config=config, model=model, numerics=numerics, target_dataset=target_dataset,
                               warm_start=init_state is not None, progress=progress, should_stop=should_stop)
    for objective in objectives:
        check_stop()
        objective.setup(context)
    set_train_mode(model, config)

    labeled_stream = labeled_batches(labeled, config.size, config.batch_size, target_share=config.target_label_share,
                                     augment=augment, seed=config.seed,
                                     rare_class_temperature=config.rare_class_temperature,
                                     num_classes=config.num_classes) if labeled else None
    needs_target = target_dataset is not None and any(o.needs_target_batch for o in objectives)
    target_stream = BatchStream(target_dataset, config.target_batch_size, seed=config.seed + 1) \
        if needs_target else None
    if labeled_stream is None and target_stream is None:
        raise ValueError("no labeled samples and no objective that trains on unlabeled ones")
    weight = class_weights(labeled, config.num_classes, config.size, config.class_weighting) \
        if config.class_weighting != "none" and labeled else None
    weight = weight.to(device) if weight is not None else None

    optimizer = _optimizer(config, model)
    plan = StepPlan(config, started)
    scheduler = _scheduler(config, optimizer, plan)
    scaler = torch.amp.GradScaler(device.type) if numerics.needs_grad_scaler else None
    history: list[dict[str, float]] = []
    loop_started = time.perf_counter()
    step = -1
    while step + 1 < plan.total:
        step += 1
        check_stop()
        if config.freeze_backbone:
            set_train_mode(model, config)  # an objective may have switched modes (e.g. to predict pseudo-labels)
        parts_x, parts_y = [], []
        if labeled_stream is not None:
            xs, ys = labeled_stream.next()
            parts_x.append(xs)
            parts_y.append(ys)
        if target_stream is not None:
            xt, yt = target_stream.next()
            for objective in objectives:
                xt, yt = objective.prepare_target_batch(step, xt, yt)
            parts_x.append(xt)
            parts_y.append(yt)
        # One forward over source and target together: cheaper on a CPU than two.
        x = numerics.prepare_input(torch.cat(parts_x))
        with numerics.autocast():
            out = model_forward(model, x)
        logits = out.logits.float()
        n_source = parts_x[0].shape[0] if labeled_stream is not None else 0
        ys = parts_y[0].to(device) if labeled_stream is not None else None
        state = StepState(
            step=step, total_steps=plan.total, model=model, numerics=numerics,
            source_images=parts_x[0] if labeled_stream is not None else None, source_masks=ys,
            source_out=type(out)(logits[:n_source], out.features[:n_source]), context=context,
        )
        if target_stream is not None:
            state.target_images = parts_x[-1]
            state.target_masks = parts_y[-1].to(device)
            state.target_out = type(out)(logits[n_source:], out.features[n_source:])
        terms: dict[str, torch.Tensor] = {}
        if ys is not None and config.supervised_weight > 0:
            terms["supervised"] = config.supervised_weight * supervised_loss(
                state.source_out.logits, ys, weight=weight, target_rows=labeled_stream.target_size,
                target_share=config.target_label_share)
            if config.dice_weight > 0:
                terms["dice"] = config.dice_weight * soft_dice_loss(state.source_out.logits, ys)
        for objective in objectives:
            terms.update(objective.loss(state))
        loss = sum(terms.values()) if terms else logits.sum() * 0.0

        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        for objective in objectives:
            objective.after_step(state)

        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at step {step}; lower the learning rate")
        plan.after_step(step + 1, time.perf_counter())
        if step % config.log_every == 0 or step == plan.total - 1:
            history.append({"step": step, "lr": optimizer.param_groups[0]["lr"], "loss": loss_value,
                            **{k: float(v.detach()) for k, v in terms.items()}, **state.logs})
        if progress is not None:
            progress("train", step + 1, plan.total, loss_value)
    train_seconds = time.perf_counter() - loop_started
    steps_done = step + 1

    model.eval()
    check_stop()
    model, scored, batchnorm = settle_statistics(model, config, unlabeled=unlabeled, val=val, numerics=numerics,
                                                 device=device, progress=progress)
    metrics = scored.get(batchnorm.chosen)
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    seen = steps_done * config.batch_size
    return TrainResult(
        state_dict=state_dict, metrics=metrics, history=history, seconds=time.perf_counter() - started,
        train_seconds=train_seconds, steps=steps_done, epochs=seen / len(labeled) if labeled else 0.0,
        objective_summaries={o.name: o.summary() for o in objectives},
        objective_states={o.name: o.state_dict() for o in objectives if o.state_dict()},
        data_hashes={"labeled": samples_fingerprint(labeled), "unlabeled": samples_fingerprint(unlabeled),
                     "val": samples_fingerprint(val)},
        config=config, batchnorm=batchnorm,
    )


def settle_statistics(model: torch.nn.Module, config: TrainConfig, *, unlabeled: Sequence[Sample],
                      val: Sequence[Sample], numerics, device, progress: ProgressFn | None = None
                      ) -> tuple[torch.nn.Module, dict[str, SegmentationMetrics], StatisticsChoice]:
    """The trained model with the BatchNorm statistics it keeps (choose_statistics), the metrics on ``val`` of each
    variant scored ("training", "target"; none without ``val``), and the choice."""
    from learning.inference import evaluate

    images = statistics_images(unlabeled, seed=config.seed) if config.target_statistics != "off" else []
    variants = {"training": model}
    if needs_target_variant(config.target_statistics, images=len(images), has_validation=bool(val)):
        variants["target"] = with_target_statistics(model, images, size=config.size, numerics=numerics,
                                                    batch_size=config.batch_size)
    metrics: dict[str, SegmentationMetrics] = {}
    if val:
        if progress is not None:
            progress("evaluate", 0, len(val), None)
        metrics = {name: evaluate(variant, val, config.num_classes, size=config.size, batch_size=config.batch_size,
                                  device=device, precision=config.precision) for name, variant in variants.items()}
        if progress is not None:
            progress("evaluate", len(val), len(val), None)
    choice = choose_statistics(config.target_statistics, images=len(images),
                               val_miou={name: m.miou for name, m in metrics.items()} if val else None)
    return variants[choice.chosen], metrics, choice


def checkpoint_meta(result: TrainResult, *, classes: Sequence[Any], parent: str | None = None,
                    **extra: Any) -> dict[str, Any]:
    """The meta.json content for :func:`learning.checkpoint.save_checkpoint` of a train result."""
    return {
        "architecture": result.config.arch,
        "classes": list(classes),
        "normalization": {k: list(v) for k, v in NORMALIZATION.items()},
        "input_size": list(result.config.size),
        "training_config": result.config.to_dict(),
        "parent_version": parent,
        "metrics": result.metrics.to_dict() if result.metrics else None,
        "data_hashes": result.data_hashes,
        "objectives": result.objective_summaries,
        "train_seconds": round(result.train_seconds, 2),
        "steps": result.steps,
        **extra,
    }


# --- CLI -------------------------------------------------------------------------------------------------


def _main(argv: Sequence[str] | None = None) -> int:
    from learning.checkpoint import load_checkpoint, save_checkpoint
    from learning.data import folder_samples

    parser = argparse.ArgumentParser(prog="python -m learning.train", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="labeled folder: images/, masks/, classes.json")
    parser.add_argument("--target", type=Path, help="unlabeled target folder (images/; masks/ are ignored)")
    parser.add_argument("--val", type=Path, help="labeled validation folder")
    parser.add_argument("--out", required=True, type=Path, help="new checkpoint directory (must not exist)")
    parser.add_argument("--init", type=Path, help="checkpoint directory to warm-start from")
    parser.add_argument("--arch", default=DEFAULT_ARCHITECTURE, choices=sorted(ARCHITECTURES))
    parser.add_argument("--size", nargs=2, type=int, default=[240, 320], metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    parser.add_argument("--schedule", default="poly", choices=["poly", "onecycle", "constant"])
    parser.add_argument("--adversarial", action="store_true")
    parser.add_argument("--self-training", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    classes = json.loads((args.data / "classes.json").read_text())["classes"]
    init_state, parent = None, None
    if args.init:
        init_state, init_meta = load_checkpoint(args.init, expected_classes=classes)
        parent = str(args.init)
    config = TrainConfig(arch=args.arch, num_classes=len(classes), size=tuple(args.size), steps=args.steps,
                         batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, schedule=args.schedule,
                         adversarial=args.adversarial, self_training=args.self_training, seed=args.seed,
                         device=args.device)
    last_print = [0.0]

    def progress(phase: str, step: int, total: int, loss: float | None) -> None:
        now = time.monotonic()
        if now - last_print[0] > 5 or step == total:
            last_print[0] = now
            print(f"{phase} {step}/{total}" + (f" loss {loss:.4f}" if loss is not None else ""), flush=True)

    result = train(config, labeled=folder_samples(args.data), val=folder_samples(args.val) if args.val else (),
                   unlabeled=folder_samples(args.target, masks=False) if args.target else (),
                   init_state=init_state, progress=progress)
    path = save_checkpoint(args.out, state_dict=result.state_dict,
                           meta=checkpoint_meta(result, classes=classes, parent=parent))
    if result.metrics:
        print(f"val mIoU {result.metrics.miou:.4f}, pixel accuracy {result.metrics.pixel_accuracy:.4f}")
    print(f"saved {path} ({result.train_seconds:.0f} s, {result.seconds_per_step:.2f} s/step)")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())

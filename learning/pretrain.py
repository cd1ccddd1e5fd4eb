"""Self-supervised pretraining of the encoder on the project's own images (no labels, no downloads).

maskloop never downloads ImageNet weights, and many projects' images are far
from ImageNet anyway; training from random weights needs hundreds of epochs
on CamVid (research/al-da-anchors.md, A4). Before round 0 the encoder can
instead learn from *all* the project's images, labeled or not, with a
contrastive objective on two augmented views of each image:

- **global** (SimCLR, Chen et al. 2020): pooled encoder features of the two
  views of one image are positives, every other view in the batch a negative;
  MLP projection head, InfoNCE (NT-Xent).
- **dense** (VADeR / PixPro-style, Pinheiro et al. 2020; Xie et al. 2021):
  the views are crops of one image with a known geometry, so a point seen in
  both gives a positive pair of *feature-map* vectors; all other sampled
  points of the batch are negatives. Segmentation needs per-pixel features,
  which the global term alone does not train.

The views: random resized crops (with flips) cut from the image at
``load_size`` and resized to ``view_size``, then UniMatch's strong photometric
augmentation (:class:`learning.adaptation.strong.StrongAugment`).

The result is a backbone ``state_dict`` file, the same thing a local ImageNet
backbone file is: pass it as ``TrainConfig.backbone_checkpoint``.

Initialising the encoder, three ways (only the first two exist on a machine
that may not download anything):

1. random (``backbone_checkpoint=None``, the default);
2. this module's encoder: ``pretrain_encoder(...).encoder_path``;
3. a local ImageNet classifier file a user brings, e.g. torchvision's
   ``mobilenet_v3_large-*.pth`` (keys ``features.N...`` plus ``classifier.*``,
   which is skipped) or ``resnet50-*.pth`` (``conv1``/``layerN``): the same
   ``TrainConfig.backbone_checkpoint``; :func:`learning.models.load_backbone`
   refuses a file that matches less than 90 % of the backbone's tensors.
   The weights are never fetched at run time.

Training is resumable: every ``save_every`` steps a checkpoint directory
``step-NNNNNN`` is written atomically (:func:`learning.checkpoint.save_checkpoint`)
with the encoder, heads and optimizer state; all randomness is a pure
function of (seed, step), so a resumed run continues exactly where the
interrupted one stopped. The finished encoder lands in ``encoder/``.

CLI::

    python -m learning.pretrain --images DIR [DIR ...] --out DIR --steps 1000
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from learning.progress import Cancelled, ProgressFn
from learning.adaptation.strong import StrongAugment, renormalize
from learning.checkpoint import CheckpointError, load_checkpoint, read_meta, save_checkpoint
from learning.data import CACHE, Sample, samples_fingerprint
from learning.device import numerics_for, pick_device
from learning.models import ARCHITECTURES, DEFAULT_ARCHITECTURE, build_model

log = logging.getLogger(__name__)

ENCODER_DIR = "encoder"
STEP_PREFIX = "step-"


@dataclass
class PretrainConfig:
    """Everything that determines a pretraining run (stored in every checkpoint's meta)."""

    arch: str = DEFAULT_ARCHITECTURE
    load_size: tuple[int, int] = (240, 320)  # (H, W) images are decoded at (and cached), as for training
    view_size: tuple[int, int] = (128, 160)  # (H, W) of each augmented view
    # Crop area as a fraction of the image: at 0.2-0.6 of 240x320 resized to 128x160, objects
    # appear at about the scale training at 240x320 shows them.
    crop_scale: tuple[float, float] = (0.2, 0.6)
    batch_size: int = 8  # images per step, two views each
    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    temperature: float = 0.1
    global_weight: float = 1.0
    dense_weight: float = 1.0
    points_per_image: int = 32  # dense correspondences per image and step
    projection_dim: int = 128
    seed: int = 0
    device: str | None = None
    precision: str = "auto"
    checkpoint_dir: str | None = None  # where step-NNNNNN/ and encoder/ go; None = nothing saved
    save_every: int = 100
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        self.load_size = (int(self.load_size[0]), int(self.load_size[1]))
        self.view_size = (int(self.view_size[0]), int(self.view_size[1]))
        self.crop_scale = (float(self.crop_scale[0]), float(self.crop_scale[1]))
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {sorted(ARCHITECTURES)}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2: the other images are the negatives")
        if not 0.0 < self.crop_scale[0] <= self.crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class PretrainResult:
    state_dict: dict[str, torch.Tensor]  # the encoder only: ``backbone.*`` keys, CPU tensors
    encoder_path: Path | None  # a file for ``TrainConfig.backbone_checkpoint``; None without checkpoint_dir
    steps: int
    seconds: float  # wall time of this call
    total_seconds: float  # of the whole run, across resumptions
    resumed_from: int  # the step this call started at (0 = fresh)
    history: list[dict[str, float]] = field(default_factory=list)


# --- the network ----------------------------------------------------------------------------------------


class Encoder(nn.Module):
    """The segmentation model's backbone with a global and a dense projection head."""

    def __init__(self, arch: str, projection_dim: int = 128):
        super().__init__()
        # num_classes is irrelevant: only the backbone is kept.
        self.backbone = build_model(arch, 1).backbone
        channels = _encoder_channels(self.backbone)
        hidden = min(512, 2 * channels)
        self.global_head = nn.Sequential(nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                         nn.Linear(hidden, projection_dim))
        self.dense_head = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                                        nn.ReLU(inplace=True), nn.Conv2d(hidden, projection_dim, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.backbone(x)
        return out["out"] if "out" in out else out["high"]  # DeepLab / LR-ASPP: the deepest map


def _encoder_channels(backbone: nn.Module) -> int:
    with torch.no_grad():
        was_training = backbone.training
        out = backbone.eval()(torch.zeros(1, 3, 64, 64))
        backbone.train(was_training)
    return (out["out"] if "out" in out else out["high"]).shape[1]


# --- views and correspondences --------------------------------------------------------------------------


@dataclass
class Crop:
    """A view's crop of the image in pixels of the loaded image, and whether it is mirrored."""

    top: float
    left: float
    height: float
    width: float
    flip: bool

    def intersect(self, other: "Crop") -> tuple[float, float, float, float] | None:
        top, left = max(self.top, other.top), max(self.left, other.left)
        bottom = min(self.top + self.height, other.top + other.height)
        right = min(self.left + self.width, other.left + other.width)
        return (top, left, bottom, right) if bottom > top and right > left else None

    def to_grid(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Image pixel coordinates -> this view's normalised [-1, 1] (x, y) for grid_sample."""
        u = (x - self.left) / self.width
        v = (y - self.top) / self.height
        if self.flip:
            u = 1.0 - u
        return torch.stack([2 * u - 1, 2 * v - 1], dim=-1)

    def theta(self, image_h: int, image_w: int) -> list[list[float]]:
        """affine_grid parameters mapping the view's [-1, 1] square onto the crop of the image."""
        sx = self.width / image_w * (-1.0 if self.flip else 1.0)
        sy = self.height / image_h
        cx = (self.left + self.width / 2) / image_w * 2 - 1
        cy = (self.top + self.height / 2) / image_h * 2 - 1
        return [[sx, 0.0, cx], [0.0, sy, cy]]


def random_crop(rng: np.random.Generator, image_size: tuple[int, int], view_size: tuple[int, int],
                scale: tuple[float, float]) -> Crop:
    """A crop of ``scale`` of the image's area with the view's aspect ratio (jittered 3/4-4/3)."""
    h, w = image_size
    area = rng.uniform(*scale) * h * w
    aspect = view_size[1] / view_size[0] * math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    ch = min(float(h), math.sqrt(area / aspect))
    cw = min(float(w), ch * aspect)
    return Crop(top=float(rng.uniform(0, h - ch)), left=float(rng.uniform(0, w - cw)), height=ch, width=cw,
                flip=bool(rng.random() < 0.5))


def overlapping_crops(rng: np.random.Generator, image_size: tuple[int, int], view_size: tuple[int, int],
                      scale: tuple[float, float], min_overlap: float = 0.2, tries: int = 20) -> tuple[Crop, Crop]:
    """Two crops sharing at least ``min_overlap`` of the smaller one's area (else the second is the first, flipped)."""
    first = random_crop(rng, image_size, view_size, scale)
    for _ in range(tries):
        second = random_crop(rng, image_size, view_size, scale)
        box = first.intersect(second)
        if box is not None:
            shared = (box[2] - box[0]) * (box[3] - box[1])
            if shared >= min_overlap * min(first.height * first.width, second.height * second.width):
                return first, second
    return first, dataclasses.replace(first, flip=not first.flip)


def render_views(images: torch.Tensor, crops: Sequence[Crop], view_size: tuple[int, int]) -> torch.Tensor:
    """Cut and resize one crop per image: [0, 1] (N, 3, H, W) -> (N, 3, h, w), bilinear."""
    n, _, h, w = images.shape
    theta = torch.tensor([c.theta(h, w) for c in crops], dtype=images.dtype)
    grid = F.affine_grid(theta, [n, 3, *view_size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def sample_points(rng: np.random.Generator, first: Crop, second: Crop, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) image coordinates of ``count`` points both crops see (uniform over their intersection)."""
    box = first.intersect(second)
    if box is None:  # overlapping_crops never returns such a pair; keep the function total anyway
        box = (first.top, first.left, first.top + first.height, first.left + first.width)
    top, left, bottom, right = box
    return rng.uniform(top, bottom, count), rng.uniform(left, right, count)


# --- losses ---------------------------------------------------------------------------------------------


def info_nce(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``queries`` and of ``keys`` are positives, other rows negatives."""
    q, k = F.normalize(queries.float(), dim=1), F.normalize(keys.float(), dim=1)
    logits = q @ k.t() / temperature
    target = torch.arange(q.shape[0], device=q.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss over 2N views: each view's positive is its partner, the other 2N - 2 are negatives."""
    z = F.normalize(torch.cat([first, second]).float(), dim=1)
    n = first.shape[0]
    logits = (z @ z.t() / temperature).masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device),
                                                   float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)


# --- the run --------------------------------------------------------------------------------------------


def _batch_indices(step: int, batch_size: int, count: int, seed: int) -> list[int]:
    """The images of ``step``: consecutive slices of one seeded permutation per epoch (stateless, resumable)."""
    indices = []
    for k in range(step * batch_size, (step + 1) * batch_size):
        epoch, position = divmod(k, count)
        indices.append(int(np.random.default_rng([seed, 1, epoch]).permutation(count)[position]))
    return indices


def _lr_factor(config: PretrainConfig, step: int) -> float:
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Adam's per-parameter state as flat tensors: checkpoints hold tensors only (weights_only loading)."""
    flat = {}
    for index, values in optimizer.state_dict()["state"].items():
        for name, value in values.items():
            flat[f"optimizer.{index}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return flat


def _restore_optimizer(optimizer: torch.optim.Optimizer, flat: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    current = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})


def _checkpoints(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{STEP_PREFIX}[0-9]*"), key=lambda p: p.name, reverse=True) \
        if directory.exists() else []


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete, uncorrupted ``step-NNNNNN`` directory under ``directory``, if any."""
    for path in _checkpoints(Path(directory)):
        try:
            read_meta(path)
            return path
        except CheckpointError as error:
            log.warning("skipping unusable pretraining checkpoint %s: %s", path, error)
    return None


def round0_pretrain_config(arch: str, train_size: tuple[int, int], steps: int, *,
                           checkpoint_dir: str | None = None, seed: int = 0) -> PretrainConfig:
    """The pretraining a project runs before round 0 when it trains at ``train_size`` (H, W).

    Images are decoded at the training size and each view is half of it, so
    that objects appear at the scale training shows them (``crop_scale``);
    ``steps``: the project's round-0 steps. The app's worker and the dataset
    suite both take it from here.
    """
    height, width = int(train_size[0]), int(train_size[1])
    return PretrainConfig(arch=arch, load_size=(height, width), view_size=(max(32, height // 2), max(32, width // 2)),
                          steps=int(steps), checkpoint_dir=checkpoint_dir, seed=int(seed))


def pretrain_encoder(images: Sequence[Sample], config: PretrainConfig, *, resume_from: str | Path | None = None,
                     progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None
                     ) -> PretrainResult:
    """Pretrain ``config.arch``'s encoder on ``images`` (their masks are ignored); resumable.

    Resumes from ``resume_from`` (a ``step-NNNNNN`` directory), else from the
    newest checkpoint in ``config.checkpoint_dir``. When ``encoder/`` exists
    there already, the finished run is returned without training. Raises
    :class:`learning.progress.Cancelled` when ``should_stop()``
    turns True, after saving a checkpoint to resume from.
    """
    started = time.perf_counter()
    if not images:
        raise ValueError("no images to pretrain on")
    directory = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    if directory is not None and (directory / ENCODER_DIR / "meta.json").exists():
        return _finished(directory, started)

    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    numerics = numerics_for(device, config.precision)
    encoder = Encoder(config.arch, config.projection_dim)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start, history, previous_seconds = 0, [], 0.0
    resume = Path(resume_from) if resume_from else (latest_checkpoint(directory) if directory else None)
    if resume is not None:
        state, meta = load_checkpoint(resume)
        if meta.get("architecture") != config.arch:
            raise CheckpointError(f"{resume} pretrained {meta.get('architecture')}, not {config.arch}")
        encoder.load_state_dict({k: v for k, v in state.items() if not k.startswith("optimizer.")})
        _restore_optimizer(optimizer, {k: v for k, v in state.items() if k.startswith("optimizer.")})
        start, history = int(meta["step"]), list(meta.get("history", []))
        previous_seconds = float(meta.get("seconds", 0.0))
        log.info("resuming self-supervised pretraining at step %d from %s", start, resume)
    encoder = numerics.prepare_model(encoder).train()
    # Adam's moments were restored on the CPU: keep them next to the parameters.
    for values in optimizer.state.values():
        for key, value in values.items():
            if torch.is_tensor(value) and key != "step":
                values[key] = value.to(device)
    strong = StrongAugment()
    fingerprint = samples_fingerprint([Sample(image=s.image) for s in images]) if directory else ""

    def save(step: int) -> None:
        if directory is None:
            return
        meta = {"architecture": config.arch, "classes": [], "kind": "ssl_pretraining", "step": step,
                "pretrain_config": config.to_dict(), "history": history, "images": len(images),
                "images_fingerprint": fingerprint,
                "seconds": round(previous_seconds + time.perf_counter() - started, 2)}
        state = {k: v for k, v in encoder.state_dict().items()}
        state.update(_flatten_optimizer(optimizer))
        target = directory / f"{STEP_PREFIX}{step:06d}"
        if not target.exists():
            save_checkpoint(target, state_dict=state, meta=meta)
        for old in _checkpoints(directory)[max(1, config.keep_checkpoints):]:
            shutil.rmtree(old, ignore_errors=True)

    for step in range(start, config.steps):
        if should_stop is not None and should_stop():
            save(step)
            raise Cancelled("pretraining cancelled")
        rng = np.random.default_rng([config.seed, 2, step])
        batch = [images[i] for i in _batch_indices(step, config.batch_size, len(images), config.seed)]
        pixels = torch.stack([torch.from_numpy(np.array(CACHE.get_or_load("image", s.image, config.load_size)))
                              for s in batch]).permute(0, 3, 1, 2).float().div_(255.0)
        pairs = [overlapping_crops(rng, config.load_size, config.view_size, config.crop_scale) for _ in batch]
        views = [strong(renormalize(render_views(pixels, [p[v] for p in pairs], config.view_size)), rng)
                 for v in (0, 1)]
        points = [sample_points(rng, a, b, config.points_per_image) for a, b in pairs]
        for group in optimizer.param_groups:
            group["lr"] = config.lr * _lr_factor(config, step)

        x = numerics.prepare_input(torch.cat(views))
        with numerics.autocast():
            maps = encoder.features(x)
        maps = maps.float()
        n = len(batch)
        terms: dict[str, torch.Tensor] = {}
        if config.global_weight:
            pooled = encoder.global_head(maps.mean((2, 3)))
            terms["global"] = config.global_weight * nt_xent(pooled[:n], pooled[n:], config.temperature)
        if config.dense_weight:
            dense = encoder.dense_head(maps)
            sampled = []
            for v in (0, 1):
                grid = torch.stack([pairs[i][v].to_grid(torch.from_numpy(points[i][0]).float(),
                                                        torch.from_numpy(points[i][1]).float())
                                    for i in range(n)])  # (N, P, 2)
                # border, not zero padding: a point near the view's edge must not fade towards zero
                values = F.grid_sample(dense[v * n:(v + 1) * n], grid[:, :, None].to(dense.device),
                                       mode="bilinear", padding_mode="border", align_corners=False)  # (N, d, P, 1)
                sampled.append(values[..., 0].permute(0, 2, 1).reshape(-1, dense.shape[1]))
            terms["dense"] = config.dense_weight * info_nce(sampled[0], sampled[1], config.temperature)
        loss = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(encoder.parameters(), 10.0)
        optimizer.step()

        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"pretraining loss became {value} at step {step}; lower the learning rate")
        if step % 10 == 0 or step == config.steps - 1:
            history.append({"step": step, "loss": value, **{k: float(v.detach()) for k, v in terms.items()}})
        if progress is not None:
            progress("pretrain", step + 1, config.steps, value)
        if (step + 1) % config.save_every == 0 and step + 1 < config.steps:
            save(step + 1)

    backbone = {f"backbone.{k}": v.detach().cpu().contiguous() for k, v in encoder.backbone.state_dict().items()}
    seconds = time.perf_counter() - started
    encoder_path = None
    if directory is not None:
        save(config.steps)
        final = save_checkpoint(directory / ENCODER_DIR, state_dict=backbone, meta={
            "architecture": config.arch, "classes": [], "kind": "ssl_encoder", "steps": config.steps,
            "pretrain_config": config.to_dict(), "images": len(images), "images_fingerprint": fingerprint,
            "seconds": round(previous_seconds + seconds, 2), "history": history})
        encoder_path = final / "weights.pt"
    return PretrainResult(state_dict=backbone, encoder_path=encoder_path, steps=config.steps, seconds=seconds,
                          total_seconds=previous_seconds + seconds, resumed_from=start, history=history)


def _finished(directory: Path, started: float) -> PretrainResult:
    state, meta = load_checkpoint(directory / ENCODER_DIR)
    return PretrainResult(state_dict=state, encoder_path=directory / ENCODER_DIR / "weights.pt",
                          steps=int(meta["steps"]), seconds=time.perf_counter() - started,
                          total_seconds=float(meta.get("seconds", 0.0)), resumed_from=int(meta["steps"]),
                          history=list(meta.get("history", [])))


# --- CLI -------------------------------------------------------------------------------------------------


def image_samples(folder: Path) -> list[Sample]:
    """Images of an import-layout folder (``images/``) or of a plain folder, sorted by name."""
    root = folder / "images" if (folder / "images").is_dir() else folder
    return [Sample(image=p, key=p.stem) for p in sorted(root.iterdir())
            if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m learning.pretrain", description=__doc__.split("\n")[0])
    parser.add_argument("--images", required=True, nargs="+", type=Path, help="folders of images (or images/)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint folder; an interrupted run resumes")
    parser.add_argument("--arch", default=DEFAULT_ARCHITECTURE, choices=sorted(ARCHITECTURES))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--load-size", nargs=2, type=int, default=[240, 320], metavar=("H", "W"))
    parser.add_argument("--view-size", nargs=2, type=int, default=[128, 160], metavar=("H", "W"))
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    images = [sample for folder in args.images for sample in image_samples(folder)]
    config = PretrainConfig(arch=args.arch, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            temperature=args.temperature, load_size=tuple(args.load_size),
                            view_size=tuple(args.view_size), save_every=args.save_every, seed=args.seed,
                            device=args.device, checkpoint_dir=str(args.out))
    last = [0.0]

    def progress(phase: str, step: int, total: int, loss: float | None) -> None:
        now = time.monotonic()
        if now - last[0] > 5 or step == total:
            last[0] = now
            print(f"{phase} {step}/{total} loss {loss:.4f}", flush=True)

    result = pretrain_encoder(images, config, progress=progress)
    print(f"encoder: {result.encoder_path} ({result.total_seconds:.0f} s in all; "
          f"resumed at step {result.resumed_from}) -> TrainConfig(backbone_checkpoint=...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())

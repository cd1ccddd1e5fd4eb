"""Score the unlabeled pool: one batched, no-grad forward pass per batch of images.

Every selection strategy and every suggestion works from the same per-image
record, a :class:`PoolScore`: per-pixel uncertainty, predicted class and
confidence at the scoring size, the decoder feature map (for image and region
descriptors) and an image-level score. Computing them all in one pass keeps
scoring within a few percent of a bare forward pass: the per-pixel maps are
cheap reductions over the logits, done batched on the model's device before
anything is copied to numpy.

Scores depend only on the model version, the image and the scoring settings,
so :class:`ScoreCache` can keep them on disk. A whole pool's full records do
not fit in memory (about 1.3 MB an image at 240x320): the round step streams
them through :func:`iter_scores` and keeps per image only a compact summary
(:mod:`learning.selection.summaries`, stored by :mod:`learning.selection.store`
in the same per-version folder).
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from learning.data import CACHE, ImageSource, Sample, load_image, normalize, resize_image, to_tensor
from learning.device import numerics_for, pick_device
from learning.selection.uncertainty import (
    UNCERTAINTY_MEASURES,
    entropy_from_log_probs,
    uncertainty_map,
)

Size = tuple[int, int]


@dataclass(eq=False)
class PoolScore:
    """What the current model thinks of one pool image, at the scoring size ``(h, w)``.

    ``uncertainty`` follows ``measure`` (higher = more uncertain, in [0, 1]);
    ``score`` is its image mean. ``feature_map`` is ``(D, fh, fw)`` at the
    network's output stride (float16: it only feeds distances); ``features``
    is its spatial mean, the image descriptor for diversity.
    ``image_size`` is the image's own ``(H, W)``: pixel budgets and region
    maps are counted there, not at the scoring size.
    """

    key: str
    image_size: Size
    pred: np.ndarray  # (h, w) uint8 argmax class
    confidence: np.ndarray  # (h, w) float32 max probability
    uncertainty: np.ndarray  # (h, w) float32 in [0, 1]
    feature_map: np.ndarray  # (D, fh, fw) float16
    measure: str = "entropy"
    score: float = field(default=float("nan"))

    def __post_init__(self) -> None:
        if np.isnan(self.score):
            self.score = float(self.uncertainty.mean())

    @classmethod
    def from_probs(
        cls,
        key: str,
        probs: np.ndarray,
        feature_map: np.ndarray,
        *,
        measure: str = "entropy",
        image_size: Size | None = None,
    ) -> PoolScore:
        """Build a record from softmax probabilities ``(C, h, w)`` (e.g. ``learning.inference.predict``).

        ``feature_map`` is ``(D, fh, fw)``; a ``(D,)`` vector is taken as a 1x1 map.
        """
        probs = np.asarray(probs, dtype=np.float32)
        fmap = np.asarray(feature_map)
        if fmap.ndim == 1:
            fmap = fmap[:, None, None]
        return cls(
            key=key,
            image_size=image_size or (int(probs.shape[1]), int(probs.shape[2])),
            pred=probs.argmax(0).astype(np.uint8),
            confidence=probs.max(0),
            uncertainty=uncertainty_map(probs, measure),
            feature_map=fmap.astype(np.float16),
            measure=measure,
        )

    @property
    def features(self) -> np.ndarray:
        """Image descriptor: the mean decoder feature, ``(D,)`` float32."""
        return self.feature_map.astype(np.float32).mean(axis=(1, 2))

    @property
    def size(self) -> Size:
        return (int(self.pred.shape[0]), int(self.pred.shape[1]))


def _sample_key(sample: Sample) -> str | None:
    if sample.key is not None:
        return sample.key
    if isinstance(sample.image, np.ndarray):
        return None
    return os.fspath(sample.image)


class ScoreCache:
    """On-disk cache of :class:`PoolScore` records for one model version.

    One ``.npz`` per (scoring settings, image key) under
    ``root/<model_version>/``; writes go to a temp file that is
    ``os.replace``d into place, so a crashed worker leaves no half-written
    entry. A new model version gets a fresh folder; :meth:`prune` drops old
    ones. Images passed as arrays without a ``key`` are never cached (they
    have no stable name).
    """

    def __init__(self, root: str | os.PathLike, model_version: str):
        if not str(model_version):
            raise ValueError("model_version must be non-empty")
        self.root = Path(root)
        self.model_version = str(model_version)
        self.directory = self.root / re.sub(r"[^A-Za-z0-9._-]", "_", self.model_version)

    def _path(self, key: str, settings: str) -> Path:
        digest = hashlib.sha1(f"{settings}\0{key}".encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest}.npz"

    def get(self, key: str, settings: str) -> PoolScore | None:
        path = self._path(key, settings)
        try:
            with np.load(path, allow_pickle=False) as data:
                return PoolScore(
                    key=key,
                    image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
                    pred=data["pred"],
                    confidence=data["confidence"].astype(np.float32),
                    uncertainty=data["uncertainty"].astype(np.float32),
                    feature_map=data["feature_map"],
                    measure=str(data["measure"]),
                    score=float(data["score"]),
                )
        except (OSError, KeyError, ValueError):
            return None  # missing or unreadable: score again

    def put(self, record: PoolScore, settings: str) -> None:
        path = self._path(record.key, settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(
                    stream,
                    image_size=np.asarray(record.image_size, dtype=np.int64),
                    pred=record.pred,
                    confidence=record.confidence.astype(np.float16),
                    uncertainty=record.uncertainty.astype(np.float16),
                    feature_map=record.feature_map.astype(np.float16),
                    measure=np.asarray(record.measure),
                    score=np.asarray(record.score),
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def summaries(self, spec):
        """This version's selection store for ``spec`` (a :class:`learning.selection.store.SummarySpec`)."""
        from learning.selection.store import SummaryStore

        return SummaryStore(self.directory / "summaries" / spec.tag(), spec)

    def prune(self, keep: Iterable[str] = ()) -> None:
        """Delete the folders of every model version except this one and ``keep``."""
        import shutil

        kept = {self.directory.name} | {re.sub(r"[^A-Za-z0-9._-]", "_", v) for v in keep}
        if self.root.is_dir():
            for child in self.root.iterdir():
                if child.is_dir() and child.name not in kept:
                    shutil.rmtree(child, ignore_errors=True)


def _image_size(source: ImageSource) -> Size:
    if isinstance(source, np.ndarray):
        return (int(source.shape[0]), int(source.shape[1]))
    with Image.open(source) as image:  # reads the header only
        return (image.height, image.width)


def _enable_dropout(model: nn.Module) -> int:
    count = 0
    for module in model.modules():
        if isinstance(module, (nn.Dropout, nn.Dropout2d)):
            module.train()
            count += 1
    return count


def _settings_tag(measure: str, size: Size, tta: bool, mc_samples: int) -> str:
    return f"{measure}-{size[0]}x{size[1]}-tta{int(tta)}-mc{mc_samples}"


def _chunks(items: Sequence, n: int) -> Iterator[Sequence]:
    for start in range(0, len(items), n):
        yield items[start : start + n]


def score_pool(
    model: nn.Module,
    images: Iterable[Sample | ImageSource],
    *,
    measure: str = "entropy",
    batch_size: int = 8,
    device: torch.device | str | None = None,
    size: Size = (240, 320),
    tta: bool = False,
    mc_samples: int = 0,
    cache: ScoreCache | None = None,
    precision: str = "auto",
) -> list[PoolScore]:
    """Score every image: uncertainty map, prediction, confidence, features; in input order.

    ``images``: :class:`learning.data.Sample` (its ``key`` names the record
    and the cache entry) or bare paths/arrays. ``size``: the (H, W) the
    network sees. ``tta``: average the probabilities of the image and its
    horizontal flip (2 passes). ``mc_samples``: if > 0, average that many
    passes with dropout active (MC-dropout; needs a model with dropout
    layers). Cached records are reused when ``cache`` holds this model
    version's scores for the same settings.

    Every record stays in memory: for a large pool use :func:`iter_scores`,
    which hands them over one at a time.
    """
    size = (int(size[0]), int(size[1]))
    settings = _settings_tag(measure, size, tta, mc_samples)
    samples = [item if isinstance(item, Sample) else Sample(image=item) for item in images]
    results: list[PoolScore | None] = [None] * len(samples)
    todo: list[int] = []
    for i, sample in enumerate(samples):
        key = _sample_key(sample)
        hit = cache.get(key, settings) if cache is not None and key is not None else None
        if hit is not None:
            results[i] = hit
        else:
            todo.append(i)
    if not todo:
        return results  # type: ignore[return-value]
    records = iter_scores(model, [samples[i] for i in todo], measure=measure, batch_size=batch_size, device=device,
                          size=size, tta=tta, mc_samples=mc_samples, precision=precision)
    for i, record in zip(todo, records):
        key = _sample_key(samples[i])
        if key is None:
            record.key = f"#{i}"
        results[i] = record
        if cache is not None and key is not None:
            cache.put(record, settings)
    return results  # type: ignore[return-value]


def iter_scores(
    model: nn.Module,
    images: Sequence[Sample | ImageSource],
    *,
    measure: str = "entropy",
    batch_size: int = 8,
    device: torch.device | str | None = None,
    size: Size = (240, 320),
    tta: bool = False,
    mc_samples: int = 0,
    precision: str = "auto",
    cache_images: bool = True,
) -> Iterator[PoolScore]:
    """:func:`score_pool` one record at a time, in input order, one batch in memory (no score cache).

    Records of images without a key are named ``#<position>``.
    ``cache_images=False`` decodes files without keeping them in
    :data:`learning.data.CACHE`: a pass over a large pool would only fill
    it (up to ``MASKLOOP_IMAGE_CACHE_MB``) with images read once.
    """
    if measure not in UNCERTAINTY_MEASURES:
        raise ValueError(f"unknown uncertainty measure {measure!r}; known: {sorted(UNCERTAINTY_MEASURES)}")
    size = (int(size[0]), int(size[1]))
    samples = [item if isinstance(item, Sample) else Sample(image=item) for item in images]
    if not samples:
        return

    # torchvision is heavy: only the scoring path pays for importing it.
    from learning.models import model_forward

    device = pick_device(device) if device is not None else next(model.parameters()).device
    numerics = numerics_for(device, precision)
    model = numerics.prepare_model(model)
    was_training = model.training
    model.eval()
    if mc_samples > 0 and _enable_dropout(model) == 0:
        model.train(was_training)
        raise ValueError("mc_samples > 0 needs a model with dropout layers")

    def log_probabilities(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with numerics.autocast():
            out = model_forward(model, x)
        # Logits come back channels-last (and bf16 on CPU): make them contiguous *before* the float copy;
        # every reduction over classes below runs several times faster on that layout.
        return out.logits.contiguous().float().log_softmax(dim=1), out.features

    def decode(source: ImageSource) -> np.ndarray:
        if cache_images:
            return CACHE.get_or_load("image", source, size)
        return resize_image(load_image(source), size)

    # The caller's work between batches sees the model in its own mode; restoring it walks every module
    # (a few percent of a small batch), so it is skipped when that mode is already eval.
    toggle = was_training or mc_samples > 0
    try:
        for chunk in _chunks(range(len(samples)), max(1, batch_size)):
            if not toggle and model.training:  # the caller switched it meanwhile
                model.eval()
            with torch.inference_mode():
                batch = torch.stack([to_tensor(decode(samples[i].image)) for i in chunk])
                x = numerics.prepare_input(normalize(batch))
                log_probs, features = log_probabilities(x)
                probs = log_probs.exp()
                passes = 1
                if tta:
                    # flip() drops the channels-last layout; without it the convolutions take a slow path.
                    flipped, _ = log_probabilities(numerics.prepare_input(torch.flip(x, dims=(-1,))))
                    probs = probs + torch.flip(flipped, dims=(-1,)).exp()
                    passes += 1
                for _ in range(max(0, mc_samples - 1)):
                    probs = probs + log_probabilities(x)[0].exp()
                    passes += 1
                if passes > 1:
                    probs = probs / passes
                    log_probs = probs.clamp_min(1e-30).log()
                confidence, pred = probs.max(dim=1)
                if measure == "entropy":
                    unc = entropy_from_log_probs(log_probs, probs)
                else:
                    unc = uncertainty_map(probs, measure)
                image_scores = unc.mean(dim=(1, 2)).cpu().numpy()
                pred_np = pred.to(torch.uint8).cpu().numpy()
                conf_np = confidence.cpu().numpy()
                unc_np = unc.cpu().numpy()
                feat_np = features.to(torch.float16).cpu().numpy()
            records = []
            for j, i in enumerate(chunk):
                sample = samples[i]
                key = _sample_key(sample)
                records.append(PoolScore(
                    key=key if key is not None else f"#{i}",
                    image_size=_image_size(sample.image),
                    pred=pred_np[j],
                    confidence=conf_np[j],
                    uncertainty=unc_np[j],
                    feature_map=feat_np[j],
                    measure=measure,
                    score=float(image_scores[j]),
                ))
            del batch, x, log_probs, features, probs, confidence, pred, unc
            # The model goes back to its own mode while the caller works on the batch's records.
            if toggle:
                model.train(was_training)
            yield from records
            if toggle:
                model.eval()
            if mc_samples > 0:
                _enable_dropout(model)
    finally:
        model.train(was_training)

"""Rare-class sampling of the labeled source (learning.data.rare_class_probabilities and the batch streams)."""
from __future__ import annotations

import numpy as np
import pytest

from learning.data import BatchStream, Sample, SegmentationDataset, labeled_batches, rare_class_probabilities


def test_images_holding_a_rare_class_are_drawn_far_more_often():
    # Class 0 everywhere; class 1 on 1 % of the pixels, in image 2 only; image 3 has no labeled pixel.
    counts = np.array([[1000, 0], [1000, 0], [980, 30], [0, 0]])
    p = rare_class_probabilities(counts, temperature=0.01)
    assert p.sum() == pytest.approx(1.0) and p[3] == 0.0
    assert p[2] > 0.9 and p[0] == pytest.approx(p[1])
    # A warm temperature draws every class alike: class 0's half spread over its three images, class 1's on one.
    warm = rare_class_probabilities(counts, temperature=100.0)
    assert warm[:3] == pytest.approx([1 / 6, 1 / 6, 1 / 6 + 1 / 2], abs=0.01)


def test_no_labeled_pixel_anywhere_draws_uniformly_and_a_bad_temperature_is_refused():
    assert rare_class_probabilities(np.zeros((4, 3)), 0.01) == pytest.approx(np.full(4, 0.25))
    with pytest.raises(ValueError, match="temperature"):
        rare_class_probabilities(np.ones((2, 2)), 0.0)


def _scenes(rare_in: int, count: int = 6) -> list[Sample]:
    samples = []
    for i in range(count):
        image = np.full((16, 16, 3), 40 * i % 255, dtype=np.uint8)
        mask = np.zeros((16, 16), dtype=np.uint8)
        if i == rare_in:
            mask[:2, :2] = 2  # a rare class, on one image
        samples.append(Sample(image=image, mask=mask, key=f"scene-{i}"))
    return samples


def _draws(stream, samples, batches: int = 60) -> np.ndarray:
    # Each scene has its own grey level: the batch rows tell which images were drawn.
    levels = {float(np.asarray(s.image)[0, 0, 0]): i for i, s in enumerate(samples)}
    seen = np.zeros(len(samples), dtype=int)
    from learning.data import NORMALIZATION

    mean, std = NORMALIZATION["mean"][0], NORMALIZATION["std"][0]
    for _ in range(batches):
        images, _ = stream.next()
        for row in images:
            seen[levels[round((float(row[0, 0, 0]) * std + mean) * 255)]] += 1
    return seen


def test_the_labeled_stream_draws_the_rare_class_image_more_with_rare_class_sampling():
    samples = _scenes(rare_in=4)
    uniform = _draws(labeled_batches(samples, (16, 16), 4, target_share=0.0, augment=None, seed=0), samples)
    rare = _draws(labeled_batches(samples, (16, 16), 4, target_share=0.0, augment=None, seed=0,
                                  rare_class_temperature=0.01, num_classes=3), samples)
    assert uniform.max() - uniform.min() <= 1  # a permutation per epoch: every image equally often
    assert rare[4] > 0.5 * rare.sum()


def test_a_mixed_stream_samples_only_the_source_by_class_and_keeps_every_target_label_in_turn():
    source = _scenes(rare_in=1, count=4)
    target = [Sample(image=np.full((16, 16, 3), 200 + i, dtype=np.uint8), mask=np.zeros((16, 16), np.uint8),
                     key=f"t{i}", target=True) for i in range(2)]
    stream = labeled_batches(source + target, (16, 16), 4, target_share=0.5, augment=None, seed=0,
                             rare_class_temperature=0.01, num_classes=3)
    seen = _draws(stream, source + target, batches=40)
    assert seen[4] == seen[5] == 40  # two target rows a batch, each target image once per epoch
    assert seen[1] > 0.5 * seen[:4].sum()
    with pytest.raises(ValueError, match="num_classes"):
        labeled_batches(source, (16, 16), 4, target_share=0.0, augment=None, seed=0, rare_class_temperature=0.01)


def test_a_stream_refuses_probabilities_that_do_not_match_its_items():
    dataset = SegmentationDataset(_scenes(rare_in=0, count=3), (16, 16))
    with pytest.raises(ValueError, match="2 probabilities for 3 items"):
        BatchStream(dataset, 2, seed=0, probabilities=np.array([0.5, 0.5]))

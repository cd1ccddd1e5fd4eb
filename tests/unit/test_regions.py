"""Query regions: SLIC / grid maps, RIPU region scores, region features, resizing between resolutions."""
from __future__ import annotations

import numpy as np

from learning.selection.regions import (
    grid_regions,
    region_features,
    region_scores,
    slic_regions,
)
from learning.selection.resample import resize_bilinear, resize_nearest


def test_grid_regions_tile_the_image_with_contiguous_ids():
    regions = grid_regions(10, 25, 4)
    assert regions.shape == (10, 25)
    assert np.array_equal(np.unique(regions), np.arange(3 * 7))
    assert np.bincount(regions.ravel())[0] == 16


def test_slic_regions_are_contiguous_and_follow_the_default_density():
    y, x = np.mgrid[0:96, 0:128]
    image = np.stack([x * 2, y * 2, x + y], axis=-1).astype(np.uint8)  # a smooth colour ramp
    regions = slic_regions(image)
    assert regions.dtype == np.int32 and regions.shape == (96, 128)
    assert np.array_equal(np.unique(regions), np.arange(regions.max() + 1))
    assert 12 <= regions.max() + 1 <= 48  # 24 asked for 96x128 (150 per 240x320)


def test_impure_region_outscores_a_pure_one_at_equal_uncertainty():
    pred = np.zeros((8, 16), dtype=np.uint8)
    pred[:, 12:] = 1  # a class boundary inside region 1 (columns 8-15)
    regions = (np.arange(16)[None, :] // 8).repeat(8, axis=0)
    uncertainty = np.full((8, 16), 0.5, dtype=np.float32)
    scored = region_scores(uncertainty, pred, regions, num_classes=2, context=0)
    assert scored.impurity[0] == 0.0 and scored.impurity[1] > 0.9
    assert scored.scores[1] > scored.scores[0] == 0.0


def test_labeled_pixels_neither_count_nor_score():
    regions = np.zeros((4, 4), dtype=np.int32)
    regions[:, 2:] = 1
    uncertainty = np.zeros((4, 4), dtype=np.float32)
    uncertainty[:, :1] = 1.0
    pred = (np.arange(4)[None, :] % 2).repeat(4, axis=0).astype(np.uint8)
    labeled = np.zeros((4, 4), dtype=bool)
    labeled[:, 1] = True
    labeled[:, 2:] = True
    scored = region_scores(uncertainty, pred, regions, num_classes=2, labeled_mask=labeled)
    assert scored.pixels.tolist() == [4, 0]
    assert scored.mean_uncertainty[0] == 1.0  # only the unlabeled column counts
    assert scored.scores[1] == 0.0 and scored.labeled_fraction.tolist() == [0.5, 1.0]


def test_region_features_equal_the_mean_of_the_upsampled_feature_map():
    rng = np.random.default_rng(0)
    feature_map = rng.standard_normal((5, 3, 4)).astype(np.float32)
    regions = rng.integers(0, 6, (12, 16)).astype(np.int32)
    # Reference: nearest upsampling by integer cell index (the same cell rule).
    rows = np.arange(12) * 3 // 12
    cols = np.arange(16) * 4 // 16
    upsampled = feature_map[:, rows[:, None], cols[None, :]]
    expected = np.stack([upsampled[:, regions == r].mean(axis=1) for r in range(6)])
    assert np.allclose(region_features(regions, feature_map), expected, atol=1e-5)
    assert np.allclose(region_features(regions, feature_map, [4, 1]), expected[[4, 1]], atol=1e-5)


def test_resizing_keeps_labels_exact_and_values_smooth():
    labels = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    big = resize_nearest(labels, (4, 6))
    assert big.dtype == np.uint8 and set(np.unique(big)) == {0, 1, 2, 3}
    assert big[0, 0] == 0 and big[3, 5] == 3
    values = resize_bilinear(np.array([[0.0, 1.0]], dtype=np.float32), (1, 4))
    assert values.dtype == np.float32 and np.all(np.diff(values[0]) >= 0)
    assert resize_nearest(labels, (2, 2)) is labels

"""Suggestions: calibrated per-class thresholds, never a pixel below its threshold, measured quality."""
from __future__ import annotations

import numpy as np
import pytest

from learning.suggestions import (
    BACKGROUND_FALLBACK,
    FOREGROUND_FALLBACK,
    NEVER,
    SuggestionQuality,
    Thresholds,
    calibrate_thresholds,
    fallback_thresholds,
    make_suggestion,
    suggestion_quality,
)


def _calibration_set(seed: int = 0, n: int = 4, size=(40, 50)):
    """Class 0 is right when confident (accuracy rises with confidence); class 1 is wrong half the time."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n):
        pred = rng.integers(0, 2, size).astype(np.uint8)
        conf = rng.uniform(0.5, 1.0, size).astype(np.float32)
        right = np.where(pred == 0, rng.random(size) < conf ** 4, rng.random(size) < 0.5)
        gt = np.where(right, pred, 1 - pred).astype(np.uint8)
        gt[:2] = 255  # some void
        preds.append((pred, conf))
        gts.append(gt)
    return preds, gts


def test_calibrated_threshold_reaches_the_target_precision_on_its_data():
    preds, gts = _calibration_set()
    thresholds = calibrate_thresholds(preds, gts, 3, target_precision=0.9, min_pixels=100)
    assert thresholds.source[0] == "calibrated"
    assert 0.5 < thresholds.values[0] < 1.0
    assert thresholds.precision[0] >= 0.9
    quality = sum(
        (suggestion_quality(make_suggestion(pred=p, confidence=c, thresholds=thresholds).mask, g)
         for (p, c), g in zip(preds, gts)),
        SuggestionQuality(),
    )
    # Class 1 never reaches 90 %: it is never suggested, so the overall precision holds too.
    assert thresholds.source[1] == "unreachable" and thresholds.values[1] == NEVER
    assert quality.precision >= 0.9 and 0 < quality.coverage < 0.5
    assert thresholds.source[2] == "fallback"  # never predicted


def test_a_lower_target_precision_suggests_more():
    preds, gts = _calibration_set()
    strict = calibrate_thresholds(preds, gts, 2, target_precision=0.95, min_pixels=100)
    loose = calibrate_thresholds(preds, gts, 2, target_precision=0.8, min_pixels=100)
    assert loose.values[0] < strict.values[0]
    assert loose.coverage[0] > strict.coverage[0]


def test_classes_with_few_validation_pixels_get_the_fallback():
    preds, gts = _calibration_set(n=1, size=(10, 10))
    thresholds = calibrate_thresholds(preds, gts, 4, min_pixels=1000, background_classes=[0, 3])
    assert thresholds.values.tolist() == [BACKGROUND_FALLBACK, FOREGROUND_FALLBACK, FOREGROUND_FALLBACK,
                                          BACKGROUND_FALLBACK]
    assert thresholds.source == ["fallback"] * 4
    assert Thresholds.from_dict(thresholds.to_dict()).values.tolist() == thresholds.values.tolist()


def test_suggestions_never_fill_pixels_below_threshold():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(4, 0.5), size=(30, 40)).transpose(2, 0, 1).astype(np.float32)
    thresholds = np.array([0.5, 0.7, 0.9, 0.3])
    region = np.zeros((30, 40), dtype=bool)
    region[5:25, 10:35] = True
    suggestion = make_suggestion(probs=probs, thresholds=thresholds, region_mask=region)
    pred, conf = probs.argmax(0), probs.max(0)
    filled = suggestion.mask != 255
    assert filled.any() and (~filled & region).any()
    assert np.all(conf[filled] >= thresholds[pred[filled]])
    assert np.array_equal(filled, region & (conf >= thresholds[pred]))  # and everything above is filled
    assert np.array_equal(suggestion.mask[filled], pred[filled])
    assert np.all(suggestion.confidence[~filled] == 0)
    assert np.allclose(suggestion.confidence[filled] / 255.0, conf[filled], atol=1 / 255)


def test_suggestion_is_made_at_the_region_maps_resolution():
    pred = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    conf = np.array([[0.99, 0.99], [0.5, 0.99]], dtype=np.float32)
    region = np.ones((4, 4), dtype=bool)
    suggestion = make_suggestion(pred=pred, confidence=conf, thresholds=fallback_thresholds(2), region_mask=region)
    assert suggestion.mask.shape == (4, 4)
    assert suggestion.mask[0, 0] == 0 and suggestion.mask[0, 3] == 1
    assert suggestion.mask[3, 0] == 255  # 0.5 < 0.8


def test_suggestion_quality_counts_precision_and_coverage_inside_the_region():
    mask = np.array([[0, 0, 255, 1]], dtype=np.uint8)
    gt = np.array([[0, 1, 1, 255]], dtype=np.uint8)
    quality = suggestion_quality(mask, gt)
    assert (quality.suggested, quality.correct, quality.labeled) == (2, 1, 3)
    assert quality.precision == pytest.approx(0.5) and quality.coverage == pytest.approx(2 / 3)
    inside = suggestion_quality(mask, gt, region_mask=np.array([[True, False, True, True]]))
    assert (inside.suggested, inside.correct, inside.labeled) == (1, 1, 2)
    assert SuggestionQuality().precision is None


def test_background_classes_are_those_above_their_fair_share_of_labeled_pixels():
    from learning.suggestions import background_classes, background_classes_of

    assert background_classes([70, 20, 10]) == [0]  # fair share of 3 classes: 33 %
    assert background_classes([40, 40, 10, 10]) == [0, 1]
    assert background_classes([0, 0]) == []
    masks = [np.array([[0, 0, 0, 1]], np.uint8), np.array([[2, 255, 255, 255]], np.uint8)]
    assert background_classes_of(masks, 3) == [0]  # void never counts


def _uncertain_corner_set(seed: int = 0, n: int = 4):
    """Class 0 everywhere; one 16×16 block per image is uncertain and often wrong, the rest confident and right."""
    rng = np.random.default_rng(seed)
    preds, gts, hard = [], [], []
    for _ in range(n):
        pred = np.zeros((64, 64), np.uint8)
        conf = rng.uniform(0.9, 1.0, (64, 64)).astype(np.float32)
        gt = pred.copy()
        corner = np.zeros((64, 64), bool)
        corner[:16, :16] = True
        conf[corner] = rng.uniform(0.55, 0.95, corner.sum())
        # right above 0.8, wrong 70 % of the time below it
        gt[corner] = np.where((conf[corner] > 0.8) | (rng.random(corner.sum()) < 0.3), 0, 1)
        preds.append((pred, conf))
        gts.append(gt)
        hard.append(corner)
    return preds, gts, hard


def test_queries_picked_for_uncertainty_get_thresholds_that_hold_in_uncertain_regions():
    from learning.suggestions import calibrate_for_queries, uncertain_blocks_only

    preds, gts, hard = _uncertain_corner_set()
    kept = uncertain_blocks_only(preds, gts)
    assert all((k[h] != 255).all() for k, h in zip(kept, hard))  # every uncertain block is in the focus
    assert sum((k != 255).sum() for k in kept) <= 0.1 * 4 * 64 * 64 + 16 * 16  # about a tenth of the pixels

    overall = calibrate_thresholds(preds, gts, 2, target_precision=0.9)
    focused = calibrate_for_queries(preds, gts, 2, uncertain=True, target_precision=0.9)
    assert focused.values[0] > overall.values[0] and focused.source[0] == "calibrated on uncertain blocks"
    assert calibrate_for_queries(preds, gts, 2, uncertain=False, target_precision=0.9).values[0] == overall.values[0]

    def precision_in_hard_blocks(thresholds):
        quality = SuggestionQuality()
        for (p, c), g, h in zip(preds, gts, hard):
            quality = quality + suggestion_quality(make_suggestion(pred=p, confidence=c, thresholds=thresholds).mask,
                                                   g, region_mask=h)
        return quality.precision

    # The focus mixes the uncertain blocks with the least certain of the rest, so it does not reach the target
    # inside them, but comes much closer than the overall threshold.
    assert precision_in_hard_blocks(overall) + 0.1 < precision_in_hard_blocks(focused)

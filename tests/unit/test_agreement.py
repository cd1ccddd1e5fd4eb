"""Agreement of two annotators' masks (learning/agreement.py) against numbers worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from learning.agreement import agreement_score, boundaries, boundary_f_score, merge_masks, per_class_iou

V = 255

# Two 4×4 masks: the annotators differ on two pixels of column 2 (A says 1, B says 0).
A = np.array([[0, 0, 1, 1],
              [0, 0, 1, 1],
              [0, 0, 1, 1],
              [0, 0, 1, 1]], np.uint8)
B = np.array([[0, 0, 0, 1],
              [0, 0, 0, 1],
              [0, 0, 1, 1],
              [0, 0, 1, 1]], np.uint8)


def test_iou_per_class_counts_intersection_over_union():
    # class 0: A 8 px, B 10 px, both 8 → 8/10; class 1: A 8, B 6, both 6 → 6/8; class 2 used by neither.
    assert per_class_iou(A, B, 3) == {0: pytest.approx(0.8), 1: pytest.approx(0.75), 2: None}
    score = agreement_score(A, B, 3)
    assert score.miou == pytest.approx((0.8 + 0.75) / 2)
    assert (score.agreed_pixels, score.disputed_pixels) == (14, 2)


def test_a_pixel_one_annotator_left_void_counts_against_agreement():
    a = A.copy()
    a[0, 0] = V  # B still says class 0 there: class 0 is now 7 ∩ over 10 ∪
    ious = per_class_iou(a, B, 2)
    assert ious[0] == pytest.approx(0.7) and ious[1] == pytest.approx(0.75)
    score = agreement_score(a, B, 2)
    assert (score.agreed_pixels, score.disputed_pixels) == (13, 3)


def test_identical_masks_agree_fully_and_two_void_masks_have_no_score():
    score = agreement_score(A, A, 2)
    assert score.miou == 1.0 and score.boundary_f == 1.0 and score.disputed_pixels == 0
    void = np.full((4, 4), V, np.uint8)
    empty = agreement_score(void, void, 2)
    assert empty.miou is None and empty.boundary_f is None and empty.agreed_pixels == 0


def test_boundaries_are_labeled_pixels_next_to_another_value_not_the_image_border():
    mask = np.array([[0, 0, 1],
                     [0, 0, 1],
                     [V, V, 1]], np.uint8)
    expected = np.array([[0, 1, 1],
                         [1, 1, 1],
                         [0, 0, 1]], bool)
    np.testing.assert_array_equal(boundaries(mask), expected)


def test_boundary_f_score_matches_outlines_within_the_tolerance():
    # 4 rows × 8 columns; A switches from class 0 to 1 at column 4, B one column later, at 5.
    a = np.zeros((4, 8), np.uint8)
    b = np.zeros((4, 8), np.uint8)
    a[:, 4:] = 1
    b[:, 5:] = 1
    # A's outline: columns 3 and 4; B's: columns 4 and 5. With no tolerance half of each outline lies on the
    # other (column 4): precision = recall = 0.5, F = 0.5. One pixel of tolerance matches everything.
    assert boundary_f_score(a, b, tolerance=0) == pytest.approx(0.5)
    assert boundary_f_score(a, b, tolerance=1) == pytest.approx(1.0)
    # Two columns apart (B at 6): A's column 3 is 2 px from B's nearest outline (5), column 4 is 1 px: with
    # tolerance 1, precision = 4/8; B's column 6 is 2 px from A's column 4, column 5 1 px: recall = 4/8.
    c = np.zeros((4, 8), np.uint8)
    c[:, 6:] = 1
    assert boundary_f_score(a, c, tolerance=1) == pytest.approx(0.5)
    # IoU hardly notices what the boundary score does: class 1 is 16 ∩ 16 → 12/16, class 0 16/20.
    assert per_class_iou(a, b, 2) == {0: pytest.approx(16 / 20), 1: pytest.approx(12 / 16)}


def test_boundary_f_score_is_zero_when_only_one_mask_has_an_outline():
    flat = np.zeros((4, 8), np.uint8)
    split = flat.copy()
    split[:, 4:] = 1
    assert boundary_f_score(flat, split) == 0.0
    assert boundary_f_score(flat, flat) is None


def test_merge_keeps_agreed_pixels_and_voids_disputed_ones():
    merged = merge_masks(A, B)
    expected = np.array([[0, 0, V, 1],
                         [0, 0, V, 1],
                         [0, 0, 1, 1],
                         [0, 0, 1, 1]], np.uint8)
    np.testing.assert_array_equal(merged, expected)
    assert merged.dtype == np.uint8
    a = A.copy()
    a[3, 3] = V  # void in one mask stays void in the merge
    assert merge_masks(a, B)[3, 3] == V


def test_masks_of_different_shapes_are_refused():
    with pytest.raises(ValueError):
        agreement_score(A, A[:3], 2)

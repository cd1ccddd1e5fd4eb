from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from learning.metrics import ConfusionMatrix

# 4 classes; class 3 appears in neither target nor prediction -> IoU n/a.
TARGET = np.array([[0, 0, 1, 1],
                   [0, 2, 2, 255],
                   [1, 1, 255, 255]])
PRED = np.array([[0, 1, 1, 1],
                 [0, 2, 0, 3],  # the 3 sits under an ignored pixel: it must not count
                 [1, 2, 2, 0]])
# Counting by hand over the 9 labeled pixels (target != 255):
#   class 0: target (0,0) (0,1) (1,0); TP (0,0) (1,0); FN (0,1)->1; FP (1,2)      -> IoU 2/4
#   class 1: target (0,2) (0,3) (2,0) (2,1); TP 3; FN (2,1)->2; FP (0,1)          -> IoU 3/5
#   class 2: target (1,1) (1,2); TP (1,1); FN (1,2)->0; FP (2,1)                  -> IoU 1/3
#   class 3: absent from the target, predicted only under 255                    -> n/a (None)
# Pixel accuracy 6/9; mIoU over the defined classes (1/2 + 3/5 + 1/3) / 3.


def test_hand_computed_case_with_an_absent_class():
    matrix = ConfusionMatrix(4)
    matrix.update(PRED, TARGET)
    metrics = matrix.compute()
    assert metrics.per_class_iou == pytest.approx([0.5, 0.6, 1 / 3, None]) and metrics.per_class_iou[3] is None
    assert metrics.miou == pytest.approx((1 / 2 + 3 / 5 + 1 / 3) / 3)
    assert metrics.pixel_accuracy == pytest.approx(6 / 9)
    assert metrics.per_class_accuracy == pytest.approx([2 / 3, 3 / 4, 1 / 2, None])
    assert metrics.labeled_pixels == 9


def test_class_predicted_but_absent_from_ground_truth_scores_zero_not_na():
    matrix = ConfusionMatrix(3)
    matrix.update(np.array([0, 2]), np.array([0, 0]))
    metrics = matrix.compute()
    assert metrics.per_class_iou == [0.5, None, 0.0]
    assert metrics.miou == pytest.approx(0.25)


def test_batches_accumulate_like_one_update():
    one, two = ConfusionMatrix(4), ConfusionMatrix(4)
    one.update(torch.as_tensor(PRED), torch.as_tensor(TARGET))
    two.update(PRED[:1], TARGET[:1])
    two.update(PRED[1:], TARGET[1:])
    assert torch.equal(one.matrix, two.matrix)


def test_all_ignored_gives_undefined_metrics_not_zero():
    matrix = ConfusionMatrix(2)
    matrix.update(np.zeros((2, 2)), np.full((2, 2), 255))
    metrics = matrix.compute()
    assert metrics.miou is None and metrics.pixel_accuracy is None and metrics.labeled_pixels == 0


def test_target_class_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        ConfusionMatrix(2).update(np.array([0]), np.array([7]))


def test_metrics_are_json_serialisable_and_round_trip():
    matrix = ConfusionMatrix(4)
    matrix.update(PRED, TARGET)
    metrics = matrix.compute()
    data = json.loads(json.dumps(metrics.to_dict()))
    assert data["per_class_iou"][3] is None
    assert type(metrics).from_dict(data) == metrics

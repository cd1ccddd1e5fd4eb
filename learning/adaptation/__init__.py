"""Extra training objectives, mostly on unlabeled target images, selectable by name.

Importing this package registers the built-in objectives: ``"adversarial"``
(output-space, AdaptSegNet), ``"self_training"`` (CBST pseudo-labels),
``"consistency"`` (mean-teacher weak-to-strong consistency),
``"pixel_contrastive"`` (supervised pixel contrastive loss with its own
projection head) and ``"target_batchnorm"`` (target frames only through
BatchNorm: the control arm). ``learning/train.py`` builds the ones a
``TrainConfig`` names; further objectives register themselves with
:func:`register_objective`.
"""
from learning.adaptation.base import (  # noqa: F401
    OBJECTIVES, ObjectiveContext, StepState, TargetObjective, build_objective,
    masked_cross_entropy, register_objective,
)
from learning.adaptation import adversarial, batchnorm, pseudo_labels  # noqa: F401,E402  (registration)
from learning.adaptation import consistency, pixel_contrastive  # noqa: F401,E402  (registration)

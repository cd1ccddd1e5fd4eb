"""Output-space adversarial adaptation (AdaptSegNet: Tsai et al., CVPR 2018).

Segmentation *outputs* are structured (road below cars, sky above buildings)
even where the input pixels look nothing alike across domains, so aligning the
softmax maps is easier than aligning features. A small fully convolutional
discriminator learns to tell source softmax maps from target ones; the
segmentation net gets an extra loss for target maps the discriminator
recognises as target. Defaults follow the paper's single-level setting
(lambda_adv = 0.001, Adam 1e-4, betas 0.9/0.99, LeakyReLU 0.2).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from learning.adaptation.base import ObjectiveContext, StepState, TargetObjective, register_objective

SOURCE, TARGET = 0.0, 1.0


class FCDiscriminator(nn.Module):
    """Five 4x4 stride-2 convolutions: per-patch "is this a target-domain softmax map?" logits."""

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        channels = [num_classes, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(channels[-1], 1, 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return self.net(probs)


def _bce(logits: torch.Tensor, label: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits.float(), label))


@register_objective("adversarial")
class OutputSpaceAdversarial(TargetObjective):
    """Options (``TrainConfig`` fields): ``adversarial_weight``, ``discriminator_lr``,
    ``discriminator_width``, ``discriminator_downsample``."""

    def __init__(self, config, options=None):
        super().__init__(config, options)
        self.discriminator = FCDiscriminator(config.num_classes, config.discriminator_width)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.discriminator_lr,
                                          betas=(0.9, 0.99))
        self._numerics = None
        self._last: dict[str, float] = {}

    def setup(self, context: ObjectiveContext) -> None:
        self._numerics = context.numerics
        self.discriminator = context.numerics.prepare_model(self.discriminator).train()
        # Adam's state was created on the CPU; move it with the parameters.
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if torch.is_tensor(value) and key != "step":
                    state[key] = value.to(context.numerics.device)

    def _discriminate(self, logits: torch.Tensor) -> torch.Tensor:
        # The logits were bilinearly upsampled from the network's output stride (8-16), so
        # a map at 1/``discriminator_downsample`` of the input carries the same layout; at
        # full size the discriminator alone cost more than the segmentation step on a CPU.
        factor = self.config.discriminator_downsample
        if factor > 1:
            # ... but never below 32 px, where five stride-2 convolutions run out of pixels.
            size = tuple(max(min(n, 32), n // factor) for n in logits.shape[-2:])
            if size != tuple(logits.shape[-2:]):
                logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
        probs = logits.float().softmax(1)
        with self._numerics.autocast():
            return self.discriminator(self._numerics.prepare_input(probs))

    def loss(self, state: StepState) -> dict[str, torch.Tensor]:
        if state.target_out is None:
            return {}
        self.discriminator.requires_grad_(False)  # this loss trains the segmentation net only
        fool = _bce(self._discriminate(state.target_out.logits), SOURCE)
        self._last["adversarial_fool"] = float(fool.detach())
        return {"adversarial": self.config.adversarial_weight * fool}

    def after_step(self, state: StepState) -> None:
        if state.target_out is None:
            return
        self.discriminator.requires_grad_(True)
        d_source = _bce(self._discriminate(state.source_out.logits.detach()), SOURCE)
        d_target = _bce(self._discriminate(state.target_out.logits.detach()), TARGET)
        loss = 0.5 * (d_source + d_target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        state.logs["discriminator"] = float(loss.detach())

    def summary(self) -> dict[str, Any]:
        return dict(self._last)

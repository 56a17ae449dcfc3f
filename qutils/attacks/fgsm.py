"""FGSM: the fast gradient sign method (Goodfellow, Shlens & Szegedy 2015).

    x_adv = clip_[0,1]( x + eps * sign(grad_x loss(f(x), y)) )

One gradient, one step to the corner of the L-infinity ball.

FGSMRS, FGSM from a random start (Wong, Rice & Kolter 2020, "Fast is better than free"):

    delta ~ U(-eps, eps);  delta <- clip_[-eps, eps]( delta + alpha * sign(grad) );  x_adv = clip_[0,1](x + delta)

with ``alpha = 1.25 eps``, their setting. As a training attack it costs what FGSM costs (one
gradient) and avoids the catastrophic overfitting of FGSM training.
"""
from __future__ import annotations

import torch

from .base import Attack, Norm, ThreatModel, check_eps, project

__all__ = ["FGSM", "FGSMRS"]


class FGSM(Attack):
    name = "FGSM"
    threat_model = ThreatModel.WHITE_BOX
    norm = Norm.LINF

    def __init__(self, eps, targeted=False, loss="ce", confidence=0.0, eot=1):
        super().__init__(eps, targeted)
        self._set_gradient_options(loss, confidence, eot)

    def params(self) -> dict:
        return {**super().params(), **self._gradient_params()}

    def _run(self, model, x, y):
        grad = self._loss_grad(model, x, y)
        return (x + self.eps * grad.sign()).clamp(0.0, 1.0)


class FGSMRS(Attack):
    """FGSM from a uniformly random start in the ball, step ``rel_stepsize * eps`` (Wong et al. 2020)."""

    name = "FGSM-RS"
    threat_model = ThreatModel.WHITE_BOX
    norm = Norm.LINF

    def __init__(self, eps, rel_stepsize=1.25, seed=0, targeted=False, loss="ce", confidence=0.0, eot=1):
        super().__init__(eps, targeted)
        self.rel_stepsize = check_eps(rel_stepsize, "rel_stepsize")
        self.seed = int(seed)
        self._set_gradient_options(loss, confidence, eot)

    def params(self) -> dict:
        return {**super().params(), "step_size": self.rel_stepsize * self.eps, "seed": self.seed,
                **self._gradient_params()}

    def _run(self, model, x, y):
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        start = (x + (2 * torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) - 1) * self.eps)
        start = start.clamp(0.0, 1.0)
        grad = self._loss_grad(model, start, y)
        return project(start + self.rel_stepsize * self.eps * grad.sign(), x, self.eps, Norm.LINF)

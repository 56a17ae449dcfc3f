"""FGSM: the fast gradient sign method (Goodfellow, Shlens & Szegedy 2015).

    x_adv = clip_[0,1]( x + eps * sign(grad_x loss(f(x), y)) )

One gradient, one step to the corner of the L-infinity ball.
"""
from __future__ import annotations

from .base import Attack, Norm, ThreatModel

__all__ = ["FGSM"]


class FGSM(Attack):
    name = "FGSM"
    threat_model = ThreatModel.WHITE_BOX
    norm = Norm.LINF

    def _run(self, model, x, y):
        grad = self._loss_grad(model, x, y)
        return (x + self.eps * grad.sign()).clamp(0.0, 1.0)

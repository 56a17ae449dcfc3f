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

    def __init__(self, eps, targeted=False, loss="ce", confidence=0.0, eot=1):
        super().__init__(eps, targeted)
        self._set_gradient_options(loss, confidence, eot)

    def params(self) -> dict:
        return {**super().params(), **self._gradient_params()}

    def _run(self, model, x, y):
        grad = self._loss_grad(model, x, y)
        return (x + self.eps * grad.sign()).clamp(0.0, 1.0)

"""An attack designed for input quantization: flip the pixels that can cross a threshold.

A defense that quantizes every pixel (QuSecNets, bit-depth reduction) changes what an L-infinity
attacker can do in a way generic BPDA ignores. Within the ball of radius ``eps`` a pixel can only
reach the quantization levels between ``Q(x - eps)`` and ``Q(x + eps)``: most pixels of MNIST
cannot change at all, a few can move one level up or down. The classifier sees only the
quantized image, so the attack is a search over *which* of those few pixels to flip.

:class:`ThresholdFlip` does that search greedily in the quantized space (Tramer et al. 2020:
attack the defense's actual structure). At every step it takes the gradient of the margin loss
with respect to the classifier's *input* (the quantized image; no gradient through the
quantizer is needed), scores each pixel by the first-order gain of moving it to the lowest or
the highest level it can reach, and moves the ``flips`` best pixels of each image. A pixel is
moved to the end of its interval (``x - eps`` or ``x + eps``, inside [0, 1]), which reaches that
level. Every image gets the first iterate that fools the deployed model.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .base import Attack, Norm, ThreatModel, check_eps, check_int, margin

__all__ = ["ThresholdFlip"]


class ThresholdFlip(Attack):
    """Greedy coordinate search over the pixels that can change level, for ``defense`` =
    ``classifier(quantizer(x))`` (an :class:`~qutils.defenses.InputTransformModel`, e.g. a QuSecNet,
    whose quantizer is applied exactly). The ``model`` passed when calling is the deployed one."""

    name = "threshold flip"
    threat_model = ThreatModel.WHITE_BOX
    norm = Norm.LINF

    def __init__(self, eps, defense: nn.Module, steps: int = 100, flips: int = 4):
        super().__init__(eps)
        transform = getattr(defense, "transform", None)
        # the search needs a quantizer that acts on each pixel alone, monotonically (QuSecNets' layer,
        # bit-depth reduction); such a quantizer says so with ``pixelwise_monotone = True``
        if not getattr(transform, "pixelwise_monotone", False) or not isinstance(
                getattr(defense, "model", None), nn.Module):
            raise ValueError("ThresholdFlip needs an input-quantization defense, classifier(quantizer(x)) with a "
                             f"per-pixel quantizer (QuSecNets, bit-depth reduction); got {type(defense).__name__}"
                             f"{'' if transform is None else ' with ' + type(transform).__name__}")
        if hasattr(transform, "view"):  # a QuSecNets layer: use its exact (hard) quantization
            transform = transform.view("hard")
        self.quantize, self.classifier = transform, defense.model
        self.n_steps = check_int(steps, "steps")
        self.flips = check_int(flips, "flips")
        check_eps(eps)

    def params(self) -> dict:
        return {"eps": self.eps, "steps": self.n_steps, "flips": self.flips}

    def _run(self, model, x, y):
        if self.eps == 0:
            return x
        lo, hi = (x - self.eps).clamp(0, 1), (x + self.eps).clamp(0, 1)
        with torch.no_grad():
            q_lo, q_hi = self.quantize(lo), self.quantize(hi)
        best = x.clone()
        idx = torch.arange(len(x), device=x.device)
        x_cur = x.clone()
        for step in range(self.n_steps + 1):
            with torch.no_grad():
                q = self.quantize(x_cur[idx])
            q = q.detach().requires_grad_(True)
            logits = self.classifier(q)
            fooled = logits.argmax(1) != y[idx]
            best[idx[fooled]] = x_cur[idx[fooled]]
            keep = ~fooled
            if step == self.n_steps or not bool(keep.any()):
                best[idx[keep]] = x_cur[idx[keep]]
                break
            (g,) = torch.autograd.grad(-margin(logits, y[idx]).sum(), q)
            idx, q, g = idx[keep], q[keep].detach(), g[keep]
            with torch.no_grad():
                up, down = g * (q_hi[idx] - q), g * (q_lo[idx] - q)
                gain = torch.maximum(up, down).flatten(1)
                k = min(self.flips, gain.shape[1])
                top = gain.topk(k, dim=1)
                chosen = torch.zeros_like(gain, dtype=torch.bool).scatter_(1, top.indices, top.values > 0)
                chosen = chosen.view_as(q)
                go_up = chosen & (up >= down)
                go_down = chosen & (up < down)
                xi = x_cur[idx]
                xi = torch.where(go_up, hi[idx], torch.where(go_down, lo[idx], xi))
                x_cur[idx] = xi
                if not bool(chosen.any()):  # no pixel can improve the loss any more
                    best[idx] = x_cur[idx]
                    break
        return best

"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard 2016), L2 and L-infinity, as in foolbox.

At each step the classifier is linearised around the current point; among the ``candidates``
most likely classes (ranked once, on the clean input) the attack picks the class whose linearised
boundary is closest and steps onto it; the accumulated step is scaled by ``1 + overshoot``.
Examples stop moving once they are misclassified.

The ``candidates - 1`` gradients of a step come from one forward pass and that many backward
passes (foolbox runs a forward pass for each). A minimum-norm attack: see
:class:`~qutils.attacks.base.MinimizationAttack` for what ``eps`` means.
"""
from __future__ import annotations

import math

import torch

from .base import MinimizationAttack, Norm, ThreatModel, as_norm, check_eps, check_int

__all__ = ["DeepFool"]


class DeepFool(MinimizationAttack):
    name = "DeepFool"
    threat_model = ThreatModel.WHITE_BOX

    def __init__(self, eps=math.inf, norm="L2", steps=50, candidates=10, overshoot=0.02):
        super().__init__(eps, targeted=False)
        self.norm = as_norm(norm, who="DeepFool")
        self.n_steps = check_int(steps, "steps")
        self.candidates = check_int(candidates, "candidates", minimum=2)
        self.overshoot = check_eps(overshoot, "overshoot")

    def params(self) -> dict:
        return {"eps": self.eps, "steps": self.n_steps, "candidates": self.candidates,
                "overshoot": self.overshoot}

    def _run(self, model, x, y):
        n = len(x)
        rows = torch.arange(n, device=x.device)
        with torch.no_grad():
            logits = model(x)
        k = min(self.candidates, logits.shape[1])
        classes = logits.argsort(1, descending=True)[:, :k]  # column 0: the predicted class
        x_adv = x.clone()
        p_total = torch.zeros_like(x)
        for _ in range(self.n_steps):
            xg = x_adv.detach().requires_grad_(True)
            logits = model(xg)
            is_adv = logits.argmax(1) != y
            if bool(is_adv.all()):
                break
            l0 = logits[rows, classes[:, 0]]
            losses, grads = [], []
            for j in range(1, k):
                diff = logits[rows, classes[:, j]] - l0
                (g,) = torch.autograd.grad(diff.sum(), xg, retain_graph=j < k - 1)
                losses.append(diff.detach())
                grads.append(g)
            losses = torch.stack(losses, 1)  # (n, k-1)
            grads = torch.stack(grads, 1)  # (n, k-1, C, H, W)
            flat = grads.flatten(2)
            dual = flat.norm(dim=2) if self.norm == Norm.L2 else flat.abs().sum(2)  # dual norm
            dist = losses.abs() / (dual + 1e-8)
            best = dist.argmin(1)
            dist = dist[rows, best] + 1e-4
            g = grads[rows, best]
            if self.norm == Norm.L2:
                step = (dist / (g.flatten(1).norm(dim=1) + 1e-8)).view(-1, 1, 1, 1) * g
            else:
                step = dist.view(-1, 1, 1, 1) * g.sign()
            p_total = p_total + step
            moved = (x + (1.0 + self.overshoot) * p_total).clamp(0.0, 1.0)
            x_adv = torch.where(is_adv.view(-1, 1, 1, 1), x_adv, moved)
        return x_adv.detach()

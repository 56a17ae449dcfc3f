"""Carlini & Wagner's L2 attack (Carlini & Wagner 2017), the algorithm foolbox implements.

Minimise ``||x' - x||_2^2 + c * max(z_y - max_{j!=y} z_j + confidence, 0)`` over
``x' = (tanh(w) + 1) / 2`` (the change of variables keeps ``x'`` in [0, 1]) with Adam, for each
example's own constant ``c``. A binary search adjusts ``c``: it grows tenfold until an
adversarial example is found, then is bisected between the largest failing and the smallest
succeeding value. The smallest adversarial example seen over the whole search is returned.

This is a minimum-norm attack: with the default ``eps=inf`` it returns the smallest adversarial
example found (the clean image where none was); with a finite ``eps`` the result is projected
onto the L2 ball, so robust accuracy at ``eps`` counts the examples whose minimal perturbation
is larger than ``eps``.
"""
from __future__ import annotations

import math

import torch

from .base import MinimizationAttack, Norm, ThreatModel, binary_search_consts, check_eps, check_int, margin

__all__ = ["CWL2"]


class CWL2(MinimizationAttack):
    name = "CW-L2"
    threat_model = ThreatModel.WHITE_BOX
    norm = Norm.L2

    def __init__(self, eps=math.inf, binary_search_steps=9, steps=1000, stepsize=0.01, confidence=0.0,
                 initial_const=1e-3, abort_early=True, targeted=False):
        super().__init__(eps, targeted)
        self.binary_search_steps = check_int(binary_search_steps, "binary_search_steps")
        self.n_steps = check_int(steps, "steps")
        self.stepsize = check_eps(stepsize, "stepsize")
        self.confidence = check_eps(confidence, "confidence")
        self.initial_const = check_eps(initial_const, "initial_const")
        if self.initial_const == 0:
            raise ValueError("initial_const must be > 0")
        self.abort_early = bool(abort_early)

    def params(self) -> dict:
        return {"eps": self.eps, "binary_search_steps": self.binary_search_steps, "steps": self.n_steps,
                "stepsize": self.stepsize, "confidence": self.confidence,
                "initial_const": self.initial_const, "abort_early": self.abort_early,
                "targeted": self.targeted}

    def _run(self, model, x, y):
        n = len(x)
        w0 = torch.atanh((2 * x - 1) * 0.999999)  # attack space; tanh(w0) reconstructs x up to 1e-6
        x_rec = (torch.tanh(w0) + 1) / 2
        consts = torch.full((n,), self.initial_const, device=x.device, dtype=x.dtype)
        lower = torch.zeros_like(consts)
        upper = torch.full_like(consts, math.inf)
        best = x.clone()
        best_norm = torch.full_like(consts, math.inf)
        check_every = math.ceil(self.n_steps / 10)
        for bs_step in range(self.binary_search_steps):
            if bs_step == self.binary_search_steps - 1 and self.binary_search_steps >= 10:
                consts = upper.clamp(max=1e10)  # foolbox: repeat the search once with the upper bound
            delta = torch.zeros_like(x)
            m, v = torch.zeros_like(x), torch.zeros_like(x)
            found = torch.zeros(n, dtype=torch.bool, device=x.device)
            prev = math.inf
            for step in range(self.n_steps):
                d = delta.detach().requires_grad_(True)
                x_new = (torch.tanh(w0 + d) + 1) / 2
                logits = model(x_new)
                marg = margin(logits, y)
                adv_loss = (-marg if self.targeted else marg) + self.confidence
                loss = (consts * adv_loss.clamp_min(0)).sum() + (x_new - x_rec).flatten(1).square().sum()
                (grad,) = torch.autograd.grad(loss, d)
                # Adam (the same update and bias correction as foolbox's optimiser)
                t = step + 1
                m = 0.9 * m + 0.1 * grad
                v = 0.999 * v + 0.001 * grad * grad
                delta = delta - self.stepsize * (m / (1 - 0.9 ** t)) / ((v / (1 - 0.999 ** t)).sqrt() + 1e-8)
                if self.abort_early and step % check_every == 0:
                    if not loss.item() <= 0.9999 * prev:
                        break
                    prev = loss.item()
                with torch.no_grad():
                    shifted = logits.detach().clone()
                    # adversarial with a margin: the true class gets +confidence (targeted: the target -confidence)
                    bonus = -self.confidence if self.targeted else self.confidence
                    shifted.scatter_add_(1, y[:, None], torch.full((n, 1), bonus, device=x.device, dtype=logits.dtype))
                    adv = shifted.argmax(1) == y if self.targeted else shifted.argmax(1) != y
                    found |= adv
                    dist = (x_new.detach() - x).flatten(1).norm(dim=1)
                    better = adv & (dist < best_norm)
                    best[better] = x_new.detach()[better]
                    best_norm[better] = dist[better]
            consts, lower, upper = binary_search_consts(found, consts, lower, upper)
        return best

"""Iterative gradient attacks in the L-infinity ball.

* BIM, the basic iterative method (Kurakin, Goodfellow & Bengio 2017): FGSM steps of size
  ``alpha`` from the clean image, projected back into the ball after each step.
* PGD, projected gradient descent (Madry et al. 2018): the same iteration from a uniformly
  random start inside the ball, optionally restarted; the restart that fools the model is kept.

Step sizes are relative to epsilon (``rel_stepsize``), as in foolbox, unless ``abs_stepsize``
is given. Defaults: BIM 1.25 * eps / steps in total per step (Kurakin et al.'s total travel of
1.25 eps), PGD 2.5 * eps / steps (Madry et al.'s rule).
"""
from __future__ import annotations

import torch

from .base import Attack, Norm, ThreatModel, check_eps, project

__all__ = ["BIM", "PGD"]


class _IterativeLinf(Attack):
    threat_model = ThreatModel.WHITE_BOX
    norm = Norm.LINF
    random_start: bool = False

    def __init__(self, eps, steps=10, rel_stepsize=None, abs_stepsize=None, restarts=1,
                 targeted=False, seed=0):
        super().__init__(eps, targeted)
        if int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        if int(restarts) != restarts or restarts < 1:
            raise ValueError(f"restarts must be a positive integer, got {restarts}")
        if rel_stepsize is not None and abs_stepsize is not None:
            raise ValueError("give rel_stepsize or abs_stepsize, not both")
        self.n_steps = int(steps)
        self.rel_stepsize = None if rel_stepsize is None else check_eps(rel_stepsize, "rel_stepsize")
        self.abs_stepsize = None if abs_stepsize is None else check_eps(abs_stepsize, "abs_stepsize")
        self.restarts = int(restarts)
        self.seed = int(seed)

    def _default_rel_stepsize(self) -> float:
        raise NotImplementedError

    def params(self) -> dict:
        return {"eps": self.eps, "steps": self.n_steps, "step_size": round(self.step_size, 6),
                "random_start": self.random_start, "restarts": self.restarts,
                "targeted": self.targeted, "seed": self.seed}

    @property
    def step_size(self) -> float:
        if self.abs_stepsize is not None:
            return self.abs_stepsize
        rel = self.rel_stepsize if self.rel_stepsize is not None else self._default_rel_stepsize()
        return rel * self.eps

    def _run(self, model, x, y):
        if self.eps == 0:
            return x
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        best = x.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for restart in range(self.restarts):
            x_adv = x.clone()
            if self.random_start:
                noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                x_adv = (x + (2 * noise - 1) * self.eps).clamp(0.0, 1.0)
            for _ in range(self.n_steps):
                grad = self._loss_grad(model, x_adv, y)
                x_adv = project(x_adv + self.step_size * grad.sign(), x, self.eps, self.norm)
            with torch.no_grad():
                pred = model(x_adv).argmax(1)
                success = pred == y if self.targeted else pred != y
            # the first restart fills every slot; later ones replace only the examples they newly fool
            take = torch.ones_like(fooled) if restart == 0 else success & ~fooled
            best[take] = x_adv[take]
            fooled |= success
            if self.restarts > 1 and bool(fooled.all()):
                break
        return best


class BIM(_IterativeLinf):
    """Basic iterative method: iterated FGSM from the clean image, projected into the ball."""

    name = "BIM"
    random_start = False

    def __init__(self, eps, steps=10, rel_stepsize=None, abs_stepsize=None, targeted=False):
        super().__init__(eps, steps, rel_stepsize, abs_stepsize, 1, targeted)

    def _default_rel_stepsize(self):
        return 1.25 / self.n_steps


class PGD(_IterativeLinf):
    """Projected gradient descent with a random start (Madry et al. 2018)."""

    name = "PGD"
    random_start = True

    def _default_rel_stepsize(self):
        return 2.5 / self.n_steps

"""An attack designed for networks of quantized activations: BPDA through a staircase that sharpens.

A network whose every activation is a staircase (DQA) is piecewise constant in its input. The
straight-through gradient (BPDA with the identity) pretends each staircase is a ramp: it pushes
every unit equally, although only the units near a step can change level within the budget. The
derivative of a smooth staircase (sigmoids at the steps) weights each unit by how close it is to a
step, but with a steep sigmoid that weight vanishes almost everywhere, and with a flat one the
smooth network is a different function from the deployed one.

:class:`AnnealedBPDA` does both in turn (a homotopy, as in graduated optimisation): projected
sign-gradient steps on the margin loss through the smooth staircase of steepness ``z_1`` (flat),
then continuing from the same iterate with ``z_2 > z_1``, and so on; every iterate is checked on
the *deployed* model and each image gets the first one that fools it. ``views(z)`` returns the
defended network with a smooth backward pass of steepness ``z``, e.g. ``net.view("sigmoid", z)``
of a :class:`~qutils.defenses.dqa.DQANet`; the deployed model is the one the attack is called on.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from .base import Attack, Norm, ThreatModel, check_eps, check_int, margin, project

__all__ = ["AnnealedBPDA"]


class AnnealedBPDA(Attack):
    name = "annealed BPDA"
    threat_model = ThreatModel.WHITE_BOX
    norm = Norm.LINF

    def __init__(self, eps, views: Callable[[float], nn.Module], steepness=(1.0, 2.0, 4.0, 8.0, 16.0),
                 steps_per_view: int = 20, rel_stepsize: float = 0.1, seed: int = 0, random_start: bool = True):
        super().__init__(eps)
        if not callable(views) or isinstance(views, nn.Module):
            raise ValueError("views must be a function of the steepness z that returns a model (e.g. "
                             "lambda z: net.view('sigmoid', z)), not a model")
        zs = [float(z) for z in steepness]
        if not zs or any(not z > 0 for z in zs):
            raise ValueError(f"steepness must be a non-empty sequence of positive numbers, got {steepness!r}")
        self.views, self.steepness = views, tuple(zs)
        self.steps_per_view = check_int(steps_per_view, "steps_per_view")
        self.rel_stepsize = check_eps(rel_stepsize, "rel_stepsize")
        self.seed, self.random_start = int(seed), bool(random_start)
        self.loss = "margin"

    @property
    def steps(self) -> int:
        return self.steps_per_view * len(self.steepness)

    def params(self) -> dict:
        return {"eps": self.eps, "steepness": list(self.steepness), "steps_per_view": self.steps_per_view,
                "step_size": self.rel_stepsize * self.eps, "loss": "margin", "seed": self.seed}

    def _run(self, model, x, y):
        if self.eps == 0:
            return x
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        x_adv = x.clone()
        if self.random_start:  # uniform in half the ball
            u = torch.rand(x.shape, generator=gen, device=x.device)
            x_adv = (x + (2 * u - 1) * self.eps / 2).clamp(0, 1)
        best = x_adv.clone()
        idx = torch.arange(len(x), device=x.device)
        alpha = self.rel_stepsize * self.eps
        for z in self.steepness:
            smooth = self.views(z)
            smooth.eval()
            for _ in range(self.steps_per_view):
                with torch.no_grad():
                    fooled = model(x_adv[idx]).argmax(1) != y[idx]
                best[idx[fooled]] = x_adv[idx[fooled]]
                idx = idx[~fooled]
                if len(idx) == 0:
                    return best
                xi = x_adv[idx].detach().requires_grad_(True)
                loss = -margin(smooth(xi), y[idx]).sum()  # ascend: y loses
                (g,) = torch.autograd.grad(loss, xi)
                step = xi.detach() + alpha * g.sign()
                x_adv[idx] = project(step, x[idx], self.eps, Norm.LINF)
        # the last iterate (the cascade checks it on the deployed model)
        best[idx] = x_adv[idx]
        return best

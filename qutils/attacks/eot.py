"""EOT-PGD against a random classifier: maximise the chance that a fresh draw is wrong.

Against a defense that is random at test time (SQA's stochastic rounding, random resizing,
dropout at test time) a gradient attack has two problems. Each gradient is one draw of a random
function: Expectation over Transformation (Athalye, Carlini & Wagner 2018) averages ``eot`` of
them. And an iterate that one draw misclassifies may be classified correctly by the next: PGD's
"first iterate that fools the model" is often a lucky draw, and the evaluation's fresh draw undoes
it. :class:`EOTPGD` therefore

* ascends the C&W margin loss averaged over ``eot`` draws, capped at ``confidence`` past the
  boundary, so it keeps pushing deeper into the wrong class (Carlini & Wagner 2017);
* keeps, per image, the iterate that the largest share of its ``eot`` draws misclassified (the
  later one on ties), not the first that one draw got wrong.
"""
from __future__ import annotations

import torch

from .base import Attack, Norm, ThreatModel, check_eps, check_int, margin, project

__all__ = ["EOTPGD"]


class EOTPGD(Attack):
    name = "EOT-PGD"
    threat_model = ThreatModel.WHITE_BOX
    norm = Norm.LINF

    def __init__(self, eps, steps=40, eot=8, rel_stepsize=None, confidence=10.0, seed=0):
        super().__init__(eps)
        self.n_steps = check_int(steps, "steps")
        self.rel_stepsize = 2.5 / self.n_steps if rel_stepsize is None else check_eps(rel_stepsize, "rel_stepsize")
        self._set_gradient_options("margin", confidence, eot)
        self.seed = int(seed)

    def params(self) -> dict:
        return {"eps": self.eps, "steps": self.n_steps, "step_size": round(self.rel_stepsize * self.eps, 6),
                "eot": self.eot, "confidence": self.confidence, "seed": self.seed, "selection": "most draws fooled"}

    def _fooled_share(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (logits.argmax(1) != y.repeat(self.eot)).float().view(self.eot, -1).mean(0)

    def _run(self, model, x, y):
        if self.eps == 0:
            return x
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        u = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        x_adv = (x + (2 * u - 1) * self.eps).clamp(0.0, 1.0)
        best = x_adv.clone()
        best_share = torch.full((len(x),), -1.0, device=x.device)
        yy = y.repeat(self.eot)
        alpha = self.rel_stepsize * self.eps
        for step in range(self.n_steps + 1):
            last = step == self.n_steps
            x_in = x_adv.detach().requires_grad_(not last)
            # eot copies of the batch, each with its own draw of the noise
            stacked = x_in.unsqueeze(0).expand(self.eot, *x.shape)
            stacked = stacked.reshape(self.eot * len(x), *x.shape[1:])
            with torch.set_grad_enabled(not last):
                logits = model(stacked)
                # keep the iterate the most draws misclassify
                share = self._fooled_share(logits.detach(), y)
                better = share >= best_share
                best[better], best_share[better] = x_adv[better], share[better]
                if last:
                    break
                # the C&W margin, capped at `confidence`, averaged over draws
                hinge = (margin(logits, yy) + self.confidence).clamp_min(0)
                obj = -hinge.sum() / self.eot
                (grad,) = torch.autograd.grad(obj, x_in)
            moved = x_adv + alpha * grad.sign()
            x_adv = project(moved, x, self.eps, Norm.LINF)
        return best

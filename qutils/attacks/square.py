"""Square attack, L-infinity (Andriushchenko, Croce, Flammarion & Hein 2020).

A score-based black-box attack: random search with square-shaped updates. It starts from
vertical stripes of +-eps, then each query redraws the perturbation inside one random square
window (one +-eps value per channel) and keeps the change if the margin loss
``z_y - max_{j!=y} z_j`` decreases (targeted: ``max_{j!=t} z_j - z_t``). The square's area is a
fraction ``p`` of the image that shrinks on the schedule of the paper (rescaled to the query
budget, as in AutoAttack). An image stops costing queries once it is fooled.

It needs no gradient, so gradient masking does not slow it down: the sanity check of Carlini et
al. (2019) that a gradient-free attack should *not* beat a gradient attack.
"""
from __future__ import annotations

import math

import torch

from .base import Attack, Norm, ThreatModel, check_eps, check_int, margin

__all__ = ["Square"]

_SCHEDULE = [(10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
             (8000, 256)]


class Square(Attack):
    name = "Square"
    threat_model = ThreatModel.SCORE
    norm = Norm.LINF

    def __init__(self, eps, queries=1000, p_init=0.8, targeted=False, seed=0):
        super().__init__(eps, targeted)
        self.queries = check_int(queries, "queries")
        self.p_init = check_eps(p_init, "p_init")
        if not 0 < self.p_init <= 1:
            raise ValueError(f"p_init must be in (0, 1], got {p_init}")
        self.seed = int(seed)

    @property
    def steps(self) -> int:
        return self.queries

    def params(self) -> dict:
        return {"eps": self.eps, "queries": self.queries, "p_init": self.p_init,
                "targeted": self.targeted, "seed": self.seed}

    def p_selection(self, it: int) -> float:
        """Fraction of the image the square covers at query ``it`` (the paper's schedule)."""
        it = int(it / self.queries * 10000)
        div = 512
        for bound, dv in _SCHEDULE:
            if it <= bound:
                div = dv
                break
        return self.p_init / div

    @torch.no_grad()
    def _loss(self, model, x, y):
        m = margin(model(x), y)
        return -m if self.targeted else m  # < 0: success

    def _run(self, model, x, y):
        if self.eps == 0:
            return x
        n, c, h, w = x.shape
        gen = torch.Generator(device=x.device).manual_seed(self.seed)

        def signs(*shape):
            return torch.randint(0, 2, shape, generator=gen, device=x.device).to(x.dtype) * 2 - 1

        x_best = (x + self.eps * signs(n, c, 1, w)).clamp(0.0, 1.0)
        loss_best = self._loss(model, x_best, y)
        ii = torch.arange(h, device=x.device).view(1, 1, h, 1)
        jj = torch.arange(w, device=x.device).view(1, 1, 1, w)
        for it in range(1, self.queries):
            idx = (loss_best >= 0).nonzero().squeeze(1)
            if len(idx) == 0:
                break
            s = int(round(math.sqrt(self.p_selection(it) * h * w)))
            s = min(max(s, 1), h - 1)
            top = torch.randint(0, h - s + 1, (len(idx), 1, 1, 1), generator=gen, device=x.device)
            left = torch.randint(0, w - s + 1, (len(idx), 1, 1, 1), generator=gen, device=x.device)
            window = (ii >= top) & (ii < top + s) & (jj >= left) & (jj < left + s)
            xc = x[idx]
            delta = torch.where(window, self.eps * signs(len(idx), c, 1, 1), x_best[idx] - xc)
            x_new = (xc + delta).clamp(0.0, 1.0)
            loss = self._loss(model, x_new, y[idx])
            better = loss < loss_best[idx]
            x_best[idx[better]] = x_new[better]
            loss_best[idx[better]] = loss[better]
        return x_best

"""ZOO, zeroth-order optimisation (Chen et al. 2017): the C&W attack with estimated gradients.

A score-based black-box attack: it sees the model's output probabilities, never its gradients.
ZOO-ADAM minimises ``||delta||_2^2 + c * f(x + delta)`` with
``f = max(log p_y - max_{j!=y} log p_j, -confidence)`` (targeted: the reverse). Each iteration
picks ``coords`` random coordinates per image, estimates each partial derivative of ``f`` by the
symmetric difference quotient ``(f(x + h e_i) - f(x - h e_i)) / 2h`` (``2 * coords`` model queries
per image, batched), and takes one Adam step on those coordinates only, with per-coordinate
moment estimates and step counts, projecting onto [0, 1]. A binary search adjusts ``c`` as in
C&W; the smallest adversarial example found is returned. The distance term's gradient ``2 delta``
is exact, only the model's part is estimated.

No attack-space reduction or importance sampling (Chen et al. need them for ImageNet, not for
28x28 images). A minimum-norm attack: see :class:`~qutils.attacks.base.MinimizationAttack`.
"""
from __future__ import annotations

import math

import torch

from .base import MinimizationAttack, Norm, ThreatModel, binary_search_consts, check_eps, check_int, margin

__all__ = ["ZOO"]


class ZOO(MinimizationAttack):
    name = "ZOO"
    threat_model = ThreatModel.SCORE
    norm = Norm.L2

    def __init__(self, eps=math.inf, steps=1000, coords=128, binary_search_steps=3, initial_const=1.0,
                 lr=0.01, h=1e-4, confidence=0.0, targeted=False, seed=0, query_batch=8192):
        super().__init__(eps, targeted)
        self.n_steps = check_int(steps, "steps")
        self.coords = check_int(coords, "coords")
        self.binary_search_steps = check_int(binary_search_steps, "binary_search_steps")
        self.initial_const = check_eps(initial_const, "initial_const")
        self.lr = check_eps(lr, "lr")
        self.h = check_eps(h, "h")
        if self.h == 0 or self.lr == 0 or self.initial_const == 0:
            raise ValueError("h, lr and initial_const must be > 0")
        self.confidence = check_eps(confidence, "confidence")
        self.seed = int(seed)
        self.query_batch = check_int(query_batch, "query_batch")

    def params(self) -> dict:
        return {"eps": self.eps, "steps": self.n_steps, "coords": self.coords,
                "binary_search_steps": self.binary_search_steps, "initial_const": self.initial_const,
                "lr": self.lr, "h": self.h, "confidence": self.confidence, "targeted": self.targeted,
                "seed": self.seed}

    def queries(self, n_images: int = 1) -> int:
        """Model queries the attack spends per ``n_images`` (the budget a score-based attack reports)."""
        return n_images * self.binary_search_steps * self.n_steps * (2 * self.coords + 1)

    @torch.no_grad()
    def _f(self, model, x_flat, shape, y):
        """C&W's loss on log-probabilities for a flat batch, queried in chunks."""
        out = []
        for i in range(0, len(x_flat), self.query_batch):
            logp = model(x_flat[i:i + self.query_batch].view(-1, *shape)).log_softmax(1)
            yy = y[i:i + self.query_batch]
            m = margin(logp, yy)  # log p_y - max_{j != y} log p_j
            out.append((-m if self.targeted else m).clamp_min(-self.confidence))
        return torch.cat(out)

    def _run(self, model, x, y):
        n, d, shape = len(x), x[0].numel(), x.shape[1:]
        k = min(self.coords, d)
        x0 = x.flatten(1)
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        rows = torch.arange(n, device=x.device)[:, None]
        consts = torch.full((n,), self.initial_const, device=x.device, dtype=x.dtype)
        lower, upper = torch.zeros_like(consts), torch.full_like(consts, math.inf)
        best, best_norm = x0.clone(), torch.full_like(consts, math.inf)
        signs = torch.cat([torch.full((k,), self.h), torch.full((k,), -self.h)]).to(x)
        y_rep = y.repeat_interleave(2 * k)
        for _ in range(self.binary_search_steps):
            delta = torch.zeros_like(x0)
            m, v = torch.zeros_like(x0), torch.zeros_like(x0)
            t = torch.zeros_like(x0)
            found = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(self.n_steps):
                idx = torch.rand(n, d, generator=gen, device=x.device).argsort(1)[:, :k]  # (n, k)
                probe = (x0 + delta)[:, None, :].repeat(1, 2 * k, 1)  # (n, 2k, d)
                probe.scatter_add_(2, torch.cat([idx, idx], 1)[:, :, None], signs.expand(n, 2 * k)[:, :, None])
                f = self._f(model, probe.view(n * 2 * k, d), shape, y_rep).view(n, 2 * k)
                g = consts[:, None] * (f[:, :k] - f[:, k:]) / (2 * self.h) + 2 * delta[rows, idx]
                t[rows, idx] += 1
                m[rows, idx] = 0.9 * m[rows, idx] + 0.1 * g
                v[rows, idx] = 0.999 * v[rows, idx] + 0.001 * g * g
                tt = t[rows, idx]
                step = self.lr * (m[rows, idx] / (1 - 0.9 ** tt)) / ((v[rows, idx] / (1 - 0.999 ** tt)).sqrt() + 1e-8)
                new = (x0[rows, idx] + delta[rows, idx] - step).clamp(0.0, 1.0)
                delta[rows, idx] = new - x0[rows, idx]
                # one more query per image: is the current point adversarial?
                with torch.no_grad():
                    pred = model((x0 + delta).view(n, *shape)).argmax(1)
                adv = pred == y if self.targeted else pred != y
                found |= adv
                dist = delta.norm(dim=1)
                better = adv & (dist < best_norm)
                best[better] = (x0 + delta)[better]
                best_norm[better] = dist[better]
            consts, lower, upper = binary_search_consts(found, consts, lower, upper)
        return best.view_as(x)

"""JSMA, the Jacobian-based saliency map attack (Papernot et al. 2016), targeted, L0.

Each iteration computes the forward derivative of the logits, ``a = d z_t / d x`` (the target)
and ``b = d sum_{j!=t} z_j / d x`` (all others), and picks the *pair* of pixels (p, q), among
those not yet changed, maximising ``-(a_p + a_q)(b_p + b_q)`` subject to ``a_p + a_q > 0`` and
``b_p + b_q < 0``: the pair that raises the target most while lowering the rest. Both pixels are
moved by ``theta`` (clipped to [0, 1]) and leave the search domain. The attack stops when the
target is reached or when ``gamma`` (= ``eps``, a fraction of the input's entries) is used up.
If no pair satisfies both sign conditions, the pair with the largest ``a - b`` is taken (as a
fallback; cleverhans would take an arbitrary pair).

``eps`` is ``gamma``, the maximum *fraction* of entries changed (Papernot et al. use 0.145 on
MNIST). The batch is processed in chunks so the pair scores fit in about 256 MB.
"""
from __future__ import annotations

import torch

from .base import Attack, Norm, ThreatModel

__all__ = ["JSMA"]


class JSMA(Attack):
    name = "JSMA"
    threat_model = ThreatModel.WHITE_BOX
    norm = Norm.L0

    def __init__(self, eps=0.1, theta=1.0, targeted=True):
        if not targeted:
            raise ValueError("JSMA is a targeted attack here (as in QuSecNets): pass target labels as y "
                             "and targeted=True; use qutils.attacks.random_targets to draw them")
        super().__init__(eps, targeted=True)
        if self.eps > 1:
            raise ValueError(f"JSMA's eps is gamma, a fraction of the input's entries in [0, 1]; got {self.eps}")
        self.theta = float(theta)
        if self.theta == 0 or not -1 <= self.theta <= 1:
            raise ValueError(f"theta must be in [-1, 1] and non-zero, got {theta}")

    @property
    def steps(self) -> int:
        """Iterations (pixel pairs) on the last input size seen: ``d * gamma / 2`` (0 before the first call)."""
        return getattr(self, "_iterations", 0)

    def max_iterations(self, d: int) -> int:
        return int(d * self.eps) // 2

    def params(self) -> dict:
        return {"eps": self.eps, "gamma": self.eps, "theta": self.theta, "targeted": True}

    def _run(self, model, x, y):
        d = x[0].numel()
        self._iterations = self.max_iterations(d)
        chunk = max(1, (1 << 26) // (d * d))
        return torch.cat([self._run_chunk(model, x[i:i + chunk], y[i:i + chunk]) for i in range(0, len(x), chunk)])

    def _run_chunk(self, model, x, t):
        n, d = len(x), x[0].numel()
        x_adv = x.clone().flatten(1)
        # search domain: entries that can still move in theta's direction
        domain = (x_adv < 1) if self.theta > 0 else (x_adv > 0)
        rows = torch.arange(n, device=x.device)
        eye = torch.eye(d, dtype=torch.bool, device=x.device)
        for _ in range(self.max_iterations(d)):
            xg = x_adv.detach().view_as(x).requires_grad_(True)
            logits = model(xg)
            active = (logits.argmax(1) != t) & (domain.sum(1) >= 2)
            if not bool(active.any()):
                break
            (a,) = torch.autograd.grad(logits[rows, t].sum(), xg, retain_graph=True)
            (total,) = torch.autograd.grad(logits.sum(), xg)
            a, b = a.flatten(1), total.flatten(1) - a.flatten(1)
            alpha = a[:, :, None] + a[:, None, :]
            beta = b[:, :, None] + b[:, None, :]
            valid = domain[:, :, None] & domain[:, None, :] & ~eye
            ok = valid & (alpha > 0) & (beta < 0)
            score = torch.where(ok, -alpha * beta, torch.full_like(alpha, -float("inf")))
            fallback = torch.where(valid, alpha - beta, torch.full_like(alpha, -float("inf")))
            has_pair = ok.flatten(1).any(1)
            score = torch.where(has_pair[:, None, None], score, fallback)
            best = score.flatten(1).argmax(1)
            p, q = best // d, best % d
            for idx in (p, q):
                upd = x_adv[rows, idx] + self.theta
                x_adv[rows, idx] = torch.where(active, upd.clamp(0.0, 1.0), x_adv[rows, idx])
                domain[rows, idx] = domain[rows, idx] & ~active
        return x_adv.view_as(x).detach()

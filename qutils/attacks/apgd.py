"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks"), the first attacks of AutoAttack.

PGD with a fixed step size depends on that step size: too large and it oscillates, too small and
40 steps do not reach the boundary. APGD needs no step size. It starts at ``2 eps`` and halves the
step of an image at checkpoints ``w_j`` (at 22%, then ever closer, of the iterations) when

1. the loss went up in fewer than 75% of the steps since the last checkpoint, or
2. the step was not halved at the last checkpoint and the best loss has not improved since;

after a halving the image restarts from its best point so far. Every step has momentum 0.75:
``x_{k+1} = P(x_k + 0.75 (z_{k+1} - x_k) + 0.25 (x_k - x_{k-1}))`` with
``z_{k+1} = P(x_k + eta sign(grad))`` (L2: the normalised gradient).

Two losses, as in AutoAttack:

* :class:`APGD` with ``loss="ce"`` (APGD-CE) or ``loss="dlr"``, the difference of logits ratio
  ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)``, which does not change when the logits are
  rescaled (a defense that inflates its logits cannot hide behind it);
* :class:`APGDT`, the targeted DLR loss ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` run in
  turn against the ``n_target_classes`` classes the model ranks highest after the true one, each
  only on the images the earlier targets did not break (APGD-T). Success is misclassification.

As with :class:`~qutils.attacks.PGD`, every image gets the *first* iterate that fools the model;
``early_stop=True`` (the default) stops computing an image once it is fooled, which changes the
time, not the result. Torch-native and batched: one forward and backward pass per step.
"""
from __future__ import annotations

import math

import torch

from .base import Attack, Norm, ThreatModel, as_norm, check_int, project

__all__ = ["APGD", "APGDT", "dlr_loss", "targeted_dlr_loss", "checkpoints"]


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example DLR loss (larger: closer to misclassification); needs at least 3 classes."""
    if logits.shape[1] < 3:
        raise ValueError(f"the DLR loss needs at least 3 classes, got {logits.shape[1]}")
    s, ind = logits.sort(1)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_other = torch.where(ind[:, -1] == y, s[:, -2], s[:, -1])
    return -(z_y - z_other) / (s[:, -1] - s[:, -3] + 1e-12)


def targeted_dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example targeted DLR loss towards ``target``; needs at least 4 classes."""
    if logits.shape[1] < 4:
        raise ValueError(f"the targeted DLR loss needs at least 4 classes, got {logits.shape[1]}")
    s = logits.sort(1).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (s[:, -1] - 0.5 * (s[:, -3] + s[:, -4]) + 1e-12)


def checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD may halve its step size (Croce & Hein 2020, section 3.2:
    ``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``)."""
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(q * steps) for q in p[1:] if 0 < math.ceil(q * steps) < steps})


class APGD(Attack):
    """APGD-CE (``loss="ce"``) or APGD-DLR (``loss="dlr"``), untargeted, L-infinity or L2."""

    name = "APGD"
    threat_model = ThreatModel.WHITE_BOX
    momentum = 0.75
    rho = 0.75

    def __init__(self, eps, steps=100, norm="Linf", loss="ce", restarts=1, seed=0, random_start=True,
                 early_stop=True, eot=1):
        super().__init__(eps, targeted=False)
        self.norm = as_norm(norm, who=type(self).__name__)
        self.n_steps = check_int(steps, "steps")
        if loss not in ("ce", "dlr"):
            raise ValueError(f"loss must be 'ce' or 'dlr', got {loss!r}")
        self.apgd_loss = loss
        self.restarts = check_int(restarts, "restarts")
        self.seed = int(seed)
        self.random_start = bool(random_start)
        self.early_stop = bool(early_stop)
        self._set_gradient_options("ce", 0.0, eot)
        self.name = f"APGD-{loss.upper()}"

    def params(self) -> dict:
        d = {"eps": self.eps, "steps": self.n_steps, "loss": self.apgd_loss, "restarts": self.restarts,
             "random_start": self.random_start, "seed": self.seed}
        if self.eot > 1:
            d["eot"] = self.eot
        return d

    # -- the loss and its gradient ------------------------------------------------------------
    def _per_example(self, logits, y, target):
        if self.apgd_loss == "ce":
            return torch.nn.functional.cross_entropy(logits, y, reduction="none")
        if target is None:
            return dlr_loss(logits, y)
        return targeted_dlr_loss(logits, y, target)

    def _eval(self, model, x, y, target):
        """(per-example loss, ascent gradient, scores for the success test); ``eot`` copies averaged."""
        x = x.detach().requires_grad_(True)
        logits, scores = self._forward(model, x)
        rep = self.eot
        yy = y.repeat(rep) if rep > 1 else y
        tt = None if target is None else (target.repeat(rep) if rep > 1 else target)
        loss = self._per_example(logits, yy, tt).view(rep, len(x)).mean(0)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad, scores.detach()

    def _direction(self, grad):
        if self.norm == Norm.LINF:
            return grad.sign()
        return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (grad.ndim - 1)))

    def _start(self, x, gen):
        if not self.random_start:
            return x.clone()
        if self.norm == Norm.LINF:
            t = 2 * torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) - 1
            return (x + self.eps * t).clamp(0.0, 1.0)
        t = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        t = t / t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return (x + 0.5 * self.eps * t).clamp(0.0, 1.0)  # AutoAttack's L2 start: half the radius

    # -- one run of APGD on a batch --------------------------------------------------------------
    def _apgd(self, model, x, y, target, gen, best, done):
        """Run APGD from a (random) start on the images not ``done``; record the first fooling iterate
        of each in ``best`` and mark it ``done``. Returns the last iterates and the images still running."""
        everyone = torch.arange(len(x), device=x.device)
        idx = everyone[~done]
        x_adv = self._start(x, gen)[idx]  # noise for the whole batch: early exit draws the same numbers
        xi, yi = x[idx], y[idx]
        ti = None if target is None else target[idx]

        def record(scores):
            """Mark the active images this iterate fools (their first fooling iterate goes to ``best``)."""
            fooled = self._success(scores, yi)
            new = fooled & ~done[idx]
            best[idx[new]] = x_adv[new]
            done[idx[new]] = True
            return fooled

        eta = torch.full((len(idx), *([1] * (x.ndim - 1))), 2.0 * self.eps, device=x.device, dtype=x.dtype)
        loss, grad, scores = self._eval(model, x_adv, yi, ti)
        fooled = record(scores)
        x_best, loss_best, grad_best = x_adv.clone(), loss.clone(), grad.clone()
        x_prev, loss_prev = x_adv.clone(), loss.clone()
        marks, previous_mark = checkpoints(self.n_steps), 0
        increases = torch.zeros(len(idx), device=x.device)
        loss_at_mark = loss_best.clone()
        halved_at_mark = torch.zeros(len(idx), dtype=torch.bool, device=x.device)
        for k in range(self.n_steps):
            if self.early_stop and not bool((~fooled).all()):  # drop the images already fooled
                keep = ~fooled
                (idx, x_adv, xi, yi, x_prev, x_best, loss_best, grad_best, grad, eta, increases, loss_at_mark,
                 halved_at_mark, loss_prev) = (t[keep] for t in (idx, x_adv, xi, yi, x_prev, x_best, loss_best,
                                                                  grad_best, grad, eta, increases, loss_at_mark,
                                                                  halved_at_mark, loss_prev))
                ti = None if ti is None else ti[keep]
                if len(idx) == 0:
                    break
            with torch.no_grad():
                a = self.momentum if k > 0 else 1.0
                z = project(x_adv + eta * self._direction(grad), xi, self.eps, self.norm)
                x_new = project(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev), xi, self.eps, self.norm)
                x_prev, x_adv = x_adv, x_new
            loss, grad, scores = self._eval(model, x_adv, yi, ti)
            fooled = record(scores)
            with torch.no_grad():
                increases += (loss > loss_prev).to(increases.dtype)
                loss_prev = loss.clone()
                better = loss > loss_best
                x_best[better], loss_best[better], grad_best[better] = x_adv[better], loss[better], grad[better]
                if k + 1 in marks:
                    # halve where the loss rose in too few steps, or where it has not improved since a mark
                    # that did not halve; restart those images from their best point
                    halve = (increases < self.rho * (k + 1 - previous_mark)) | (~halved_at_mark & (loss_best <= loss_at_mark))
                    eta[halve] /= 2
                    x_adv[halve], grad[halve] = x_best[halve], grad_best[halve]
                    halved_at_mark, loss_at_mark, previous_mark = halve, loss_best.clone(), k + 1
                    increases.zero_()
        final = x.clone()
        final[idx] = x_adv
        return final, idx

    def _targets(self, model, x, y):
        """``None`` for the untargeted loss; APGDT overrides it with the top-ranked other classes."""
        return [None]

    def _run(self, model, x, y):
        if self.eps == 0:
            return x
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        best = x.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        first_last = None
        for target in self._targets(model, x, y):
            for _ in range(self.restarts):
                if bool(done.all()):
                    break
                final, ran = self._apgd(model, x, y, target, gen, best, done)
                if first_last is None:  # images never fooled keep the last iterate of the first run
                    first_last = x.clone()
                    first_last[ran] = final[ran]
        if first_last is not None:
            best[~done] = first_last[~done]
        return best


class APGDT(APGD):
    """APGD-T: the targeted DLR loss against each of the ``n_target_classes`` classes the model ranks
    highest after the true one (AutoAttack: 9), each target on the images still robust. ``y`` holds the
    true labels; an image counts as broken when it is misclassified (any class)."""

    def __init__(self, eps, steps=100, norm="Linf", n_target_classes=9, restarts=1, seed=0, random_start=True,
                 early_stop=True, eot=1):
        super().__init__(eps, steps, norm, "dlr", restarts, seed, random_start, early_stop, eot)
        self.n_target_classes = check_int(n_target_classes, "n_target_classes")
        self.name = "APGD-T"

    def params(self) -> dict:
        d = super().params()
        d.pop("loss")
        d["n_target_classes"] = self.n_target_classes
        return d

    def _targets(self, model, x, y):
        with torch.no_grad():
            logits = self._forward(model, x)[1]
        k = min(self.n_target_classes, logits.shape[1] - 1)
        ranked = logits.sort(1, descending=True).indices
        # drop the true class from the ranking, keep the order of the rest
        others = ranked[ranked != y[:, None]].view(len(x), -1)
        return [others[:, i] for i in range(k)]

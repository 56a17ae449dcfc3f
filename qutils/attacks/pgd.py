"""Iterative gradient attacks in the L-infinity or L2 ball.

* BIM, the basic iterative method (Kurakin, Goodfellow & Bengio 2017): gradient steps of size
  ``alpha`` from the clean image, projected back into the ball after each step.
* PGD, projected gradient descent (Madry et al. 2018): the same iteration from a uniformly
  random start inside the ball, optionally restarted.
* CWLinf: PGD on the C&W margin loss (Madry et al.'s "CW" attack; the L-infinity C&W variant
  the SQA and Q-Layer papers report).

Steps are ``alpha * sign(grad)`` in L-infinity and ``alpha * grad / ||grad||_2`` in L2. Step sizes
are relative to epsilon (``rel_stepsize``), as in foolbox, unless ``abs_stepsize`` is given.
Defaults: BIM ``1.25 * eps / steps`` (Kurakin et al.'s total travel of 1.25 eps), PGD
``2.5 * eps / steps`` (Madry et al.'s rule).

**What is returned** (``keep``). ``keep="first"`` (the default, for evaluation): for every
example, the *first* iterate that fools the model (for a targeted attack: that reaches the
target), across steps and restarts; the last iterate of the first restart where none does.
Robust accuracy therefore counts an example as broken if any iterate broke it.
``keep="last"`` (for adversarial training, Madry et al. 2018): the last iterate of the whole
run, the approximate loss maximiser, whether or not an earlier iterate already fooled the
model; with restarts, the last iterate of the restart whose final loss is highest. An attack
that stops at the first fooling iterate trains on barely-misclassified points and leaves the
model weak against the rest of the ball (issue 27 measured 16.8% robust on the DQA LeNet).

**Early exit** (``keep="first"`` only). ``early_stop=True`` stops computing on an example once it is fooled. Because
the returned iterate is the first fooling one either way, results are the same as without
early exit; only the time differs. Leave it off when you need the attack to keep pushing
(e.g. to measure loss or confidence after the attack).
"""
from __future__ import annotations

import torch

from .base import Attack, Norm, ThreatModel, as_norm, check_eps, check_int, project

__all__ = ["BIM", "PGD", "CWLinf", "KEEP"]

KEEP = ("first", "last")  #: which iterate an iterative attack returns (see the module docstring)


class _Iterative(Attack):
    threat_model = ThreatModel.WHITE_BOX
    random_start: bool = False

    def __init__(self, eps, steps=10, norm="Linf", rel_stepsize=None, abs_stepsize=None, restarts=1,
                 targeted=False, seed=0, early_stop=False, loss="ce", confidence=0.0, eot=1, keep="first"):
        super().__init__(eps, targeted)
        self.norm = as_norm(norm, who=type(self).__name__)
        if keep not in KEEP:
            raise ValueError(f"keep must be one of {KEEP}, got {keep!r}")
        if keep == "last" and early_stop:
            raise ValueError("keep='last' runs every step on every example; it cannot stop early")
        self.iterate = keep  #: which iterate is returned ("first" or "last")
        self.n_steps = check_int(steps, "steps")
        self.restarts = check_int(restarts, "restarts")
        if rel_stepsize is not None and abs_stepsize is not None:
            raise ValueError("give rel_stepsize or abs_stepsize, not both")
        self.rel_stepsize = None if rel_stepsize is None else check_eps(rel_stepsize, "rel_stepsize")
        self.abs_stepsize = None if abs_stepsize is None else check_eps(abs_stepsize, "abs_stepsize")
        self.seed = int(seed)
        self.early_stop = bool(early_stop)
        self._set_gradient_options(loss, confidence, eot)

    def _default_rel_stepsize(self) -> float:
        raise NotImplementedError

    def params(self) -> dict:
        d = {"eps": self.eps, "steps": self.n_steps, "step_size": round(self.step_size, 6),
             "random_start": self.random_start, "restarts": self.restarts,
             "targeted": self.targeted, "seed": self.seed}
        d.update(self._gradient_params())
        if self.iterate != "first":
            d["keep"] = self.iterate
        return d

    @property
    def step_size(self) -> float:
        if self.abs_stepsize is not None:
            return self.abs_stepsize
        rel = self.rel_stepsize if self.rel_stepsize is not None else self._default_rel_stepsize()
        return rel * self.eps

    def _start(self, x, gen):
        if not self.random_start:
            return x.clone()
        if self.norm == Norm.LINF:
            noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            return (x + (2 * noise - 1) * self.eps).clamp(0.0, 1.0)
        # uniform in the L2 ball: a uniform direction and radius eps * U^(1/d)
        d = x[0].numel()
        direction = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        radius = torch.rand(len(x), generator=gen, device=x.device, dtype=x.dtype) ** (1.0 / d)
        return (x + direction * (self.eps * radius).view(-1, 1, 1, 1)).clamp(0.0, 1.0)

    def _step(self, grad):
        if self.norm == Norm.LINF:
            return self.step_size * grad.sign()
        n = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (grad.ndim - 1)))
        return self.step_size * grad / n

    def _run(self, model, x, y):
        if self.eps == 0:
            return x
        if self.iterate == "last":
            return self._run_last(model, x, y)
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        best = x.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        everyone = torch.arange(len(x), device=x.device)
        for restart in range(self.restarts):
            x_adv = self._start(x, gen)  # noise for the whole batch, so early exit draws the same numbers
            idx = everyone[~done] if self.early_stop else everyone
            for step in range(self.n_steps + 1):
                last = step == self.n_steps
                scores, grad = self._logits_grad(model, x_adv[idx], y[idx], need_grad=not last)
                success = self._success(scores, y[idx])
                new = idx[success & ~done[idx]]
                best[new] = x_adv[new]
                done[new] = True
                if last:
                    break
                if self.early_stop:
                    keep = ~success
                    idx, grad = idx[keep], grad[keep]
                    if len(idx) == 0:
                        break
                x_adv[idx] = project(x_adv[idx] + self._step(grad), x[idx], self.eps, self.norm)
            if restart == 0:  # examples no restart fools keep the last iterate of the first one
                best[~done] = x_adv[~done]
            if bool(done.all()):
                break
        return best

    def _run_last(self, model, x, y):
        """Every step on every example; the last iterate of the restart with the highest final loss."""
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        best, best_loss = x.clone(), torch.full((len(x),), -float("inf"), device=x.device)
        for _ in range(self.restarts):
            x_adv = self._start(x, gen)
            for _step in range(self.n_steps):
                _, grad = self._logits_grad(model, x_adv, y)
                x_adv = project(x_adv + self._step(grad), x, self.eps, self.norm)
            with torch.no_grad():
                logits, _ = self._forward(model, x_adv)
                yy = y.repeat(self.eot) if self.eot > 1 else y
                loss = self._objective(logits, yy).view(self.eot, len(x)).mean(0)
            better = loss > best_loss
            best[better], best_loss[better] = x_adv[better], loss[better]
        return best


class BIM(_Iterative):
    """Basic iterative method: iterated gradient steps from the clean image, projected into the ball."""

    name = "BIM"
    random_start = False

    def __init__(self, eps, steps=10, norm="Linf", rel_stepsize=None, abs_stepsize=None, targeted=False,
                 early_stop=False, loss="ce", confidence=0.0, eot=1):
        super().__init__(eps, steps, norm, rel_stepsize, abs_stepsize, 1, targeted, 0, early_stop,
                         loss, confidence, eot)

    def params(self) -> dict:
        d = super().params()
        for k in ("random_start", "restarts", "seed"):
            d.pop(k)
        return d

    def _default_rel_stepsize(self):
        return 1.25 / self.n_steps


class PGD(_Iterative):
    """Projected gradient descent with a random start (Madry et al. 2018), Linf or L2."""

    name = "PGD"
    random_start = True

    def _default_rel_stepsize(self):
        return 2.5 / self.n_steps


class CWLinf(PGD):
    """PGD on the C&W margin loss (Madry et al. 2018's "CW" attack; L-infinity C&W in SQA / Q-Layer).

    The objective is ``min(z_y - max_{j!=y} z_j + confidence, 0)`` ascended (targeted: the
    reverse); ``confidence=50`` is the value of Madry et al.'s MNIST challenge code.
    """

    name = "CW-Linf"

    def __init__(self, eps, steps=40, rel_stepsize=None, abs_stepsize=None, restarts=1, targeted=False,
                 seed=0, early_stop=False, confidence=50.0, eot=1):
        super().__init__(eps, steps, "Linf", rel_stepsize, abs_stepsize, restarts, targeted, seed,
                         early_stop, "margin", confidence, eot)

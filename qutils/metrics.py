"""Accuracy and robust accuracy, always with a 95% Wilson confidence interval.

A robust accuracy is only meaningful with its threat model, norm, epsilon, attack, steps and
number of images: :class:`Accuracy` carries all of them and prints them. This module is the
measurement itself (and a results-table row's round trip: :func:`accuracy_row`, :func:`accuracy_of`,
:func:`pick`); :mod:`qutils.evaluate` builds the tables and the audit on it and is the API the
pages import.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
from scipy.stats import norm as _normal

from .attacks.base import Attack, check_batch, check_inputs

__all__ = ["check_batch", "wilson_interval", "Accuracy", "significantly_lower", "compare_accuracies", "predict",
           "accuracy", "robust_accuracy", "distances", "pick", "accuracy_row", "accuracy_of"]


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k / n (Wilson 1927)."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, n={n}], got {k}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = _normal.ppf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends: rounding would leave 1e-18
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


@dataclass
class Accuracy:
    """``correct`` of ``n`` images right, with a 95% Wilson interval and the attack settings."""

    correct: int
    n: int
    attack: str = "none"
    threat_model: str = "-"
    norm: str = "-"
    eps: float = 0.0
    steps: int = 0
    params: dict = field(default_factory=dict)

    @property
    def value(self) -> float:
        return self.correct / self.n

    @property
    def ci(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    def __float__(self) -> float:
        return self.value

    def __str__(self) -> str:
        lo, hi = self.ci
        head = f"{100 * self.value:.1f}% [95% CI {100 * lo:.1f}-{100 * hi:.1f}] on {self.n} images"
        if self.attack == "none":
            return head + " (clean)"
        return (f"{head} under {self.attack} ({self.threat_model}, {self.norm}, eps={self.eps:g}, "
                f"{self.steps} step{'s' if self.steps != 1 else ''})")

    def as_dict(self) -> dict:
        lo, hi = self.ci
        d = asdict(self)
        d.update(accuracy=self.value, ci_low=lo, ci_high=hi)
        return d


def significantly_lower(a: Accuracy, b: Accuracy) -> bool:
    """``a`` is below ``b`` beyond noise: their 95% Wilson intervals do not overlap (a conservative
    test; the book's rule for "A beats B")."""
    return a.ci[1] < b.ci[0]


def compare_accuracies(a: Accuracy, b: Accuracy) -> str:
    """``"higher"``, ``"lower"`` or ``"no significant difference"``: ``a`` against ``b`` by
    :func:`significantly_lower`."""
    if significantly_lower(b, a):
        return "higher"
    if significantly_lower(a, b):
        return "lower"
    return "no significant difference"


def _device_of(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted labels, in eval mode (the training flag is restored)."""
    check_inputs(x)
    dev = _device_of(model)
    was = model.training
    model.eval()
    try:
        out = [model(x[i:i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> Accuracy:
    """Clean accuracy with its confidence interval."""
    check_batch(model, x, y)
    correct = int((predict(model, x, batch_size) == y.cpu()).sum())
    return Accuracy(correct, len(y))


def robust_accuracy(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor,
                    batch_size: int = 500, source: nn.Module | None = None,
                    return_adv: bool = False, true_labels: torch.Tensor | None = None):
    """Accuracy of ``model`` on adversarial examples of ``attack``.

    ``source=substitute`` is shorthand for ``attack=Transfer(attack, substitute)``: the examples
    are crafted on the substitute and evaluated on ``model`` (black-box transfer). An adaptive
    attack on a defense with non-differentiable parts is ``Adaptive(attack, bpda_model)``.
    An untargeted attack counts an image as robust when the prediction stays the true label;
    for a targeted attack pass the *target* labels as ``y`` -- robust accuracy is then the share
    of images *not* classified as the target, or, with ``true_labels``, the share still classified
    as their true label (the "adversarial accuracy" of papers that report targeted attacks).
    """
    from .attacks import Transfer

    if not isinstance(attack, Attack):
        raise ValueError(f"attack must be a qutils Attack, got {type(attack).__name__}")
    check_batch(model, x, y)
    if source is not None:
        attack = Transfer(attack, source)
    dev = _device_of(model)
    advs = []
    for i in range(0, len(x), batch_size):
        advs.append(attack(model, x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)).cpu())
    x_adv = torch.cat(advs)
    pred = predict(model, x_adv, batch_size)
    if true_labels is not None:
        if not attack.targeted:
            raise ValueError("true_labels is for targeted attacks (y holds the targets); an untargeted attack's y "
                             "already is the true labels")
        if true_labels.shape != y.shape:
            raise ValueError(f"true_labels has shape {tuple(true_labels.shape)}, y has {tuple(y.shape)}")
        ok = pred == true_labels.cpu()
    else:
        ok = (pred != y.cpu()) if attack.targeted else (pred == y.cpu())
    res = Accuracy(int(ok.sum()), len(y), attack.name, str(attack.threat_model), str(attack.norm), attack.eps,
                   attack.steps, attack.params())
    return (res, x_adv) if return_adv else res


def distances(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, norm,
              targeted: bool = False, batch_size: int = 500) -> torch.Tensor:
    """Per-image perturbation size ``||x_adv - x||`` in ``norm`` where the attack succeeded, ``inf`` where not.

    The median of this tensor is the median minimal perturbation a minimum-norm attack needs
    (images the model already gets wrong count as 0).
    """
    from .attacks import norms

    check_inputs(x, y)
    check_inputs(x_adv, y)
    if x_adv.shape != x.shape:
        raise ValueError(f"x_adv has shape {tuple(x_adv.shape)}, x has {tuple(x.shape)}")
    pred = predict(model, x_adv, batch_size)
    fooled = (pred == y.cpu()) if targeted else (pred != y.cpu())
    d = norms((x_adv - x).cpu(), norm)
    return torch.where(fooled, d, torch.full_like(d, float("inf")))


def pick(df, **sel) -> Accuracy:
    """The one row of a results table (rows of :meth:`Accuracy.as_dict` plus labels) matching
    ``sel`` -- e.g. ``pick(df, model="Q-base", attack="FGSM", eps=0.3)`` -- as an :class:`Accuracy`.
    Floats are compared to 1e-9; anything but exactly one matching row raises ``ValueError``."""
    import pandas as pd

    m = pd.Series(True, index=df.index)
    for k, v in sel.items():
        if k not in df.columns:
            raise ValueError(f"no column {k!r}; the table has {list(df.columns)}")
        m &= (df[k] - v).abs() < 1e-9 if isinstance(v, float) else (df[k] == v)
    rows = df[m]
    if len(rows) != 1:
        raise ValueError(f"{len(rows)} rows match {sel}; expected exactly one")
    return accuracy_of(rows.iloc[0])


def accuracy_row(acc: Accuracy, **labels) -> dict:
    """``acc`` as one results-table row (its :meth:`Accuracy.as_dict` without ``params``) after the
    ``labels``; :func:`accuracy_of` and :func:`pick` read it back."""
    d = acc.as_dict()
    d.pop("params", None)
    return {**labels, **d}


def accuracy_of(row) -> Accuracy:
    """The :class:`Accuracy` a results-table row (a dict or a pandas row of :meth:`Accuracy.as_dict`) holds."""
    return Accuracy(int(row["correct"]), int(row["n"]), row["attack"], row["threat_model"], row["norm"],
                    float(row["eps"]), int(row["steps"]))

"""Both bounds at once (:mod:`qutils.certify`): the certified share (lower) beside the share no
attack or search broke (upper), per model and radius, and a chapter's search budget."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..checks import check_eps, check_int
from .binary import BROKEN, CERTIFIED, MISCLASSIFIED, UNKNOWN, is_binarizer
from .search import certify


@dataclass
class Bounds:
    """Robust accuracy of a binarizing defense at one radius, bounded from both sides on the same
    images: ``lower`` -- the share certified (no reachable binary input changes the prediction);
    ``upper`` -- the share that neither the attacks nor the search broke. The truth lies between;
    ``unknown`` images (the search ran out of budget and no attack broke them) make the gap."""

    lower: "Accuracy"
    upper: "Accuracy"
    certificates: list = field(repr=False)
    survived: torch.Tensor | None = field(default=None, repr=False)  #: per image: the attacks left it correct

    @property
    def missed(self) -> int:
        """Images the attacks left correct that the search broke: what the attacks missed."""
        if self.survived is None:
            return 0
        return sum(bool(s) and c.status == BROKEN for s, c in zip(self.survived.tolist(), self.certificates))

    def counts(self) -> dict:
        """Images per verdict of the search (:data:`CERTIFIED`, :data:`BROKEN`, :data:`UNKNOWN`,
        :data:`MISCLASSIFIED`)."""
        out = {s: 0 for s in (CERTIFIED, BROKEN, UNKNOWN, MISCLASSIFIED)}
        for c in self.certificates:
            out[c.status] += 1
        return out

    def row(self) -> dict:
        """One table row: both bounds with their 95% intervals (in [0, 1]) and the verdict counts
        (``n_certified``, ``n_broken``, ``n_unknown``, ``n_misclassified``), ``n_missed`` (:attr:`missed`)
        and ``survived``: the attacks' robust accuracy alone, before the search."""
        (llo, lhi), (ulo, uhi) = self.lower.ci, self.upper.ci
        alone = float("nan") if self.survived is None else int(self.survived.sum()) / len(self.survived)
        return {"eps": self.lower.eps, "n": self.lower.n, "certified": self.lower.value, "certified_lo": llo,
                "certified_hi": lhi, "attacked": self.upper.value, "attacked_lo": ulo, "attacked_hi": uhi,
                "gap": self.upper.value - self.lower.value, **{f"n_{k}": v for k, v in self.counts().items()},
                "n_missed": self.missed, "survived": alone}


def two_sided(defense: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, survived: torch.Tensor,
              attack: str = "attacks", **kw) -> Bounds:
    """Both bounds on the robust accuracy of the binarizing ``defense`` at L-infinity ``eps``:
    :func:`certify` on every image (``kw``: its budget), and ``survived`` -- per image, whether the
    attacks (``attack``: their name, for the label) left it classified correctly; the search budget
    given is recorded with the lower bound. The upper bound
    counts an image robust only if it survived the attacks and the search did not break it; the
    lower bound counts the certified ones. A certified image that an attack broke is a bug in one
    of them, and raises."""
    from ..metrics import Accuracy

    survived = torch.as_tensor(survived, dtype=torch.bool).flatten()
    if len(survived) != len(x):
        raise ValueError(f"survived has {len(survived)} entries for {len(x)} images")
    certs = certify(defense, x, y, eps, **kw)
    cert = torch.tensor([c.status == CERTIFIED for c in certs], dtype=torch.bool)
    searched = torch.tensor([c.status in (CERTIFIED, UNKNOWN) for c in certs], dtype=torch.bool)
    if bool((cert & ~survived).any()):
        raise RuntimeError(f"{int((cert & ~survived).sum())} certified images were broken by the attacks: the "
                           "certificate or the attack's scoring is wrong")
    n = len(x)
    lower = Accuracy(int(cert.sum()), n, "certified (bound + branch and bound)", "white-box", "Linf", eps, 0,
                     dict(kw))
    upper = Accuracy(int((survived & searched).sum()), n, f"{attack} + exact search", "white-box", "Linf", eps, 0)
    return Bounds(lower, upper, certs, survived)


def bounds_table(models: dict, x: torch.Tensor, y: torch.Tensor, epsilons, survived, progress: bool = False,
                 **kw) -> "pd.DataFrame":
    """:func:`two_sided` for every binarizing model of ``models`` (the others are skipped) at every
    radius of ``epsilons``, on the same images. ``survived(name, model, eps)`` returns the attacks'
    per-image verdict and their name (``(mask, label)``); ``kw``: the search budget of
    :func:`certify`. One row per model and radius (:meth:`Bounds.row`) with the model's name, the
    attacks' name and the seconds the search took."""
    import time

    import pandas as pd

    from ..progress import progress as _progress

    rows = []
    jobs = [(name, m, float(e)) for name, m in models.items() if is_binarizer(m) for e in epsilons]
    if not jobs:
        raise ValueError(f"none of the models {list(models)} binarizes its input: nothing to bound")
    for name, m, e in _progress(jobs, enabled=progress, desc="bounds"):
        mask, label = survived(name, m, e)
        t0 = time.perf_counter()
        b = two_sided(m, x, y, e, mask, label, **kw)
        rows.append({"model": name, **b.row(), "attack": label, "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- a chapter's two bounds
@dataclass(frozen=True)
class SearchBudget:
    """What a chapter spends on the two-sided bounds: the first ``images`` test images (those of its
    cascade), the radii ``epsilons``; per image the search bounds at most ``nodes`` boxes before it says
    "unknown" (an int, or one per radius of ``epsilons``) and enumerates a box with at most ``enum``
    free pixels."""

    images: int = 100
    epsilons: tuple = (0.1, 0.3)
    nodes: int | tuple = 40
    enum: int = 10

    def __post_init__(self):
        check_int(self.images, "images")
        check_int(self.enum, "enum", minimum=0, maximum=20)
        eps = tuple(check_eps(e) for e in self.epsilons)  # a list (a results file's JSON) becomes a tuple
        if not eps:
            raise ValueError("a search budget needs at least one radius")
        object.__setattr__(self, "epsilons", eps)
        if isinstance(self.nodes, list):
            object.__setattr__(self, "nodes", tuple(self.nodes))
        nodes = self.nodes if isinstance(self.nodes, tuple) else (self.nodes,) * len(eps)
        if len(nodes) != len(eps):
            raise ValueError(f"nodes gives {len(nodes)} budgets for {len(eps)} radii")
        for n in nodes:
            check_int(n, "nodes")

    def nodes_at(self, eps: float) -> int:
        """The search's budget of boxes per image at radius ``eps`` (one of :attr:`epsilons`, unless
        :attr:`nodes` is one number for every radius)."""
        if not isinstance(self.nodes, tuple):
            return self.nodes
        for e, n in zip(self.epsilons, self.nodes):
            if abs(e - float(eps)) < 1e-12:
                return n
        raise ValueError(f"the search budget has no radius {eps}; it has {self.epsilons}")


def cascade_bounds(models: dict, x: torch.Tensor, y: torch.Tensor, eps: float, budget: SearchBudget,
                   results: dict | None = None, light=None, light_label: str = "the light cascade", epsilons=None,
                   progress: bool = False) -> "pd.DataFrame":
    """A chapter's two-sided bounds (:func:`bounds_table`) for every binarizing model of ``models`` on
    the first ``budget.images`` images of ``x``, at each radius of ``epsilons`` (default
    ``budget.epsilons``). The attacks behind the upper bound: at the chapter's radius ``eps``, its
    adaptive cascade (``results[name].robust``, run on the same first images); at another radius
    ``light(name, model, x, y, eps)``, the per-image verdict of a cheaper cascade named ``light_label``.
    One row per model and radius, :meth:`Bounds.row`'s columns with ``model``, ``attack`` and ``seconds``."""
    import pandas as pd

    k = min(budget.images, len(x))
    xs, ys = x[:k], y[:k]

    def survived(name, m, e):
        r = (results or {}).get(name)
        if r is not None and abs(e - eps) < 1e-12 and len(r.robust) >= k:
            return r.robust[:k], "the adaptive cascade"
        if light is None:
            raise ValueError(f"no cascade result for {name!r} at eps {e} and no light cascade to run")
        return light(name, m, xs, ys, e), light_label

    tables = [bounds_table(models, xs, ys, (e,), survived, progress=progress, node_budget=budget.nodes_at(e),
                           enum_limit=budget.enum) for e in (epsilons or budget.epsilons)]
    return pd.concat(tables, ignore_index=True)

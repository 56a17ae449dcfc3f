"""The claims registry: every quantitative claim of the five papers as data, each joined with our
number under the paper's protocol and our adaptive worst case, and a status.

A :class:`Claim` is what a paper says (paper, table or figure, dataset, model, attack, epsilon,
steps, the paper's value). A chapter measures it and records a :class:`ClaimRecord` in a
:class:`Ledger`; the ledger goes into the chapter's results file (``results/<chapter>.json``,
table ``"claims"``), and :func:`qutils.ledger.book_ledger` joins every chapter's ledger with the
registry.

**The status rule**, stated once (:data:`RULE`), in this order:

* *refuted by the adaptive attack* -- the claim is about the robustness of the paper's defense (its
  attack is not "none" and its model is not a :attr:`Claim.baseline`),
  and the adaptive 95% upper bound lies more than :data:`MARGIN` points below the paper's value,
  whether or not we reproduced the paper's protocol; on an under-trained model the gap must also
  exceed its clean deficit (the paper's clean accuracy minus ours), so a refutation never rests on
  our training budget;
* *holds under the adaptive attack* -- an adaptive number that lies within :data:`MARGIN` points
  of the claim (or above it): the strongest attack we built does not contradict it;
* *reproduced* -- no adaptive number (or a baseline's claim), and the paper's value lies inside
  our 95% interval under the paper's protocol, or inside the range of values our training seeds gave (``seed_range``);
* *not comparable (under-trained)* -- neither of the above, on a model whose clean accuracy misses
  the paper's by more than the dataset's tolerance (:mod:`qutils.bars`): the gap measures our
  training budget before any attack, not the paper (the reason gives both clean accuracies);
* *not reproduced* -- measured, and none of the above;
* *not runnable here (data)* -- the claim is on a dataset with no offline source (CIFAR-10, SVHN);
  it runs in the ``full`` profile when a reader has the data. Where a chapter ported the claim's
  model to another dataset, the port's verdict is its own column (:func:`port_verdict`: "refuted
  on the MNIST port"), by the same margin;
* *not measured yet* -- no chapter has measured it; the record says why (``reason``).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from . import data as qdata
from .bars import under_trained
from .checks import check_finite
from .metrics import Accuracy

__all__ = ["STATUSES", "RULE", "MARGIN", "REPRODUCED", "REFUTED", "HOLDS", "NOT_REPRODUCED", "NOT_COMPARABLE",
           "NO_DATA", "NOT_MEASURED", "PARTS", "Claim", "mark_baselines", "Estimate", "ClaimRecord", "Ledger",
           "status_of", "port_verdict", "check_part"]

#: the five papers, by the key a claim uses
_PAPER_ID = re.compile(r"^[a-z][a-z0-9_]*$")
REPRODUCED = "reproduced"
REFUTED = "refuted by the adaptive attack"
HOLDS = "holds under the adaptive attack"
NOT_REPRODUCED = "not reproduced"
NOT_COMPARABLE = "not comparable (under-trained)"
NO_DATA = "not runnable here (data)"
NOT_MEASURED = "not measured yet"
STATUSES = (REFUTED, HOLDS, REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE, NO_DATA, NOT_MEASURED)
#: points by which the adaptive 95% upper bound must fall below a claim to refute it
MARGIN = 5.0
#: datasets with no offline source on the machines that build this book
OFFLINE_UNAVAILABLE = ("cifar10", "svhn")
RULE = ("A robustness claim about a paper's defense is refuted by the adaptive attack when the adaptive attack's "
        "95% upper bound lies more than 5 points below the paper's value, whether or not we reproduced the paper's own protocol (on a model "
        "whose clean accuracy misses the paper's, the gap must also exceed that clean deficit); it holds when the "
        "adaptive upper bound lies within 5 points of the claim or above it. A claim about a baseline the paper compares "
        "against (an undefended or adversarially trained network, a method it quotes) measures an attack, not the "
        "defense, and is never refuted. A claim with no adaptive number, or about a baseline, is reproduced "
        "when the paper's value lies inside our 95% confidence interval under the paper's protocol, or inside the "
        "range our training seeds gave; otherwise it is not reproduced -- or not comparable, when our model's clean "
        "accuracy misses the paper's by more than 0.5 points on MNIST (1.5 on Fashion-MNIST): then the gap is our "
        "training budget, not the paper. Claims on CIFAR-10 and SVHN are not runnable here (no offline data); where a "
        "chapter ported the model to MNIST or Fashion-MNIST, the port's verdict, by the same 5 points, is a column of "
        "its own.")


@dataclass(frozen=True)
class Claim:
    """One number a paper reports. ``value`` is in ``unit`` (default: accuracy in percent)."""

    paper: str  #: the paper's id: its chapter's package name (:class:`qutils.chapter.Chapter`)
    source: str  #: where the paper says it: "table 1a", "figure 9", "section V"
    dataset: str
    model: str
    attack: str  #: "none" for clean accuracy
    value: float
    threat_model: str = "white-box"
    eps: float | None = None
    steps: int | None = None
    unit: str = "%"
    note: str = ""
    #: a reference model the paper compares against (undefended, adversarially trained, or another method it
    #: quotes), not the paper's defense: a claim about it measures an attack, and no adaptive number refutes it
    baseline: bool = False

    def __post_init__(self):
        if not isinstance(self.paper, str) or not _PAPER_ID.match(self.paper):
            # which ids exist is the chapters' business (a chapter rejects a claim of another paper)
            raise ValueError(f"a claim's paper is its chapter's id, a lowercase identifier; got {self.paper!r}")
        for name in ("source", "model", "attack"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"a claim needs a non-empty {name} (got {v!r}): say where the paper reports it")
        if self.value is None:
            raise ValueError("a claim needs the paper's value")
        object.__setattr__(self, "value", check_finite(self.value, "the paper's value"))
        object.__setattr__(self, "dataset", qdata.canonical_name(self.dataset))
        if self.eps is not None:
            eps = check_finite(self.eps, "eps")
            if eps < 0:
                raise ValueError(f"eps must be >= 0, got {eps}")
            object.__setattr__(self, "eps", eps)
        if self.unit == "%" and not 0 <= self.value <= 100:
            raise ValueError(f"an accuracy in percent must be in [0, 100], got {self.value}")

    @property
    def key(self) -> str:
        """A unique, readable identifier: paper, source, dataset, model, attack, threat model, epsilon."""
        eps = "" if self.eps is None else f" eps={self.eps:g}"
        return f"{self.paper} | {self.source} | {self.dataset} | {self.model} | {self.attack} ({self.threat_model}{eps})"


@dataclass(frozen=True)
class Estimate:
    """A measured number with its 95% interval, in the claim's unit."""

    value: float
    ci_low: float
    ci_high: float
    n: int | None = None
    what: str = ""

    @classmethod
    def of(cls, acc: "Accuracy | Estimate | None"):
        """An :class:`~qutils.evaluate.Accuracy` in percent (with its Wilson interval), or as it is."""
        if acc is None or isinstance(acc, Estimate):
            return acc
        if not isinstance(acc, Accuracy):
            raise ValueError(f"expected an Accuracy or an Estimate, got {type(acc).__name__}")
        lo, hi = acc.ci
        what = acc.attack if acc.attack == "none" else (
            f"{acc.attack} ({acc.threat_model}, {acc.norm}, eps={acc.eps:g}, {acc.steps} steps)")
        return cls(100 * acc.value, 100 * lo, 100 * hi, acc.n, what)

    def contains(self, v: float) -> bool:
        return self.ci_low - 1e-9 <= v <= self.ci_high + 1e-9


#: the parts of a chapter's ledger, one per page: the claims the reproduction page measures, and the
#: ones the adaptive page answers with the worst case beside them
PARTS = ("reproduction", "adaptive")


def check_part(part: str | None, measured, adaptive, needs: tuple) -> dict:
    """The checks every chapter's ``ledger(cfg, measured, adaptive, section, part)`` makes: ``part`` is one
    of :data:`PARTS` or ``None``; ``measured`` maps a table's name (the name the page saves it under) to the
    table, and holds every name in ``needs`` as a data frame; the adaptive part has the adaptive results.
    Returns ``measured`` as a dict."""
    import pandas as pd

    if part is not None and part not in PARTS:
        raise ValueError(f"unknown part {part!r}; expected one of {PARTS} or None")
    if not isinstance(measured, Mapping):
        raise TypeError(f"measured: a dict of the page's tables by name, such as {{'table 1': t1}}; "
                        f"got {type(measured).__name__}")
    missing = [n for n in needs if n not in measured]
    if missing:
        raise ValueError(f"the claims need the tables {missing} in measured; it has {sorted(measured)}")
    wrong = [n for n in needs if not isinstance(measured[n], pd.DataFrame)]
    if wrong:
        raise TypeError(f"measured[{wrong[0]!r}] must be a data frame, not {type(measured[wrong[0]]).__name__}")
    if part == "adaptive" and adaptive is None:
        raise ValueError("the adaptive claims need the adaptive results (the chapter's adaptive(...))")
    return dict(measured)


def mark_baselines(claims, models) -> list:
    """``claims`` with every claim about one of ``models`` (the paper's reference models, by the claims'
    model names) marked :attr:`Claim.baseline`; a name no claim uses raises (a typo would silently
    leave a baseline refutable)."""
    import dataclasses

    models = set(models)
    unused = models - {c.model for c in claims}
    if unused:
        raise ValueError(f"no claim is about the baseline(s) {sorted(unused)}")
    return [dataclasses.replace(c, baseline=True) if c.model in models else c for c in claims]


def _deficit(claim: Claim, clean) -> float:
    """The clean-accuracy points our model lacks, where it is under-trained (0 otherwise)."""
    if clean is None:
        return 0.0
    ours, paper = clean
    return float(paper) - float(ours) if under_trained(claim.dataset, ours, paper) else 0.0


def status_of(claim: Claim, ours=None, adaptive=None, seed_range: tuple[float, float] | None = None,
              clean: tuple[float, float] | None = None) -> str:
    """The status of ``claim`` given our number under its protocol (``ours``), our adaptive worst case,
    the range over our training seeds (in the claim's unit) and ``clean`` -- (our clean accuracy, the
    paper's), in percent, of the claim's model, where the paper reports it -- by :data:`RULE`."""
    ours, adaptive = Estimate.of(ours), Estimate.of(adaptive)
    if adaptive is not None and claim.attack != "none" and not claim.baseline:
        gap = claim.value - adaptive.ci_high
        if gap > MARGIN + _deficit(claim, clean):
            return REFUTED
        if gap <= MARGIN:
            return HOLDS
        return NOT_COMPARABLE  # below the claim only by what our training lacks
    if ours is None:
        return NO_DATA if claim.dataset in OFFLINE_UNAVAILABLE else NOT_MEASURED
    in_seeds = seed_range is not None and min(seed_range) - 1e-9 <= claim.value <= max(seed_range) + 1e-9
    if ours.contains(claim.value) or in_seeds:
        return REPRODUCED
    if _deficit(claim, clean) > 0:
        return NOT_COMPARABLE
    return NOT_REPRODUCED


def port_verdict(claim: Claim, port=None, where: str = "port") -> str:
    """The verdict of ``port`` -- the adaptive worst case (an Estimate or Accuracy) of the model that
    plays the claim's model on another dataset, ``where`` naming it ("MNIST port") -- on a robustness
    claim: "refuted on the MNIST port" when its 95% upper bound lies more than :data:`MARGIN` points
    below the claim, "holds on the MNIST port" otherwise; "" where there is no port, the claim is a
    clean accuracy (a clean accuracy on another dataset says nothing about the paper's) or is about a
    baseline (:attr:`Claim.baseline`)."""
    port = Estimate.of(port)
    if port is None or claim.attack == "none" or claim.baseline:
        return ""
    return f"refuted on the {where}" if claim.value - port.ci_high > MARGIN else f"holds on the {where}"


@dataclass
class ClaimRecord:
    claim: Claim
    ours: Estimate | None = None
    adaptive: Estimate | None = None
    seed_range: tuple[float, float] | None = None
    reason: str = ""
    section: str = ""  #: the chapter section that measured it (a page anchor), for links

    @property
    def status(self) -> str:
        return status_of(self.claim, self.ours, self.adaptive, self.seed_range)

    def row(self) -> dict:
        c = self.claim
        r = {"key": c.key, "paper": c.paper, "source": c.source, "dataset": c.dataset, "model": c.model,
             "attack": c.attack, "threat_model": c.threat_model, "eps": c.eps, "steps": c.steps, "unit": c.unit,
             "paper_value": c.value, "status": self.status, "reason": self.reason, "section": self.section}
        for name in ("ours", "adaptive"):
            e = getattr(self, name)
            r.update({name: None if e is None else e.value, f"{name}_ci_low": None if e is None else e.ci_low,
                      f"{name}_ci_high": None if e is None else e.ci_high, f"{name}_n": None if e is None else e.n,
                      f"{name}_setting": "" if e is None else e.what})
        r["seed_min"], r["seed_max"] = (None, None) if self.seed_range is None else (min(self.seed_range),
                                                                                      max(self.seed_range))
        return r


class Ledger:
    """The claims of one chapter: register them, record what was measured, write them out."""

    def __init__(self, claims=()):
        self.records: dict[str, ClaimRecord] = {}
        for c in claims:
            self.add(c)

    def add(self, claim: Claim) -> Claim:
        if not isinstance(claim, Claim):
            raise ValueError(f"expected a Claim, got {type(claim).__name__}")
        if claim.key in self.records:
            raise ValueError(f"claim registered twice: {claim.key}")
        self.records[claim.key] = ClaimRecord(claim)
        return claim

    def record(self, claim: Claim | str, ours=None, adaptive=None, seed_range=None, reason: str = "",
               section: str = "") -> ClaimRecord:
        """Join a registered claim with our measurements (Accuracy or Estimate objects)."""
        key = claim.key if isinstance(claim, Claim) else str(claim)
        if key not in self.records:
            raise ValueError(f"no such claim registered: {key}")
        if seed_range is not None:
            seed_range = (check_finite(min(seed_range), "seed_range"), check_finite(max(seed_range), "seed_range"))
        rec = ClaimRecord(self.records[key].claim, Estimate.of(ours), Estimate.of(adaptive), seed_range, reason,
                          section)
        if rec.status == NOT_MEASURED and not reason:
            raise ValueError(f"{key}: a claim left unmeasured needs a reason")
        self.records[key] = rec
        return rec

    def frame(self):
        import pandas as pd

        return pd.DataFrame([r.row() for r in self.records.values()])

    def counts(self):
        """Claims per status (every status listed, zeros included)."""
        df = self.frame()
        return {s: int((df["status"] == s).sum()) if len(df) else 0 for s in STATUSES}

    def in_words(self) -> str:
        """The claims by status as a page quotes them, in the order of :data:`STATUSES`, statuses with
        no claim left out: ``"2 refuted by the adaptive attack; 1 not runnable here (data)"``."""
        text = "; ".join(f"{n} {s}" for s, n in self.counts().items() if n)
        return text or "no claims"

    def save(self, results) -> None:
        """Add the ledger to a chapter's :class:`~qutils.results.Results` as its ``"claims"`` table."""
        results.add_table("claims", self.frame())

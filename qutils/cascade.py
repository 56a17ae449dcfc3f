"""One adaptive evaluation for every defense: a cascade of attacks, as AutoAttack runs its own.

Robust accuracy is a worst case over attacks, per image: an image counts as robust only if the
deployed model classifies it correctly clean and after every attack. Running every attack on
every image wastes most of the time on images an earlier attack has already broken. The cascade
runs the attacks in order of cost and each later attack only on the images still robust, which
gives exactly the same worst case for deterministic attacks (the test suite checks it) and is
several times faster.

:func:`~qutils.stages.adaptive_stages` (re-exported here) builds the book's standard cascade from
the defense protocol (:mod:`qutils.defenses.protocol`):

1. **the paper's own attack** (optional, e.g. FGSM on the model the paper attacked, or a transfer
   attack), so the table shows what the paper measured next to what survives;
2. **APGD-CE** (Croce & Hein 2020) through every attack view of the defense (straight-through
   BPDA, a smooth approximation, an alternative path), with EOT on the views that draw;
3. **APGD-T** (the targeted DLR loss) through the first view that does not draw (AutoAttack runs it
   on the model itself; ``targeted_views="all"`` runs it through every view);
4. **the attacks designed for this defense** (:meth:`~qutils.defenses.protocol.Defense.designed_attacks`;
   Tramer et al. 2020: generic BPDA can be weak) and transfer from the chapter's substitute;
5. **Square** (a gradient-free, score-based attack) on *every* survivor: the sanity check that
   no gradient trick was needed to break what is left.

:func:`cascade` runs any list of :class:`Stage`; it records, per image, which stage broke it,
and the time each stage took. For a defense that is random at test time each prediction is one
fresh draw: an image is robust if it was classified correctly at every check it went through.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .defenses.protocol import as_defense
from .metrics import Accuracy, _device_of, check_batch, predict
from .progress import progress as _progress
from .schema import LABEL
from .stages import Stage, adaptive_stages, chapter_stages, transfer_stage

__all__ = ["summary_table", "convergence_table", "gain_table", "compare_table", "curve_rows", "decisive_stage", "Stage", "CascadeResult", "cascade", "adaptive_stages", "adaptive_evaluation", "run_cascades", "transfer_stage", "chapter_stages", "ROBUST", "CLEAN_ERROR"]

ROBUST = "robust"  #: ``broken_by`` of an image no attack broke
CLEAN_ERROR = "misclassified clean"  #: ``broken_by`` of an image the model gets wrong without an attack


@dataclass
class CascadeResult:
    """What :func:`cascade` measured: the clean accuracy, one row per stage, and per image which
    stage broke it (``broken_by``) and whether it survived everything (``robust``)."""

    clean: Accuracy
    worst: Accuracy
    robust: torch.Tensor  #: bool per image
    broken_by: list[str]  #: per image: a stage label, CLEAN_ERROR or ROBUST
    stages: list[dict] = field(default_factory=list)

    def table(self):
        """One row per stage: how many images it was run on, how many it broke, the robust accuracy
        left after it (the running worst case, with its 95% interval) and its time."""
        import pandas as pd

        return pd.DataFrame([{k: v for k, v in s.items() if k != "after"} for s in self.stages])

    def accuracy_after(self, label: str) -> Accuracy:
        """The running worst case after stage ``label`` (after the first stage: that attack alone)."""
        for s in self.stages:
            if s["stage"] == label:
                return s["after"]
        raise ValueError(f"no stage {label!r}; stages: {[s['stage'] for s in self.stages]}")

    def paper_stage(self) -> str | None:
        """The label of the stage whose role is the paper's own attack, or None (stages are found by
        their role, never by their position)."""
        return next((s["stage"] for s in self.stages if s["role"] == "paper's attack"), None)

    def paper_accuracy(self) -> Accuracy:
        """Robust accuracy under the paper's own attack (the running worst case after its stage, which
        is that attack alone when it runs first, as :func:`adaptive_stages` puts it)."""
        label = self.paper_stage()
        if label is None:
            raise ValueError(f"this cascade has no stage with the role \"paper's attack\" (stages: "
                             f"{[s['stage'] for s in self.stages]})")
        return self.accuracy_after(label)

    @property
    def seconds(self) -> float:
        return float(sum(s["seconds"] for s in self.stages))

    def breakdown(self) -> dict:
        """``{cause: number of images}``: which stage broke how many images (and how many survived)."""
        out: dict[str, int] = {}
        for b in self.broken_by:
            out[b] = out.get(b, 0) + 1
        return out


def cascade(model: nn.Module, stages: list[Stage], x: torch.Tensor, y: torch.Tensor, batch_size: int = 500,
            progress: bool = True) -> CascadeResult:
    """Run ``stages`` in order on the deployed ``model``: each stage only on the images that are
    still classified correctly. Returns a :class:`CascadeResult`."""
    if not stages:
        raise ValueError("a cascade needs at least one stage")
    labels = [s.label for s in stages]
    if len(set(labels)) != len(labels) or ROBUST in labels or CLEAN_ERROR in labels:
        raise ValueError(f"stage labels must be unique and not {ROBUST!r} or {CLEAN_ERROR!r}: {labels}")
    check_batch(model, x, y)
    n = len(x)
    dev = _device_of(model)  # attacks run where the model is (a GPU when there is one); bookkeeping on the CPU
    x, y = x.cpu(), y.cpu()
    ok = predict(model, x, batch_size) == y
    clean = Accuracy(int(ok.sum()), n)
    broken_by = [ROBUST if o else CLEAN_ERROR for o in ok.tolist()]
    rows = []
    first = stages[0].attack
    for stage in _progress(stages, enabled=progress, desc="cascade"):
        idx = ok.nonzero().squeeze(1)
        t0 = time.perf_counter()
        broke = 0
        for i in range(0, len(idx), batch_size):
            j = idx[i:i + batch_size]
            xa = stage.attack(model, x[j].to(dev), y[j].to(dev)).cpu()
            fooled = predict(model, xa, batch_size) != y[j]
            ok[j[fooled]] = False
            for k in j[fooled].tolist():
                broken_by[k] = stage.label
            broke += int(fooled.sum())
        a = stage.attack
        after = Accuracy(int(ok.sum()), n, f"worst case up to {stage.label}", str(a.threat_model), str(a.norm),
                         a.eps, a.steps)
        rows.append({"stage": stage.label, "role": stage.role, "attack": a.name, "threat_model": str(a.threat_model),
                     "norm": str(a.norm), "eps": a.eps, "steps": a.steps, "attacked": len(idx), "broken": broke,
                     "robust": int(ok.sum()), "n": n, "accuracy": after.value, "ci_low": after.ci[0],
                     "ci_high": after.ci[1], "seconds": time.perf_counter() - t0, "after": after})
    worst = Accuracy(int(ok.sum()), n, "worst case over the cascade", "white-box (adaptive)", str(first.norm),
                     max(s.attack.eps for s in stages), max(s.attack.steps for s in stages),
                     {"stages": labels})
    return CascadeResult(clean, worst, ok, broken_by, rows)


def run_cascades(models: dict, x: torch.Tensor, y: torch.Tensor, stages, images, names=None, seed: int | None = None,
                 progress: bool = True) -> dict:
    """A chapter's adaptive evaluation: ``{name: CascadeResult}``, for each model of ``models`` (``names``:
    these, in this order) the :func:`cascade` of ``stages(model)`` on the first ``images`` images
    (an int, or ``images(model)``: a random defense may get fewer). ``seed``: every random defense is
    reseeded with it first (:meth:`~qutils.defenses.protocol.Defense.reseed`), so each prediction is a
    reproducible fresh draw."""
    out = {}
    for name in _progress(list(names or models), enabled=progress, desc="adaptive cascade"):
        if name not in models:
            raise ValueError(f"no model {name!r}; models: {list(models)}")
        m = models[name]
        d = as_defense(m)
        if seed is not None:
            d.reseed(seed)
        k = min(images(m) if callable(images) else images, len(x))
        out[name] = cascade(d.deployed(), stages(m), x[:k], y[:k], progress=False)
    return out


def adaptive_evaluation(defense, x: torch.Tensor, y: torch.Tensor, eps: float, batch_size: int = 500,
                        progress: bool = True, **stage_options) -> CascadeResult:
    """The adaptive evaluation of ``defense`` on ``x, y`` at radius ``eps``: :func:`adaptive_stages`
    (options as there) run as a :func:`cascade` against the deployed model."""
    d = as_defense(defense)
    return cascade(d.deployed(), adaptive_stages(d, eps, **stage_options), x, y, batch_size, progress)


def summary_table(results: dict, label: str = LABEL) -> "pd.DataFrame":
    """One row per evaluated model of ``results`` (``{name: CascadeResult}``): clean accuracy, the
    accuracy under the paper's attack (the stage with that role; NaN where there is none), the worst
    case, each with its 95% interval (fractions), the other stage that broke the most images
    (``decisive``) and the seconds spent. ``label`` names the first column."""
    import pandas as pd

    rows = []
    nan = float("nan")
    for name, r in results.items():
        p = r.paper_accuracy() if r.paper_stage() is not None else None
        rows.append({label: name, "n": r.clean.n, "clean": r.clean.value, "clean_lo": r.clean.ci[0],
                     "clean_hi": r.clean.ci[1], "paper": p.value if p else nan, "paper_lo": p.ci[0] if p else nan,
                     "paper_hi": p.ci[1] if p else nan, "worst": r.worst.value, "worst_lo": r.worst.ci[0],
                     "worst_hi": r.worst.ci[1], "decisive": decisive_stage(r), "seconds": r.seconds})
    return pd.DataFrame(rows)


def gain_table(results: dict, label: str = "model") -> "pd.DataFrame":
    """Per model of ``results`` (``{name: CascadeResult}``, each with a stage in the role of the paper's
    attack): the paper's attack and the adaptive worst case on the same images, and the drop in
    percentage points."""
    import pandas as pd

    rows = []
    for name, r in results.items():
        paper = r.paper_accuracy()
        rows.append({label: name, "images": r.clean.n, "paper's attack": paper, "adaptive worst case": r.worst,
                     "drop (points)": 100 * (paper.value - r.worst.value)})
    return pd.DataFrame(rows)


def curve_rows(results: dict, eps: float) -> list[dict]:
    """Two rows per model of ``results`` (cascades run at radius ``eps``) for a security curve: the paper's
    attack (the stage in that role) and the adaptive worst case, as accuracy rows with ``model``, ``attack`` and
    ``eps``."""
    from .metrics import accuracy_row

    rows = []
    for name, r in results.items():
        rows.append({**accuracy_row(r.paper_accuracy()), "model": name,
                     "attack": "paper's PGD", "eps": float(eps)})
        rows.append({**accuracy_row(r.worst), "model": name, "attack": "adaptive worst case", "eps": float(eps)})
    return rows


def compare_table(results: dict, name: str, against, label: str | None = None,
                  paper_column: str = "paper's attack") -> "pd.DataFrame":
    """Is ``name`` more robust than each model of ``against`` (those in ``results``), under the paper's
    attack (the stage in that role) and under the adaptive worst case? Higher, lower or no significant
    difference, by the 95% intervals (:func:`qutils.evaluate.compare_accuracies`)."""
    import pandas as pd

    from .metrics import compare_accuracies

    r = results[name]
    rows = []
    for other in against:
        if other in results:
            o = results[other]
            rows.append({label or f"{name} against": other,
                         paper_column: compare_accuracies(r.paper_accuracy(), o.paper_accuracy()),
                         "adaptive worst case": compare_accuracies(r.worst, o.worst)})
    return pd.DataFrame(rows)


def decisive_stage(r: CascadeResult) -> str:
    """The stage other than the paper's attack that broke the most images, or ``"none"``."""
    later = {s["stage"] for s in r.stages if s["role"] != "paper's attack"}
    counts = {k: v for k, v in r.breakdown().items() if k in later and v > 0}
    return max(counts, key=counts.get) if counts else "none"


def convergence_check(adaptive, models: dict, x: torch.Tensor, y: torch.Tensor, cfg, results: dict, factor: int = 2,
                      **kwargs) -> "pd.DataFrame":
    """The convergence check of a chapter's cascade: ``adaptive`` (the chapter's
    ``adaptive(models, x, y, cfg, n=..., progress=..., **kwargs)``) run again with ``factor`` times
    every attack's budget (``cfg.stronger(factor)``, :meth:`~qutils.chapter.CascadeSettings.stronger`)
    on the first ``cfg.convergence_images`` images, compared with ``results`` (the cascades as run on
    the same first images) by :func:`convergence_table`."""
    strong = cfg.stronger(factor)
    n = getattr(cfg, "convergence_images", None)
    if n is None:
        raise ValueError(f"{type(cfg).__name__} has no convergence_images: the chapter does not check convergence")
    more = adaptive(models, x, y, strong, n=n, progress=False, **kwargs)
    return convergence_table(results, more, f"{strong.budget} (x {factor})")


def convergence_table(results: dict, stronger: dict, what: str, tolerance: float = 1.0,
                      label: str = "model") -> "pd.DataFrame":
    """Did each cascade converge? ``results`` are the cascades as run (``{name: CascadeResult}``),
    ``stronger`` the same cascades with more budget (``what`` says how much, e.g. "steps, targets,
    queries x 2") on the first images of the same test set. Per model of ``stronger``: on those images,
    the worst case as run, the worst case when the stronger cascade's verdicts are added (an image counts
    as robust only if it survived both), the images only the stronger cascade broke, the change in
    points and ``converged``: the change is below ``tolerance`` points. A model the check did not
    converge for has a worst case that more budget still lowers: its number is not final."""
    import pandas as pd

    from .metrics import Accuracy

    rows = []
    for name, strong in stronger.items():
        if name not in results:
            raise ValueError(f"no cascade result for {name!r} to compare the stronger cascade with")
        base = results[name]
        k = len(strong.robust)
        if k > len(base.robust):
            raise ValueError(f"{name}: the stronger cascade ran on {k} images, the cascade on {len(base.robust)}")
        before = base.robust[:k]
        after = before & strong.robust
        a, b = Accuracy(int(before.sum()), k), Accuracy(int(after.sum()), k)
        change = 100 * (a.value - b.value)
        rows.append({label: name, "n": k, "worst": a, "worst, stronger": b, "newly broken": int((before & ~after).sum()),
                     "change (points)": change, "converged": change < tolerance, "stronger": what})
    return pd.DataFrame(rows)

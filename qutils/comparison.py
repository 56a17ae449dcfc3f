"""The five defenses side by side, read from the chapters' results files (nothing is trained or attacked).

Every adaptive chapter wrote an ``adaptive`` table (:func:`qutils.cascade.summary_table`'s columns:
clean accuracy, the accuracy under the paper's own attack, the adaptive worst case, each with its 95%
interval, the attack that decided it) and its settings (``config``) to ``results/<name>.json``.
:data:`SOURCES` (from the chapters' records, :data:`qutils.chapters.CHAPTERS`) says, per dataset, which
results file holds which defense, which of its models are the chapter's main ones and what role each plays (the defense itself, or a baseline: undefended,
FGSM-trained, PGD-trained, another published defense). :func:`leaderboard` joins them: one row per
model, the radius read from the chapter's own configuration (its ``eps``), so a chapter that measured
at another radius is said to have done so rather than ranked with the others. :func:`security_curves`
collects the accuracy-against-epsilon curves the chapters measured, :func:`binarization_bounds` the
two-sided bounds of the binarizing models; :func:`headline` is the one line
the landing page quotes. The side-by-side page's tables, figures and glued values are in
:mod:`qutils.side_by_side`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .bars import UNDER_TRAINED, WEAK_BASELINE, under_trained, weak_baseline
from .chapter import DEFENSE, FGSM_TRAINED, OTHER, PGD_TRAINED, UNDEFENDED, Source
from .chapters import CHAPTERS, chapter
from .checks import check_choice
from .schema import ADAPTIVE, label_column, validate_table

__all__ = ["DEFENSES", "MECHANISM", "COMMON_EPS", "Source", "SOURCES", "DEFENSE", "UNDEFENDED", "FGSM_TRAINED",
           "PGD_TRAINED", "OTHER", "LIGHT", "NOT_CONVERGED", "NOT_CHECKED", "rank_note", "leaderboard", "binarization_bounds", "security_curves", "headline", "by_defense", "exercise_reference"]

#: the defenses' short names, in the book's order (from the chapters' records)
DEFENSES = {ch.paper: ch.name for ch in CHAPTERS}
#: what each defense quantizes
MECHANISM = {ch.paper: ch.mechanism for ch in CHAPTERS}
#: the book's common L-infinity radius per dataset (Madry et al.'s MNIST radius; Fashion-MNIST's third of it)
COMMON_EPS = {"mnist": 0.3, "fashion_mnist": 0.1}
#: per dataset, the chapters' adaptive results files and their main models, in the book's order
SOURCES = {d: [s for ch in CHAPTERS for s in ch.sources.get(d, ())] for d in COMMON_EPS}


def _sources(dataset: str) -> list:
    """The sources of ``dataset``; ``ValueError`` for a dataset the comparison does not cover."""
    return SOURCES[check_choice(dataset, tuple(SOURCES), "dataset")]


def _load(source: Source, directory: Path) -> dict:
    from .results import load_results

    return load_results(directory / f"{source.results}.json")  # a missing file names its notebook


def _config(source: Source, results: dict):
    """The chapter's configuration, rebuilt from what its results file recorded (so its properties,
    such as the radius of the adaptive test, are computed by the chapter's own code)."""
    cls = chapter(source.paper).config
    stored = results.get("config") or {}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(stored) - names
    if unknown:
        raise ValueError(f"{source.results}.json has settings its chapter no longer knows ({sorted(unknown)}): "
                         f"stale results, re-run notebooks/{source.notebook}.ipynb")
    return cls(**stored)


#: why a row at the common radius is not ranked (``rank_note``; "" for a ranked row)
LIGHT, NOT_CONVERGED, NOT_CHECKED = "light attack", "not converged", "convergence not checked"


def _converged(source: Source, results: dict) -> dict:
    """``{model: converged}`` from the results file's convergence table (:func:`qutils.cascade.convergence_table`),
    empty where the chapter ran no convergence check."""
    table = results.get("tables", {}).get("convergence") or []
    if table and "converged" not in table[0] and "axis" in table[0]:
        return {}  # the SQA chapter's EOT curve (accuracy against EOT samples), written before its check
    out = {}
    for row in table:
        if "converged" not in row:
            raise ValueError(f"{source.results}.json's convergence table has no 'converged' column: "
                             f"re-run notebooks/{source.notebook}.ipynb")
        out[row[label_column(table)]] = bool(row["converged"])
    return out


def rank_note(common: bool, standard: bool, converged, label: str = "") -> str:
    """Why a row is not ranked, "" when it is: the comparison ranks a row only at the common radius,
    attacked at AutoAttack's standard strength (:attr:`qutils.chapter.CascadeSettings.STANDARD`), with
    a convergence check that passed (``converged``: ``True``, ``False`` or ``None`` for not checked),
    and on a model that carries no label (``label``, :mod:`qutils.bars`: an under-trained model or a
    weak baseline is measured and listed, never ranked as if comparable; the note is then the label)."""
    if not common:
        return "another radius"
    if not standard:
        return LIGHT
    if converged is None:
        return NOT_CHECKED
    if not converged:
        return NOT_CONVERGED
    return label or ""


def leaderboard(dataset: str, directory: str | Path | None = None):
    """One row per main model of every chapter on ``dataset``, read from the results files: defense,
    model, role, training, radius, APGD steps, n, clean / the paper's attack / the adaptive worst case
    (fractions, 95% intervals), the attack that decided the worst case, the drop (points), whether
    the chapter measured at the book's common radius (``common``), the paper's clean accuracy of the
    model where it reports one (``paper_clean``, percent) and the model's ``label`` by :mod:`qutils.bars`:
    "under-trained" (clean accuracy below the paper's bar), "weak baseline" (a PGD-trained baseline
    below the robust bar) or "". The attack's strength: ``standard`` (the chapter's cascade at
    AutoAttack's budget or above), ``below_standard`` (what fell short, in words), ``converged``
    (the chapter's convergence check: ``True``, ``False`` or ``None``, not checked), ``ranked`` and
    ``rank_note`` (:func:`rank_note`: a row is ranked only at the common radius, at standard strength,
    converged and without a label). Sorted: common radius first, then ranked rows, each group by worst case. Raises ``FileNotFoundError`` naming the notebook of a missing results file and
    ``KeyError`` for a model the results file does not hold."""
    import pandas as pd

    from .results import results_dir

    d = Path(directory) if directory is not None else results_dir()
    rows = []
    for s in _sources(dataset):
        paper_clean = {c.model: c.value for c in chapter(s.paper).claims
                       if c.attack == "none" and c.unit == "%" and c.dataset == dataset}
        res = _load(s, d)
        cfg = _config(s, res)
        if cfg.dataset != dataset:
            raise ValueError(f"{s.results}.json holds {cfg.dataset}, not {dataset}")
        table = res.get("tables", {}).get("adaptive")
        if not table:
            raise KeyError(f"{s.results}.json has no adaptive table: re-run notebooks/{s.notebook}.ipynb")
        validate_table(ADAPTIVE, table, legacy=True)
        t = pd.DataFrame(table).set_index(label_column(table))
        missing = [m for m in s.models if m not in t.index]
        if missing:
            raise KeyError(f"{s.results}.json's adaptive table has no rows {missing} (it has {list(t.index)})")
        steps = cfg.adaptive_steps
        converged = _converged(s, res)
        for model, (role, training) in s.models.items():
            r = t.loc[model]
            ref = s.reference_of(model) if role == DEFENSE else ""
            if ref and ref not in t.index:
                raise KeyError(f"{s.results}.json's adaptive table has no reference model {ref!r} for {model!r}")
            cost = 100 * (float(t.loc[ref, "clean"]) - float(r["clean"])) if ref else float("nan")
            rows.append({"defense": DEFENSES[s.paper], "paper_id": s.paper, "model": model, "role": role,
                         "training": training, "eps": float(cfg.eps), "apgd_steps": int(steps), "n": int(r["n"]),
                         **{k: float(r[k]) for k in ("clean", "clean_lo", "clean_hi", "paper", "paper_lo",
                                                     "paper_hi", "worst", "worst_lo", "worst_hi")},
                         "decisive": r["decisive"],
                         "drop": 100 * (float(r["paper"]) - float(r["worst"])), "reference": ref,
                         "clean_cost": cost, "results": s.results,
                         "paper_clean": paper_clean.get(model, float("nan")),
                         "standard": cfg.at_standard, "below_standard": ", ".join(cfg.below_standard),
                         "converged": converged.get(model)})
            rows[-1]["label"] = _label(rows[-1], dataset)
    out = pd.DataFrame(rows)
    out["common"] = (out.eps - COMMON_EPS[dataset]).abs() < 1e-9
    out["rank_note"] = [rank_note(c, s, v, lab) for c, s, v, lab in zip(out.common, out.standard, out.converged, out.label)]
    out["ranked"] = out.rank_note == ""
    return out.sort_values(["common", "ranked", "worst", "clean"], ascending=[False, False, False, False],
                           kind="stable", ignore_index=True)


def _label(row: dict, dataset: str) -> str:
    labels = []
    if row["paper_clean"] == row["paper_clean"] and under_trained(dataset, 100 * row["clean"], row["paper_clean"]):
        labels.append(UNDER_TRAINED)
    if row["role"] == PGD_TRAINED and weak_baseline(dataset, row["eps"], 100 * row["worst"]):
        labels.append(WEAK_BASELINE)
    return ", ".join(labels)


def security_curves(dataset: str, directory: str | Path | None = None):
    """The adaptive accuracy-against-epsilon curves the chapters measured on ``dataset``, one row per
    (model, eps): defense, model, role, attack, eps, n, accuracy and its interval. A chapter that measured
    none (the Q-Layer's; GCLN's on Fashion-MNIST) has no rows."""
    import pandas as pd

    from .results import results_dir

    d = Path(directory) if directory is not None else results_dir()
    frames = []
    for s in _sources(dataset):
        res = _load(s, d)
        if s.curves is None:
            continue
        t = pd.DataFrame(res.get("tables", {}).get(s.curves) or [])
        if t.empty:
            raise KeyError(f"{s.results}.json has no {s.curves!r} table: re-run notebooks/{s.notebook}.ipynb")
        if s.curve_models is not None:
            t = t[t.attack.isin(list(s.curve_models))].assign(model=lambda f: f.attack.map(s.curve_models))
        else:
            t = t[(t.attack == "adaptive worst case") & t.model.isin(list(s.models))]
        t = t.assign(defense=DEFENSES[s.paper], paper_id=s.paper, role=t.model.map(lambda m: s.models[m][0]))
        frames.append(t)
    cols = ["defense", "paper_id", "model", "role", "attack", "threat_model", "eps", "steps", "n", "accuracy", "ci_low",
            "ci_high"]
    return pd.concat(frames, ignore_index=True)[cols].sort_values(["paper_id", "model", "eps"], ignore_index=True)


def binarization_bounds(dataset: str, directory: str | Path | None = None):
    """The two-sided bounds the chapters measured for their binarizing models on ``dataset`` (their
    results' ``binarization_bounds`` tables, :func:`qutils.certify.cascade_bounds`), one row per
    (model, eps): defense, model, eps, n, the certified share (lower bound), the attacks' share alone,
    the share neither the attacks nor the exact search broke (upper bound), with 95% intervals, the
    images the search broke that the attacks had missed and the undecided ones. Empty where no chapter
    measured any."""
    import pandas as pd

    from .results import results_dir

    d = Path(directory) if directory is not None else results_dir()
    frames = []
    for s in _sources(dataset):
        t = pd.DataFrame(_load(s, d).get("tables", {}).get("binarization_bounds") or [])
        if not t.empty:
            frames.append(t.assign(defense=DEFENSES[s.paper], paper_id=s.paper, results=s.results))
    cols = ["defense", "paper_id", "model", "eps", "n", "certified", "certified_lo", "certified_hi", "survived",
            "attacked", "attacked_lo", "attacked_hi", "n_missed", "n_unknown", "results"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def headline(dataset: str, directory: str | Path | None = None) -> dict:
    """The landing page's line for ``dataset``: at the common radius, the quantization defense with the
    highest adaptive worst case -- the five papers' models and the other quantization defenses the
    chapters measured beside them (feature squeezing's bit-depth reduction), so the headline is table
    1's top quantization row --, the best baseline, the best PGD-trained baseline and the largest drop
    from the paper's attack among the papers' own models (rows of :func:`leaderboard`). The
    defense is the best *ranked* one where any is (an unranked row heads the line only where none is,
    and says so in its ``rank_note``); the baselines are the best by worst case, ranked or not (each
    row's ``rank_note`` says which)."""
    board = leaderboard(dataset, directory)
    common = board[board.common]
    quantizers = common[common.role.isin([DEFENSE, OTHER])]
    defenses = common[common.role == DEFENSE]
    by_worst = common.sort_values(["worst", "clean"], ascending=False, kind="stable")
    baselines = by_worst[by_worst.role.isin([PGD_TRAINED, FGSM_TRAINED, UNDEFENDED])]
    pgd = by_worst[by_worst.role == PGD_TRAINED]
    return {"dataset": dataset, "eps": COMMON_EPS[dataset], "best": quantizers.iloc[0],
            "best_baseline": baselines.iloc[0], "best_pgd": pgd.iloc[0] if len(pgd) else None,
            "pgd_range": (pgd.worst.min(), pgd.worst.max()) if len(pgd) else None,
            "largest_drop": defenses.loc[defenses["drop"].idxmax()]}


def by_defense(board):
    """One row per defense of ``board`` (:func:`leaderboard`), at the common radius where the chapter
    measured there: what it quantizes, the model the paper's own attack rates highest (the paper's best
    claim on our models) with that accuracy, its adaptive worst case and the attack that found it, and the
    model with the highest adaptive worst case."""
    import pandas as pd

    rows = []
    for paper in DEFENSES:
        d = board[(board.paper_id == paper) & (board.role == DEFENSE)]
        if d.empty:
            continue
        if d.common.any():
            d = d[d.common]
        claim = d.loc[d.paper.idxmax()]
        best = d.loc[d.worst.idxmax()]
        rows.append({"defense": DEFENSES[paper], "paper_id": paper, "quantizes": MECHANISM[paper], "eps": claim.eps,
                     "claimed model": claim.model, "paper": claim.paper, "paper_lo": claim.paper_lo,
                     "paper_hi": claim.paper_hi, "worst": claim.worst, "worst_lo": claim.worst_lo,
                     "worst_hi": claim.worst_hi, "drop": claim["drop"], "exposed by": claim.decisive,
                     "most robust model": best.model, "best": best.worst, "best_lo": best.worst_lo,
                     "best_hi": best.worst_hi})
    return pd.DataFrame(rows)


def exercise_reference(name: str, board) -> float:
    """The answers of the side-by-side page's exercises, from ``board`` (:func:`leaderboard`):
    ``"ties"``: how many other defense models at the common radius have a worst-case interval that
    overlaps the top one's; ``"cheap"``: the highest worst case among defense models at the common
    radius that cost at most 2 points of clean accuracy against their chapter's model without the
    defense."""
    d = board[board.common & (board.role == DEFENSE)]
    if name == "ties":
        top = d.loc[d.worst.idxmax()]
        others = d.drop(index=top.name)
        return float(((others.worst_hi >= top.worst_lo) & (others.worst_lo <= top.worst_hi)).sum())
    if name == "cheap":
        return float(d[d.clean_cost <= 2].worst.max())
    raise ValueError(f"unknown exercise {name!r}; known: 'ties', 'cheap'")

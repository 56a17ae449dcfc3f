"""The five defenses side by side, read from the chapters' results files (nothing is trained or attacked).

Every adaptive chapter wrote an ``adaptive`` table (:func:`qutils.cascade.summary_table`'s columns:
clean accuracy, the accuracy under the paper's own attack, the adaptive worst case, each with its 95%
interval, the attack that decided it) and its settings (``config``) to ``results/<name>.json``.
:data:`SOURCES` (from the chapters' records, :data:`qutils.chapters.CHAPTERS`) says, per dataset, which
results file holds which defense, which of its models are the chapter's main ones and what role each plays (the defense itself, or a baseline: undefended,
FGSM-trained, PGD-trained, another published defense). :func:`leaderboard` joins them: one row per
model, the radius read from the chapter's own configuration (its ``eps``), so a chapter that measured
at another radius is said to have done so rather than ranked with the others. :func:`security_curves`
collects the accuracy-against-epsilon curves the chapters measured; :func:`headline` is the one line
the landing page quotes.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .chapter import DEFENSE, FGSM_TRAINED, OTHER, PGD_TRAINED, UNDEFENDED, Source
from .chapters import CHAPTERS, chapter
from .checks import check_choice

__all__ = ["DEFENSES", "MECHANISM", "COMMON_EPS", "Source", "SOURCES", "DEFENSE", "UNDEFENDED", "FGSM_TRAINED",
           "PGD_TRAINED", "OTHER", "leaderboard", "security_curves", "headline",
           "by_defense", "exercise_reference", "dumbbell", "curves_figure"]

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


def leaderboard(dataset: str, directory: str | Path | None = None):
    """One row per main model of every chapter on ``dataset``, read from the results files: defense,
    model, role, training, radius, APGD steps, n, clean / the paper's attack / the adaptive worst case
    (fractions, 95% intervals), the attack that decided the worst case, the drop (points), and whether
    the chapter measured at the book's common radius (``common``). Sorted: common radius first, then
    by worst case. Raises ``FileNotFoundError`` naming the notebook of a missing results file and
    ``KeyError`` for a model the results file does not hold."""
    import pandas as pd

    from .results import results_dir

    d = Path(directory) if directory is not None else results_dir()
    rows = []
    for s in _sources(dataset):
        res = _load(s, d)
        cfg = _config(s, res)
        if cfg.dataset != dataset:
            raise ValueError(f"{s.results}.json holds {cfg.dataset}, not {dataset}")
        table = res.get("tables", {}).get("adaptive")
        if not table:
            raise KeyError(f"{s.results}.json has no adaptive table: re-run notebooks/{s.notebook}.ipynb")
        t = pd.DataFrame(table)
        label = "defense" if "defense" in t.columns else "model"
        t = t.set_index(label)
        missing = [m for m in s.models if m not in t.index]
        if missing:
            raise KeyError(f"{s.results}.json's adaptive table has no rows {missing} (it has {list(t.index)})")
        steps = getattr(cfg, "apgd_steps", None) or cfg.pgd_steps
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
                         "clean_cost": cost, "results": s.results})
    out = pd.DataFrame(rows)
    out["common"] = (out.eps - COMMON_EPS[dataset]).abs() < 1e-9
    return out.sort_values(["common", "worst", "clean"], ascending=[False, False, False], kind="stable",
                           ignore_index=True)


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


def headline(dataset: str, directory: str | Path | None = None) -> dict:
    """The landing page's line for ``dataset``: at the common radius, the defense model with the highest
    adaptive worst case, the best baseline, and the largest drop from the paper's attack (rows of
    :func:`leaderboard`)."""
    board = leaderboard(dataset, directory)
    common = board[board.common]
    defenses = common[common.role == DEFENSE]
    baselines = common[common.role.isin([PGD_TRAINED, FGSM_TRAINED, UNDEFENDED])]
    return {"dataset": dataset, "eps": COMMON_EPS[dataset], "best": defenses.iloc[0],
            "best_baseline": baselines.iloc[0], "largest_drop": defenses.loc[defenses["drop"].idxmax()]}


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


#: one colour per defense (baselines grey), used by both figures
COLOURS = {ch.paper: ch.colour for ch in CHAPTERS}
_GREY = "#7f7f7f"


def _colour(row) -> str:
    return COLOURS[row["paper_id"]] if row["role"] == DEFENSE else _GREY


def dumbbell(board, title: str | None = None):
    """The paper's claim against the adaptive number: per row of ``board`` (:func:`leaderboard`), an open
    circle at the accuracy under the paper's attack, a filled one at the adaptive worst case (95%
    intervals as whiskers), joined by a line, and a tick at the clean accuracy. Rows at another radius
    than the common one sit below a rule, their radius in the label."""
    import matplotlib.pyplot as plt
    import numpy as np

    b = board.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 0.27 * len(b) + 1.2))
    y = np.arange(len(b))[::-1].astype(float)
    for yi, (_, r) in zip(y, b.iterrows()):
        c = _colour(r)
        ax.plot([100 * r.worst, 100 * r.paper], [yi, yi], color=c, lw=1.6, alpha=0.7, zorder=1)
        ax.errorbar(100 * r.paper, yi, xerr=[[100 * (r.paper - r.paper_lo)], [100 * (r.paper_hi - r.paper)]],
                    fmt="o", mfc="white", mec=c, ecolor=c, ms=5, elinewidth=0.7, capsize=0, zorder=2)
        ax.errorbar(100 * r.worst, yi, xerr=[[100 * (r.worst - r.worst_lo)], [100 * (r.worst_hi - r.worst)]],
                    fmt="o", color=c, ms=5, elinewidth=0.7, capsize=0, zorder=3)
        ax.plot(100 * r.clean, yi, marker="|", color="black", ms=7, zorder=2)
    labels = [f"{r.defense} · {r.model}" + ("" if r.common else f" (ε = {r.eps:g})") for _, r in b.iterrows()]
    ax.set_yticks(y, labels)
    for tick, (_, r) in zip(ax.get_yticklabels(), b.iterrows()):
        tick.set_color(_colour(r) if r.role == DEFENSE else "black")
    if (~b.common).any():
        ax.axhline(y[int((~b.common).idxmax())] + 0.5, color="black", lw=0.6, ls=":")
    ax.set(xlim=(-2, 102), ylim=(-0.7, len(b) - 0.3), xlabel="accuracy (%), 95% intervals")
    ax.grid(axis="x", alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", mfc="white", mec="black", label="the paper's attack"),
               Line2D([], [], marker="o", ls="", color="black", label="adaptive worst case"),
               Line2D([], [], marker="|", ls="", color="black", ms=7, label="clean")]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.4, 1.0), ncol=3, frameon=False)
    if title:
        ax.set_title(title, loc="left", pad=18)
    fig.tight_layout()
    return fig


def curves_figure(curves, board=None, title: str | None = None):
    """All security curves of ``curves`` (:func:`security_curves`) on one plot, in two panels sharing the
    axes: the defenses' own models (top) and the baselines each chapter measured beside them (bottom),
    one colour per chapter, 95% intervals as bands. ``board`` (:func:`leaderboard`): for a chapter that
    measured no curve, its best defense model's worst case as a single marker at its radius."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.0), sharex=True, sharey=True)
    styles = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1))]
    used = {}
    order = {p: i for i, p in enumerate(DEFENSES)}
    groups = sorted(curves.groupby(["paper_id", "model"], sort=False), key=lambda g: order[g[0][0]])
    for (paper, model), df in groups:
        df = df.sort_values("eps")
        r = df.iloc[0]
        ax = axes[0] if r.role == DEFENSE else axes[1]
        k = used.setdefault((paper, ax), 0)
        used[(paper, ax)] += 1
        c = COLOURS[paper]
        ax.plot(df.eps, 100 * df.accuracy, ls=styles[k % len(styles)], marker="o", ms=2.5, color=c, lw=1.4,
                label=f"{r.defense} · {model} (n={int(df.n.max())})")
        ax.fill_between(df.eps, 100 * df.ci_low, 100 * df.ci_high, color=c, alpha=0.08)
    if board is not None:
        lone = board[(board.role == DEFENSE).to_numpy()
                     & ~board.paper_id.isin(set(curves.paper_id)).to_numpy()]
        for paper, g in lone.groupby("paper_id", sort=False):
            best = g.loc[g.worst.idxmax()]
            axes[0].errorbar(best.eps, 100 * best.worst, yerr=[[100 * (best.worst - best.worst_lo)],
                                                             [100 * (best.worst_hi - best.worst)]],
                             fmt="D", ms=5, color=COLOURS[paper], capsize=2, elinewidth=0.8,
                             label=f"{best.defense} · {best.model}: one radius (n={int(best.n)})")
    for ax, what in zip(axes, ["the defenses", "the baselines beside them"]):
        ax.set(ylabel="robust accuracy (%)", ylim=(-2, 102))
        ax.set_title(what, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[1].set_xlabel("ε (L∞)")
    if title:
        fig.suptitle(title, x=0.02, ha="left")
    # the legends sit in the right part of the 7.5-inch figure, so the page does not shrink it
    fig.subplots_adjust(left=0.09, right=0.54, top=0.94, bottom=0.09, hspace=0.2)
    return fig

"""The side-by-side page (notebook 20): its tables, its two figures and the values its prose quotes,
all from the leaderboards of :mod:`qutils.comparison` (one per dataset). The page calls one function
per table or figure and :func:`glue` once; nothing here trains or attacks.
"""
from __future__ import annotations

from . import comparison as C
from . import report
from .chapter import DEFENSE, FGSM_TRAINED
from .chapters import CHAPTERS

__all__ = ["NAMES", "COLOURS", "model_name", "show_board", "defense_table", "clean_cost_table", "bounds_table", "dumbbell", "curves_figure", "glue", "glue_bounds", "light_text"]

#: the datasets' names on the page
NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def _row(boards, ds, paper, model):
    b = boards[ds]
    return b[(b.paper_id == paper) & (b.model == model)].iloc[0]


def model_name(r, ranked: bool = True) -> str:
    """"Defense · model", with the model's label where it has one (:mod:`qutils.bars`: under-trained,
    weak baseline), so a number on a weaker model is never read as comparable, and (``ranked``) why
    the row is not ranked where it is not (:func:`qutils.comparison.rank_note`)."""
    labels = [getattr(r, "label", "")]
    if ranked and not getattr(r, "ranked", True):
        labels.append("not ranked" if r.rank_note == labels[0] else f"not ranked: {r.rank_note}")
    labels = [x for x in labels if isinstance(x, str) and x]
    return f"{r.defense} · {r.model}" + (f" ({'; '.join(labels)})" if labels else "")


def _worst(r) -> str:
    return report.cell(r.worst, r.worst_lo, r.worst_hi)


def _paper(r) -> str:
    return report.cell(r.paper, r.paper_lo, r.paper_hi)


def _role(r) -> str:
    if r.role == DEFENSE and r.training != "none":
        return f"defense + {r.training} training"
    if r.role == FGSM_TRAINED and r.training != "FGSM":
        return f"{r.training}-trained"
    return r.role


def _either(values) -> str:
    """``[40, 100]`` -> ``"40 or 100"``; ``[40, 60, 100]`` -> ``"40, 60 or 100"``."""
    words = [str(v) for v in values]
    return " or ".join([", ".join(words[:-1]), words[-1]] if len(words) > 2 else words)


def _ranks(b) -> list[str]:
    """The "rank" column: 1, 2, ... for the ranked rows (the board's order), and for the others why not
    (:func:`qutils.comparison.rank_note`)."""
    out, k = [], 0
    for _, r in b.iterrows():
        if r.ranked:
            k += 1
            out.append(str(k))
        else:
            out.append(f"{report.EMPTY} {r.rank_note}")
    return out


def show_board(board, common: bool = True):
    """Tables 1-4: the rows of ``board`` at the common radius (``common=True``), the ranked ones first
    with their rank and the others with the reason they are not ranked, or the rows measured at another
    radius, with their radius."""
    b = board[board.common == common].reset_index(drop=True)
    df = b.assign(rank=_ranks(b), model=[model_name(r, ranked=False) for _, r in b.iterrows()],
                  role=[_role(r) for _, r in b.iterrows()], clean=b.clean.map(report.pct),
                  drop=b["drop"].map("{:.1f}".format), eps=b.eps,
                  decisive=b.decisive.replace("none", "the paper's attack"))
    cols = (["rank"] if common else ["eps"]) + ["model", "role", "n", "clean", "paper's attack (%)", "worst case (%)",
                                                "decisive", "drop"]
    return report.show(df, intervals={"paper's attack (%)": ("paper", "paper_lo", "paper_hi"),
                                      "worst case (%)": ("worst", "worst_lo", "worst_hi")},
                       columns=cols, rename={"clean": "clean (%)", "drop": "drop (points)",
                                             "decisive": "found by", "eps": "ε"}, wrap=13)


def defense_table(boards):
    """Table 5: per dataset and defense, the model the paper's attack rates highest, its adaptive worst
    case and the attack that exposed it, and the most robust model (:func:`qutils.comparison.by_defense`)."""
    import pandas as pd

    t = pd.concat([C.by_defense(b).assign(dataset=NAMES[ds]) for ds, b in boards.items()], ignore_index=True)
    t["most robust"] = [f"{r['most robust model']}: {report.cell(r.best, r.best_lo, r.best_hi)}"
                        for _, r in t.iterrows()]
    return report.show(t, intervals={"paper's attack (%)": ("paper", "paper_lo", "paper_hi"),
                                     "worst case (%)": ("worst", "worst_lo", "worst_hi")},
                       columns=["dataset", "defense", "quantizes", "eps", "claimed model", "paper's attack (%)",
                                "worst case (%)", "exposed by", "most robust"],
                       rename={"eps": "ε", "most robust": "most robust model (%)"}, wrap=14)


def clean_cost_table(boards):
    """Table 6: the clean accuracy each defense model costs against its chapter's model without the
    defense, in points, per dataset."""
    import pandas as pd

    costs = pd.concat([b[b.role == DEFENSE].assign(dataset=NAMES[ds]) for ds, b in boards.items()],
                      ignore_index=True)
    costs["model"] = costs.defense + " · " + costs.model
    order = list(dict.fromkeys(costs.sort_values(["paper_id", "model"]).model))
    t = (costs.pivot_table(index=["model", "reference"], columns="dataset", values="clean_cost", aggfunc="first")
         .reset_index().set_index("model").loc[order].reset_index())
    for ds in NAMES.values():
        t[ds] = t[ds].map(lambda v: report.EMPTY if v != v else f"{v:+.1f}".replace("-", "−"))
    return report.show(t, columns=["model", "reference", "MNIST", "Fashion-MNIST"],
                       rename={"reference": "without the defense"}, wrap=30)


def bounds_table(bounds):
    """Table 6: the binarizing models bounded from both sides (:func:`qutils.comparison.binarization_bounds`),
    as :func:`qutils.report.bounds` shows a chapter's, each model named with its chapter."""
    return report.bounds(bounds.assign(model=bounds.defense + " · " + bounds.model), wrap=11, seconds=False)


def glue_bounds(bounds, boards) -> None:
    """Glue what the page says of the two-sided bounds (``sbs-bounds-...``): the radius, the images, the
    largest certified share at the common radius, and feature squeezing on CNN_A (the GCLN chapter's
    row) before and after the exact search, beside its ranked worst case."""
    eps = C.COMMON_EPS["mnist"]
    at = bounds[(bounds.eps - eps).abs() < 1e-9]
    report.glue("sbs-bounds-n", f"{int(bounds.n.min())}")
    report.glue("sbs-bounds-cert-max", report.pct(at.certified.max()))
    counted = at.dropna(subset=["n_missed"])  # a results file written before the search counted them has none
    report.glue("sbs-bounds-missed", int(counted.n_missed.sum()))
    report.glue("sbs-bounds-rows", len(counted))
    n, k = int(counted.n_missed.sum()), len(counted)
    which = (f"over the {k} binarizing models" if k == len(at) else
             f"counted for {k} of the {len(at)} binarizing models; the others' results predate the count")
    report.glue("sbs-bounds-missed-text",
                f"it broke {n} image{'' if n == 1 else 's'} that the whole cascade had left correct ({which})")
    lo = bounds[bounds.eps < eps - 1e-9]
    if len(lo):
        report.glue("sbs-bounds-eps-lo", f"{lo.eps.max():g}")
        best = lo[lo.eps == lo.eps.max()].sort_values("certified").iloc[-1]
        report.glue("sbs-bounds-lo-best", f"{best.defense} · {best.model}")
        report.glue("sbs-bounds-lo-cert", report.cell(best.certified, best.certified_lo, best.certified_hi))
        report.glue("sbs-bounds-lo-att", report.cell(best.attacked, best.attacked_lo, best.attacked_hi))
    fs = at[(at.paper_id == "gcln") & (at.model == "Feature squeezing")]
    if len(fs):
        r = fs.iloc[0]
        report.glue("sbs-bounds-fs-alone", report.pct(r.survived))
        report.glue("sbs-bounds-fs-att", report.cell(r.attacked, r.attacked_lo, r.attacked_hi))
        report.glue("sbs-bounds-fs-missed", int(r.n_missed))
        row = _row(boards, "mnist", "gcln", "Feature squeezing")
        report.glue("sbs-bounds-fs-ranked", _worst(row))
        report.glue("sbs-bounds-fs-n", int(row.n))
        report.glue("sbs-bounds-fs-note", f"rank {int(boards['mnist'].ranked.loc[:row.name].sum())}" if row.ranked
                    else f"not ranked: {row.rank_note}")


def light_text(light, n_common: int) -> str:
    """How many of the ``n_common`` rows at the common radius got a light attack, in words, with one
    of them as an example (its chapter's budget below the standard), or that none did."""
    if len(light) == 0:
        return f"none of the {n_common} rows any more"
    r = light.iloc[0]
    return f"{len(light)} of the {n_common} rows, for instance {r.defense}'s {r.below_standard}"


def glue(boards) -> None:
    """Glue every value the page's prose quotes (``sbs-...``), from ``boards`` (``{dataset:
    leaderboard}``) and the SQA chapter's measured training costs."""
    import pandas as pd

    from .results import load_results

    def row(ds, paper, model):
        return _row(boards, ds, paper, model)

    pct, worst, paper_acc = report.pct, _worst, _paper
    for ds, board in boards.items():
        report.glue(f"sbs-{ds}-eps", C.COMMON_EPS[ds])
        report.glue(f"sbs-{ds}-models", len(board))
        common = board[board.common]
        report.glue(f"sbs-{ds}-common", len(common))
        n_ranked = int(common.ranked.sum())
        report.glue(f"sbs-{ds}-ranked", "none" if n_ranked == 0 else str(n_ranked))
        light = common[common.rank_note == C.LIGHT]
        report.glue(f"sbs-{ds}-light-text", light_text(light, len(common)))
        for p in C.DEFENSES:
            d = board[board.paper_id == p]
            report.glue(f"sbs-{ds}-{p}-eps", f"{d.eps.iloc[0]:g}")
        for _, r in C.by_defense(board).iterrows():
            p = r.paper_id
            report.glue(f"sbs-{ds}-{p}-claimed", r["claimed model"])
            report.glue(
                f"sbs-{ds}-{p}-paper", report.cell(r.paper, r.paper_lo, r.paper_hi)
            )
            report.glue(
                f"sbs-{ds}-{p}-worst", report.cell(r.worst, r.worst_lo, r.worst_hi)
            )
            report.glue(f"sbs-{ds}-{p}-drop", f"{r['drop']:.0f}")
            report.glue(f"sbs-{ds}-{p}-exposed", r["exposed by"])
            report.glue(f"sbs-{ds}-{p}-best-model", r["most robust model"])
            report.glue(
                f"sbs-{ds}-{p}-best", report.cell(r.best, r.best_lo, r.best_hi)
            )
        h = C.headline(ds)
        top = h["best"]
        name = f"{top.model} (measured in the {top.defense} chapter)" if top.role == C.OTHER else f"{top.defense} {top.model}"
        report.glue(f"sbs-{ds}-top", name if top.ranked else f"{name}, not ranked ({top.rank_note})")
        report.glue(f"sbs-{ds}-top-worst", worst(h["best"]))
        report.glue(
            f"sbs-{ds}-top-base",
            f"{h['best_baseline'].model} ({h['best_baseline'].defense} chapter)",
        )
        report.glue(f"sbs-{ds}-top-base-worst", worst(h["best_baseline"]))
        if h["best_pgd"] is not None:
            report.glue(f"sbs-{ds}-best-pgd", f"{h['best_pgd'].model} ({h['best_pgd'].defense} chapter)")
            report.glue(f"sbs-{ds}-best-pgd-worst", worst(h["best_pgd"]))
            report.glue(f"sbs-{ds}-pgd-range", "–".join(pct(v) for v in h["pgd_range"]))
        report.glue(
            f"sbs-{ds}-steps",
            _either(sorted(set(board.apgd_steps))),
        )
        report.glue(f"sbs-{ds}-n", f"{board.n.min()}-{board.n.max()}")

    for ds in boards:
        fs = row(ds, "qusecnets", "FS: bit depth 1")
        report.glue(f"sbs-{ds}-fs1", worst(fs))
        report.glue(f"sbs-{ds}-fs1-clean", pct(fs.clean))
        cq = row(ds, "qusecnets", "CQ n=2")
        report.glue(f"sbs-{ds}-cq2", worst(cq))
        report.glue(f"sbs-{ds}-cq2-clean", pct(cq.clean))
        report.glue(f"sbs-{ds}-cq2-cost", f"{cq.clean_cost:.1f}")
        nd = row(ds, "qusecnets", "No defense")
        report.glue(f"sbs-{ds}-nodef-clean", pct(nd.clean))
        report.glue(f"sbs-{ds}-gcln-pgd", worst(row(ds, "gcln", "PGD-trained")))
        report.glue(
            f"sbs-{ds}-dqa-fp", worst(row(ds, "dqa", "Full precision (ReLU)"))
        )
        report.glue(f"sbs-{ds}-sqa-pgd", worst(row(ds, "sqa", "LARGE PGD")))
        report.glue(f"sbs-{ds}-sqa-full", worst(row(ds, "sqa", "LARGE full")))
        report.glue(
            f"sbs-{ds}-qs-fgsm",
            worst(row(ds, "qusecnets", "No defense + adv. training")),
        )
        report.glue(
            f"sbs-{ds}-qs-fgsm-paper",
            paper_acc(row(ds, "qusecnets", "No defense + adv. training")),
        )
    g = boards["fashion_mnist"]
    gc = g[(g.paper_id == "gcln") & (g.role == C.DEFENSE)]
    report.glue("sbs-mnist-maxcost", f"{boards['mnist'].clean_cost.max():.0f}")
    report.glue(
        "sbs-fmnist-gcln-cost",
        f"{gc.clean_cost.min():.0f}-{gc.clean_cost.max():.0f}",
    )
    t4 = pd.DataFrame(load_results("sqa")["tables"]["table 4"]).set_index("method")
    for m, key in [("SQA + FGSM", "sqa"), ("FGSM-RS", "rs"), ("PGD-10", "pgd10")]:
        report.glue(f"sbs-cost-{key}", f"{t4.loc[m, 'ratio to FGSM']:.1f}")
    report.glue("sbs-cost-fgsm-s", f"{t4.loc['FGSM', 'seconds per iteration']:.2f}")


#: one colour per defense (baselines grey), used by both figures
COLOURS = {ch.paper: ch.colour for ch in CHAPTERS}
_GREY = "#7f7f7f"


def _colour(row) -> str:
    return COLOURS[row["paper_id"]] if row["role"] == DEFENSE else _GREY


def dumbbell(board, title: str | None = None):
    """The paper's claim against the adaptive number: per row of ``board`` (:func:`qutils.comparison.leaderboard`), an open
    circle at the accuracy under the paper's attack, a filled one at the adaptive worst case (95%
    intervals as whiskers), joined by a line, and a tick at the clean accuracy. Rows at another radius
    than the common one sit below a rule, their radius in the label."""
    import matplotlib.pyplot as plt
    import numpy as np

    b = board.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(b) + 1.2))
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
    ax.tick_params(axis="y", labelsize=9)  # 28 rows on MNIST: the labels at the text's size
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
    """All security curves of ``curves`` (:func:`qutils.comparison.security_curves`) on one plot, in two panels sharing the
    axes: the defenses' own models (top) and the baselines each chapter measured beside them (bottom),
    one colour per chapter, 95% intervals as bands. ``board`` (:func:`qutils.comparison.leaderboard`): for a chapter that
    measured no curve, its best defense model's worst case as a single marker at its radius."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.0), sharex=True, sharey=True)
    styles = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1))]
    used = {}
    order = {p: i for i, p in enumerate(C.DEFENSES)}
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

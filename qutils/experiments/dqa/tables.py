"""The DQA chapter's tables, formatted for the page (both datasets' notebooks show them the same way)."""
from __future__ import annotations

import pandas as pd

from ... import report

__all__ = ["show_table1", "show_table4", "show_gains", "show_adaptive", "show_cw", "show_transfer", "show_zoo", "budget", "budget_line", "show_ours"]


_cells = report.cells


def show_table1(paper_vs_ours: pd.DataFrame):
    """Table 1 next to ours (:func:`.paper.paper_table1`), in two panels: clean and PGD; FGSM."""
    df = _cells(paper_vs_ours)
    a = report.show(df, columns=["model", "clean: paper", "clean: ours", "PGD: paper", "PGD: ours, autograd",
                                 "PGD: ours, straight-through"], wrap=22)
    b = report.show(df, columns=["model", "FGSM: paper", "FGSM: ours, autograd", "FGSM: ours, straight-through"],
                    wrap=22)
    return report.Panels([a, b], ["Clean and PGD accuracy (%)", "FGSM accuracy (%)"])


def show_table4(t4: pd.DataFrame):
    """Table 4's MNIST rows (:func:`.paper.paper_table4`); the worst-case column only where measured."""
    df = _cells(t4)
    cols = ["defense", "architecture", "clean", "PGD", "FGSM"]
    if t4["adaptive worst case"].notna().any():
        cols.append("adaptive worst case")
    return report.show(df, columns=cols,
                       rename={"clean": "clean (%)", "PGD": "PGD (%)", "FGSM": "FGSM (%)",
                               "adaptive worst case": "worst case (%)"}, wrap=18)


def show_gains(gains: pd.DataFrame):
    df = _cells(gains.drop(columns=["drop (points)"])).assign(drop=gains["drop (points)"].map("{:.1f}".format))
    return report.show(df, rename={"paper's attack": "paper's attack (%)", "adaptive worst case": "worst case (%)",
                                   "drop": "drop (points)"}, wrap=24)


def show_adaptive(summary: pd.DataFrame):
    """One row per model of :func:`.measure.adaptive_table`: clean, the paper's attack, the worst case."""
    return report.cascade_summary(summary, "model")


def show_cw(cw: pd.DataFrame):
    return report.show(cw, columns=["training", "model", "gradient", "n", "success rate (%)", "mean L2", "median L2"],
                       wrap=22)


def show_zoo(z: pd.DataFrame):
    return report.show(z, wrap=22)


def show_transfer(tr: pd.DataFrame):
    """Table 6's layout: per source and model, clean accuracy and accuracy under the transferred PGD."""
    rows = []
    for (src, model), d in tr.groupby(["source", "model"], sort=False):
        get = lambda s: d[d.setting == s].iloc[0]  # noqa: E731
        rows.append({"source": src, "model": "the substitute itself" if model == src else model,
                     "clean (%)": report.cell(*get("clean")[["accuracy", "ci_low", "ci_high"]]),
                     "attacked (%)": report.cell(*get("attacked")[["accuracy", "ci_low", "ci_high"]])})
    return report.show(pd.DataFrame(rows), wrap=26)


def budget(cfg) -> pd.DataFrame:
    """The training and evaluation settings: the paper's (or "not stated") against this run's."""
    n_adv = "all 60,000" if cfg.adv_train_subset is None else f"{cfg.adv_train_subset:,}"
    rows = [
        ("clean warm-up", "\"some initial epoch\"", f"{cfg.warmup_epochs} epochs"),
        ("PGD adversarial training", "not stated (Madry et al.: 100,000 iterations)",
         f"{cfg.adv_epochs} epoch of {n_adv} images"),
        ("PGD steps in training", "not stated (Madry et al.: 40 of 0.01)",
         f"{cfg.adv_steps} of 2.5 eps / {cfg.adv_steps}, eps = {cfg.adv_eps:g}"),
        ("clean and adversarial images", "adversarial examples \"mixed\" into training",
         f"{1 - cfg.adv_weight:g} clean + {cfg.adv_weight:g} PGD"),
        ("optimizer", "not stated", f"Adam, lr {cfg.lr:g}, batch {cfg.batch_size}"),
        ("runs per model", "5 (mean reported)",
         f"{len(cfg.seeds)}; the headline pair {len(cfg.headline_seeds)}"),
        ("test images", "not stated", f"{cfg.eval_images} (table 1), {cfg.adaptive_images} (adaptive)"),
    ]
    return pd.DataFrame(rows, columns=["setting", "paper", "this run"])


def budget_line(cfg) -> str:
    """The training budget in one line, for the prose next to the numbers."""
    n_adv = "60,000" if cfg.adv_train_subset is None else f"{cfg.adv_train_subset:,}"
    return (f"{cfg.warmup_epochs} clean epochs, then {cfg.adv_epochs} epoch of PGD-{cfg.adv_steps} training on "
            f"{n_adv} images; the paper's is not stated, Madry et al. train for 100,000 iterations of PGD-40")


def show_ours(ours: pd.DataFrame):
    """Table 1's measurements without paper columns (another dataset than the paper's)."""
    cols = ["model", "clean: ours", "PGD: ours, autograd", "PGD: ours, straight-through", "FGSM: ours, autograd",
            "FGSM: ours, straight-through"]
    return report.show(_cells(ours), columns=cols, wrap=20,
                       rename={c: c.replace("ours, ", "").replace(": ours", "") + " (%)" for c in cols[1:]})

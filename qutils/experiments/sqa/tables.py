"""The SQA chapter's tables, formatted for the page (both datasets' notebooks show them the same way)."""
from __future__ import annotations

import pandas as pd

from ... import report

__all__ = ["show_table1", "show_runs", "show_overfitting", "show_timing", "show_gains", "show_adaptive",
           "show_surviving", "budget", "budget_line"]


def show_table1(paper_vs_ours: pd.DataFrame):
    """Table 1 next to ours (:func:`.paper.paper_table1`): accuracy (%) as mean ± std over runs."""
    return report.show(paper_vs_ours, wrap=14)


def show_runs(summary: pd.DataFrame, names=None):
    """Our first run of each model with its 95% interval: one row per measurement, one column per model."""
    df = summary if names is None else summary[summary.model.isin(names)]
    wide = df.pivot(index="measurement", columns="model", values="first run")
    wide = wide[list(dict.fromkeys(df.model))].loc[list(dict.fromkeys(df.measurement))].reset_index()
    return report.show(report.cells(wide), wrap=14)


def show_overfitting(t: pd.DataFrame):
    wide = t.assign(acc=[a for a in _accs(t)]).pivot(index="model", columns="measurement", values="acc")
    wide = wide[list(dict.fromkeys(t.measurement))].loc[list(dict.fromkeys(t.model))].reset_index()
    return report.show(report.cells(wide), wrap=16)


def _accs(t: pd.DataFrame):
    from ...evaluate import accuracy_of

    return [accuracy_of(r) for _, r in t.iterrows()]


def show_timing(df: pd.DataFrame):
    out = pd.DataFrame({"method": df.method,
                        "ours: s / iteration": df["seconds per iteration"].map("{:.3f}".format),
                        "ours: / FGSM": df["ratio to FGSM"].map("{:.1f}".format),
                        "forward passes": df["forward passes per iteration"].map("{:.0f}".format),
                        "paper: s / iteration": df["paper (s)"].map(lambda v: report.EMPTY if pd.isna(v) else f"{v:.2f}"),
                        "paper: / FGSM": df["paper ratio to FGSM"].map(
                            lambda v: report.EMPTY if pd.isna(v) else f"{v:.1f}")})
    return report.show(out, wrap=16)


def show_gains(gains: pd.DataFrame):
    return report.gains(gains)


def show_adaptive(summary: pd.DataFrame):
    """One row per model of :func:`.measure.adaptive_table`: clean, the paper's attack, the worst case."""
    return report.cascade_summary(summary, "model")


def show_surviving(df: pd.DataFrame):
    return report.show(df, wrap=30)


def budget(cfg) -> pd.DataFrame:
    """The training settings, the paper's against the book's, for the page."""
    rows = [("architecture", "SMALL (16, 32, 64), LARGE (64, 128, 256); 2 FC layers",
             "the same; 3x3 convolutions, 2x2 max pooling, FC 256 (not stated)"),
            ("SQA", "after convolutions 1 and 2, lambda 1 and 2", "the same; min and max per image (scope: not stated)"),
            ("optimizer", "SGD, lr 0.1, momentum 0.9, weight decay 5e-4", "the same"),
            ("epochs", "100, lr x 0.1 every 30", f"{cfg.epochs}, lr x 0.1 every {cfg.step_size}"),
            ("images per epoch", "60,000", f"{cfg.train_subset or 60000:,}"),
            ("FGSM training", "radius and mix not stated",
             f"eps {cfg.train_eps:g}, half clean, half FGSM (Goodfellow et al.)"),
            ("PGD training", "not in the paper's MNIST tables",
             f"Madry et al.: {cfg.pgd_train_steps} steps of 2.5 eps / {cfg.pgd_train_steps} (Madry: 40)"),
            ("training runs", "mean ± std (number not stated)",
             f"{len(cfg.sqa_seeds)} for the SQA models, {len(cfg.seeds)} for the others")]
    return pd.DataFrame(rows, columns=["setting", "paper (section 4.1)", "this page (book profile)"])


def budget_line(cfg) -> str:
    return (f"{cfg.epochs} epochs of {cfg.train_subset or 60000:,} images (the paper: 100 of 60,000), "
            f"{len(cfg.sqa_seeds)} runs of each SQA model")

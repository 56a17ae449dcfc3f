"""The Q-Layer chapter's tables, formatted for the page (every notebook shows them the same way)."""
from __future__ import annotations

import pandas as pd

from ... import report

__all__ = ["show_adaptive", "show_stages", "show_comparisons", "show_usage", "show_shift", "show_gradients",
           "show_spread", "show_runs", "show_shortcut", "show_summary_of_cells"]


def show_adaptive(summary: pd.DataFrame):
    """One row per model: clean, the paper's attack, the adaptive worst case and the decisive stage."""
    return report.show(summary, intervals={"clean (%)": ("clean", "clean_lo", "clean_hi"),
                                           "paper's attack (%)": ("paper", "paper_lo", "paper_hi"),
                                           "worst case (%)": ("worst", "worst_lo", "worst_hi")},
                       columns=["model", "clean (%)", "paper's attack (%)", "worst case (%)", "decisive"],
                       rename={"decisive": "attack that broke the most"}, wrap=26)


def show_stages(stages: pd.DataFrame, models):
    """Accuracy (%) after each stage of the cascade, one column per model (the cascade is cumulative:
    each column falls monotonically)."""
    rows = {}
    for m in models:
        d = stages[stages.model == m]
        for _, r in d.iterrows():
            rows.setdefault(r["stage"], {"stage": r["stage"]})[m] = report.cell(r["accuracy"], r["ci_low"], r["ci_high"])
    return report.show(pd.DataFrame(list(rows.values())), wrap=22)


def show_comparisons(df: pd.DataFrame, prefix: str | None = None):
    """The paper's comparisons with our two accuracies, the verdict and whether it supports the paper.
    With ``prefix`` (the page's glue prefix) it also glues what the prose quotes: how many comparisons
    support the paper (``{prefix}-supported``) and how many there are (``{prefix}-n-comparisons``)."""
    report.glue_prefixed(prefix, {"supported": int((df.supported == "yes").sum()), "n-comparisons": len(df)})
    return report.show(df.assign(A=df.A.map(report.acc), B=df.B.map(report.acc)),
                       rename={"A": "A: ours (%)", "B": "B: ours (%)"}, wrap=30)


def show_usage(df: pd.DataFrame):
    return report.show(df, wrap=18)


def show_shift(df: pd.DataFrame):
    return report.show(df, eps=("FGSM eps",), wrap=18)


def show_gradients(df: pd.DataFrame):
    """Gradient L1 norm per image and cosine with the straight-through gradient, one row per (model, view)."""
    return report.show(df.assign(**{"gradient L1 norm": df["gradient L1 norm"].map(lambda v: f"{v:.3g}"),
                                    "cosine with straight-through": df["cosine with straight-through"].map("{:.2f}".format)}),
                       wrap=24)


def show_runs(runs: pd.DataFrame):
    """Every training run's Q-path accuracy on table 1's examples, one column per attack."""
    cells = runs.assign(attack_eps=runs.attack + " " + runs.eps.map("{:g}".format),
                        cell=[report.cell(a, b, c) for a, b, c in zip(runs.accuracy, runs.ci_low, runs.ci_high)])
    wide = cells.pivot(index="model", columns="attack_eps", values="cell").reset_index()
    wide.columns.name = None
    return report.show(wide, wrap=18)


def show_spread(df: pd.DataFrame):
    return report.show(df, wrap=18)


def show_shortcut(df: pd.DataFrame):
    """Per (model, attack, radius): shortcut and E-path Q-path accuracy and the verdict."""
    return report.show(df.assign(shortcut=df.shortcut.map(report.acc), **{"E-path": df["E-path"].map(report.acc)}),
                       rename={"shortcut": "shortcut (%)", "E-path": "E-path (%)"}, wrap=20)


def show_summary_of_cells(long: pd.DataFrame):
    """Per paper table: how many of its cells fall inside our 95% interval, and the median distance."""
    g = long.assign(d=(long.ours - long.paper).abs()).groupby("table", sort=False)
    out = pd.DataFrame({"table": list(g.groups), "cells": g.size().values,
                        "paper's value inside our 95% CI": g["paper inside our CI"].sum().values,
                        "median |ours − paper| (points)": g.d.median().values})
    return report.show(out, wrap=20)

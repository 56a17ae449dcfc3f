"""The GCLN chapter's tables, formatted for the page (both datasets' notebooks show them the same way)."""
from __future__ import annotations

import functools

import pandas as pd

from ... import report
from ...evaluate import accuracy_of

__all__ = ["wide", "show_wide", "show_access", "show_gains", "show_adaptive", "show_surviving", "show_detector",
           "budget", "show_ports"]


def wide(df: pd.DataFrame, index: str = "model", columns: str = "column") -> pd.DataFrame:
    """Accuracies (one row per measurement) as one row per ``index`` and one column per ``columns``,
    each cell ``"v [lo, hi]"`` in percent, in the order the rows came."""
    cells = df.assign(cell=[report.acc(accuracy_of(r)) for _, r in df.iterrows()])
    w = cells.pivot(index=index, columns=columns, values="cell")
    return w[list(dict.fromkeys(df[columns]))].loc[list(dict.fromkeys(df[index]))].reset_index()


def show_wide(df: pd.DataFrame, index: str = "model", columns: str = "column", wrap: int = 16):
    return report.show(wide(df, index, columns), wrap=wrap)


def show_access(df: pd.DataFrame):
    return show_wide(df, "access", "model", wrap=22)


#: the adaptive page's tables, drawn as every chapter draws them
show_gains = report.gains
show_adaptive = functools.partial(report.cascade_summary, label="model")
show_surviving = functools.partial(report.show, wrap=30)


def show_detector(df: pd.DataFrame):
    return report.show(df, percent=("P(clean) mean", "judged clean"), rename={"P(clean) mean": "mean P(clean) (%)",
                                                                              "judged clean": "judged clean (%)"})


def show_ports(ports: pd.DataFrame):
    cols = ["table", "column", "role", "ours", "adaptive"]
    return report.show(ports[cols], rename={"role": "paper's row", "ours": "ours, paper's protocol (%)",
                                            "adaptive": "ours, adaptive (%)"}, wrap=20)


def budget(cfg) -> pd.DataFrame:
    """The settings, the paper's against the book's, for the page."""
    rows = [("data", "CIFAR-10 (ResNets), SVHN (ResNet-18)", f"{cfg.dataset}: CNN_A, chapter 1's classifier"),
            ("radius, attack steps", "8/255 (SVHN 12/255); 10 steps of 1/255 (SVHN 3/255)",
             f"{cfg.eps:g}; {cfg.attack_steps} steps of eps/8 = {cfg.stepsize:.4g}"),
            ("quantization step Qs", "5 and 10 (0-255 scale); block size not stated",
             "Qs/eps = 5/8 and 10/8 as the paper's: " + ", ".join(f"{255 * q:.0f}" for q in cfg.qs)
             + f"; {cfg.block} x {cfg.block} blocks"),
            ("G, D", "not stated", f"encoder-decoder ({cfg.width}-{2 * cfg.width} channels), 2-layer CNN"),
            ("perceptual features", "pretrained VGG-19", f"a separately trained {cfg.feature_net.upper()}, not the target"),
            ("G and D training", "not stated (lambda 0.5)",
             f"{cfg.g_epochs} epochs of {cfg.g_images:,} images attacked on the target (half PGD, half FGSM), "
             f"Adam {cfg.g_lr:g}; lambda {cfg.lam:g}"),
            ("PGD-trained baseline", "quoted from Madry et al. and Tramer et al.",
             f"CNN_A, {cfg.pgd_train_steps}-step PGD at {cfg.eps:g}, {cfg.pgd_train_epochs} epochs of "
             f"{cfg.pgd_train_subset or 60000:,} images"),
            ("test images", "the test set", f"{cfg.eval_images} (tables), {cfg.curve_images} (figures), "
                                           f"{cfg.adaptive_images} (cascade)")]
    return pd.DataFrame(rows, columns=["setting", "paper", "this page (book profile)"])

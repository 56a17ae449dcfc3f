"""The GCLN chapter's figures (matplotlib, in the book's style)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...plot import accuracy_vs_eps

__all__ = ["summary_bars", "dct_basis", "transform_demo", "frequency_energy", "figure2", "figure3", "figure4", "history", "curve"]


def summary_bars(summary: pd.DataFrame):
    """Clean accuracy, the paper's attack and the adaptive worst case per model (a
    :func:`qutils.cascade.summary_table`), as grouped bars with their 95% intervals."""
    from ...plot import bars_with_intervals

    rows = []
    for r in summary.itertuples():
        for what, v, lo, hi in (("clean", r.clean, r.clean_lo, r.clean_hi),
                                ("paper's attack", r.paper, r.paper_lo, r.paper_hi),
                                ("adaptive worst case", r.worst, r.worst_lo, r.worst_hi)):
            rows.append({"model": r.model, "measurement": what, "accuracy": v, "ci_low": lo, "ci_high": hi})
    return bars_with_intervals(pd.DataFrame(rows), "model", "measurement")


def dct_basis(m: int = 8):
    """The ``m x m`` basis images of the 2-D DCT: frequency (u, v) at row u, column v."""
    from ...defenses.gcln import dct_matrix

    c = dct_matrix(m).numpy()
    fig, axes = plt.subplots(m, m, figsize=(3.6, 3.6))
    for u in range(m):
        for v in range(m):
            ax = axes[u, v]
            ax.imshow(np.outer(c[u], c[v]), cmap="gray", vmin=-2 / m, vmax=2 / m)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.subplots_adjust(wspace=0.08, hspace=0.08)
    return fig


def transform_demo(images: dict):
    """A row of images (``{title: 2-D array}``) with a shared grey scale."""
    fig, axes = plt.subplots(1, len(images), figsize=(min(7.5, 1.5 * len(images)), 1.9))
    for ax, (title, img) in zip(np.atleast_1d(axes), images.items()):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def frequency_energy(df: pd.DataFrame):
    """The perturbation's energy per DCT frequency before and after the rounding and the cleaner
    (heatmaps, log scale, one colour scale), and the share of each signal's energy by zig-zag band."""
    signals = ["perturbation", "after the rounding", "after the cleaner"]
    m = int(df.u.max()) + 1
    mats = {s: df[df.signal == s].pivot(index="u", columns="v", values="energy").to_numpy() for s in signals + ["image"]}
    vmax = max(mats[s].max() for s in signals)
    fig = plt.figure(figsize=(7.5, 2.3))
    gs = fig.add_gridspec(1, 6, width_ratios=[1, 1, 1, 0.07, 0.5, 1.6], wspace=0.2)
    axes = [fig.add_subplot(gs[0, i]) for i in range(3)] + [fig.add_subplot(gs[0, 5])]
    for ax, s in zip(axes, signals):
        im = ax.imshow(np.log10(mats[s] + 1e-8), cmap="magma", vmin=np.log10(vmax) - 4, vmax=np.log10(vmax))
        ax.set_title(s, fontsize=8)
        ax.set_xlabel("v")
        ax.set_ylabel("u" if s == signals[0] else "")
        ax.set_xticks([0, m - 1])
        ax.set_yticks([0, m - 1])
    cb = fig.colorbar(im, cax=fig.add_subplot(gs[0, 3]))
    cb.ax.set_title("log10", fontsize=7)
    band = np.add.outer(np.arange(m), np.arange(m))
    ax = axes[3]
    for s in ["image"] + signals:
        e = np.array([mats[s][band == k].sum() for k in range(2 * m - 1)])
        ax.plot(np.arange(2 * m - 1), e / e.sum(), marker="o", ms=2, label=s)
    ax.set(xlabel="u + v (frequency band)", ylabel="share of energy")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.2, top=0.88)
    return fig


def figure2(maps: dict, classes=None, k: int = 0):
    """Figure 2's layout for image ``k``: rows original / attacked / cleaned; columns the image, the
    target's mean activation map, its signed Grad-CAM heatmap (red: evidence for the true class, blue:
    against; one symmetric scale per panel) and the heatmap over the image."""
    rows = ["original", "attacked", "cleaned"]
    fig, axes = plt.subplots(3, 4, figsize=(6.0, 4.6))
    name = (lambda c: classes[c]) if classes else str
    for i, r in enumerate(rows):
        d = maps[r]
        img, fmap, heat = d["image"][k], d["features"][k], d["heatmap"][k]
        axes[i, 0].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(f"{r}: predicted {name(d['pred'][k])}", fontsize=8)
        axes[i, 1].imshow(fmap, cmap="viridis")
        lim = max(abs(float(heat.min())), abs(float(heat.max())), 1e-12)
        axes[i, 2].imshow(heat, cmap="bwr", vmin=-lim, vmax=lim)
        axes[i, 3].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[i, 3].imshow(heat, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.5)
        for j, t in enumerate(["", "feature map", "Grad-CAM (signed)", "overlay"]):
            axes[i, j].axis("off")
            if t and i == 0:
                axes[i, j].set_title(t, fontsize=8)
    fig.tight_layout()
    return fig


def figure3(qs: pd.DataFrame, steps: pd.DataFrame):
    """Figure 3, ported: accuracy against Qs (clean, the paper's PGD, BPDA), and against BPDA iterations."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.5, 2.9))
    for what, d in qs.groupby("attack", sort=False):
        d = d.sort_values("Qs")
        line, = a.plot(d["Qs"], 100 * d["accuracy"], marker="o", ms=3, label=what)
        a.fill_between(d["Qs"], 100 * d["ci_low"], 100 * d["ci_high"], alpha=0.2, color=line.get_color())
    a.set(xlabel="Qs (0-255 scale)", ylabel=f"accuracy (%), {int(qs.n.iloc[0])} images", ylim=(-2, 102))
    a.legend(fontsize=7)
    for name, d in steps.groupby("model", sort=False):
        line, = b.plot(d["iterations"], 100 * d["accuracy"], marker="o", ms=3, label=name)
        b.fill_between(d["iterations"], 100 * d["ci_low"], 100 * d["ci_high"], alpha=0.2, color=line.get_color())
    b.set(xlabel="BPDA iterations", ylim=(-2, 102))
    b.legend(fontsize=7)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def figure4(steps: pd.DataFrame, eps: pd.DataFrame):
    """Figure 4, ported: the paper's PGD against its iterations, and against epsilon."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.5, 2.9))
    for name, d in steps.groupby("model", sort=False):
        line, = a.plot(d["iterations"], 100 * d["accuracy"], marker="o", ms=3, label=name)
        a.fill_between(d["iterations"], 100 * d["ci_low"], 100 * d["ci_high"], alpha=0.2, color=line.get_color())
    a.set(xlabel="PGD iterations", ylabel=f"accuracy (%), {int(steps.n.iloc[0])} images", ylim=(-2, 102))
    a.legend(fontsize=7)
    a.grid(alpha=0.3)
    accuracy_vs_eps(eps, ax=b, group="model")
    b.set_ylabel("")
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig


def history(histories: dict):
    """The min-max game per epoch: G's two losses and the detector's accuracy, one line per GCLN model."""
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.3))
    for name, h in histories.items():
        h = pd.DataFrame(h)
        for ax, col, lab in zip(axes, ["perceptual", "adversarial", "d_acc"],
                                ["perceptual loss (eq. 4)", "adversarial loss (eq. 5)", "detector accuracy"]):
            ax.plot(h["epoch"], h[col], marker="o", ms=3, label=name)
            ax.set(xlabel="epoch", title=lab)
    axes[2].axhline(0.5, color="grey", lw=0.8, ls="--")
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def curve(df: pd.DataFrame, names=None):
    """The adaptive accuracy-versus-epsilon curves: one panel per model, the paper's PGD and the worst case."""
    names = list(names or dict.fromkeys(df.model))
    cols = 2
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7.5, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        accuracy_vs_eps(df[df.model == name], ax=ax, title=name)
        ax.set_ylabel("accuracy (%)")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return fig

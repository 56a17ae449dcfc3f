"""The book's recurring figures, in one style: sized for the text column (at most 7.5 inches wide,
so nothing is shrunk on the page) with text legible at the rendered size."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["status_bars", "accuracy_vs_eps", "adversarial_grid", "bars_with_intervals", "tsne_panels", "binarization_bounds", "STYLE"]

#: matplotlib settings of every figure of the book
STYLE = {"figure.dpi": 110, "savefig.dpi": 110, "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8, "axes.spines.top": False,
         "axes.spines.right": False}
plt.rcParams.update(STYLE)


def bars_with_intervals(table, category: str, group: str, order=None, ylabel: str = "accuracy (%)", ax=None):
    """Grouped bars of ``accuracy`` (fractions) with their 95% intervals as error bars: one group per
    ``category`` value (in ``order``), one bar per ``group`` value. Returns the figure."""
    order = list(order) if order is not None else list(dict.fromkeys(table[category]))
    groups = list(dict.fromkeys(table[group]))
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 3.2))
    else:
        fig = ax.figure
    width = 0.8 / len(groups)
    for i, g in enumerate(groups):
        d = table[table[group] == g].set_index(category).reindex(order)
        acc, lo, hi = 100 * d["accuracy"], 100 * d["ci_low"], 100 * d["ci_high"]
        pos = np.arange(len(order)) + (i - (len(groups) - 1) / 2) * width
        has_ci = bool(((hi - lo).fillna(0) > 0).any())  # a reported number (no interval) gets no error bar
        ax.bar(pos, acc, width, label=str(g), yerr=[acc - lo, hi - acc] if has_ci else None, capsize=2,
               error_kw={"lw": 0.8})
    ax.set_xticks(np.arange(len(order)), order, rotation=30, ha="right")
    ax.set(ylabel=ylabel, ylim=(0, 105))
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def status_bars(counts, label: str = "paper"):
    """Stacked horizontal bars: claims per ``label`` value (rows of ``counts``, as
    :func:`qutils.ledger.counts` gives them) split by status, one colour per status."""
    from .claims import STATUSES

    colours = {"refuted by the adaptive attack": "#e76f51", "holds under the adaptive attack": "#264653",
               "reproduced": "#2a9d8f",
               "not reproduced": "#8d99ae", "not comparable (under-trained)": "#c9cfd8",
               "not runnable here (data)": "#d9d9d9", "not measured yet": "#f4d35e"}
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(counts) + 1.3))
    left = np.zeros(len(counts))
    names = list(counts[label])[::-1]
    for s in STATUSES:
        v = counts[s].to_numpy()[::-1].astype(float)
        ax.barh(names, v, left=left, color=colours[s], label=s)
        left += v
    ax.set_xlabel("claims")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(counts) < 4 else -0.18),
              frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def accuracy_vs_eps(table, ax=None, title: str | None = None, group: str = "attack", label_fmt: str = "{}"):
    """Accuracy (%) against epsilon, one line per ``group`` value, with the 95% CI as a band.

    ``table`` is a DataFrame from :func:`qutils.evaluate.attack_table` (or several concatenated).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for key, df in table.groupby(group, sort=False):
        df = df.sort_values("eps")
        line, = ax.plot(df["eps"], 100 * df["accuracy"], marker="o", ms=3, label=label_fmt.format(key))
        ax.fill_between(df["eps"], 100 * df["ci_low"], 100 * df["ci_high"], alpha=0.2, color=line.get_color())
    n = int(table["n"].iloc[0])
    ax.set_xlabel(f"$\\epsilon$ ({table['norm'].iloc[0]})")
    ax.set_ylabel(f"accuracy (%), {n} test images, 95% CI")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def adversarial_grid(rows: dict[str, torch.Tensor], preds: dict[str, torch.Tensor], labels: torch.Tensor,
                     class_names=None, n: int = 8, cmap: str = "gray"):
    """A grid: one row per entry of ``rows`` (e.g. clean, FGSM, PGD), ``n`` images per row,
    each titled with its prediction (red when wrong)."""
    names = list(rows)
    w = min(7.5, 0.95 * n + 0.6)  # the text column's width at most: labels stay legible on the page
    fig, axes = plt.subplots(len(names), n, figsize=(w, (w - 0.6) / n * 1.25 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c in range(n):
            ax = axes[r, c]
            img = rows[name][c].detach().cpu()
            if img.shape[0] == 1:
                ax.imshow(img[0].numpy(), cmap=cmap, vmin=0, vmax=1)
            else:
                ax.imshow(np.clip(img.permute(1, 2, 0).numpy(), 0, 1))
            p = int(preds[name][c])
            lab = class_names[p] if class_names is not None else str(p)
            ax.set_title(lab, fontsize=8, color="black" if p == int(labels[c]) else "red", pad=2)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def tsne_panels(emb):
    """A t-SNE of clean and attacked points (rows of ``emb``: model, input "clean" | "attacked", x, y,
    label, predicted), one column per model, clean (top) and attacked (bottom), coloured by the true
    class; each panel's title gives the accuracy on its points."""

    names = list(dict.fromkeys(emb.model))
    fig, axes = plt.subplots(2, len(names), figsize=(3.4 * len(names), 6.2))
    axes = np.array(axes).reshape(2, len(names))
    for j, name in enumerate(names):
        for i, what in enumerate(("clean", "attacked")):
            d = emb[(emb.model == name) & (emb.input == what)]
            ax = axes[i, j]
            sc = ax.scatter(d.x, d.y, c=d.label, cmap="tab10", s=5, vmin=-0.5, vmax=9.5)
            acc = 100 * float((d.label == d.predicted).mean())
            ax.set_title(f"{name}\n{what}: {acc:.0f}% correct", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(sc, ax=axes, ticks=range(10), shrink=0.6, label="true class")
    return fig


def binarization_bounds(table):
    """Robust accuracy of each binarizing model bounded from both sides, one panel per radius
    (:func:`qutils.certify.cascade_bounds`' table): a bar from the certified share (lower bound) to
    the share neither the attacks nor the search broke (upper bound), each end with its 95% interval,
    and a cross at the attacks' share alone (before the search) where the table has it."""
    radii = sorted(table.eps.unique())
    models = list(dict.fromkeys(table.model))
    fig, axes = plt.subplots(1, len(radii), figsize=(3.2 * len(radii) + 1.6, 0.5 * len(models) + 1.6), sharey=True,
                             squeeze=False)
    for ax, eps in zip(axes[0], radii):
        at = table[table.eps == eps].set_index("model")
        t = at.loc[[m for m in models if m in at.index]]
        pos = list(range(len(t)))[::-1]
        ax.barh(pos, 100 * (t.attacked - t.certified), left=100 * t.certified, color="#c6dbef", height=0.5,
                label="not decided")
        for end, colour, name in (("certified", "#08519c", "certified (lower bound)"),
                                  ("attacked", "#cb181d", "not broken (upper bound)")):
            ax.errorbar(100 * t[end], pos, xerr=[100 * (t[end] - t[end + "_lo"]), 100 * (t[end + "_hi"] - t[end])],
                        fmt="o", color=colour, capsize=3, label=name)
        if "survived" in t:
            ax.plot(100 * t.survived, pos, "x", color="#444444", label="the attacks alone")
        ax.set_yticks(pos, list(t.index))
        ax.set_xlim(0, 100)
        ax.set_xlabel("robust accuracy (%)")
        ax.set_title(f"L\u221e, \u03b5 = {eps:g}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=4 if "survived" in table else 3, frameon=False)
    fig.tight_layout(rect=(0, 0.1 if len(models) > 2 else 0.18, 1, 1))
    return fig

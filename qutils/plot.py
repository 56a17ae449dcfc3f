"""The book's recurring figures."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["accuracy_vs_eps", "adversarial_grid"]


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
    fig, axes = plt.subplots(len(names), n, figsize=(1.3 * n, 1.5 * len(names)), squeeze=False)
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
            ax.set_title(lab, fontsize=9, color="black" if p == int(labels[c]) else "red")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.tight_layout()
    return fig

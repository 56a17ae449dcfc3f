"""The SQA chapter's figures (both datasets' notebooks draw them the same way)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...plot import accuracy_vs_eps, tsne_panels

__all__ = ["algorithm", "distributions", "figure1", "timing", "tsne", "activation_maps", "convergence", "curves"]


def algorithm(steps: dict, channel: int | None = None):
    """Algorithm 1 on one feature map (:func:`.measure.algorithm_steps`): the ReLU output, the
    scaled map g, the Bernoulli probabilities, one stochastic draw, nearest rounding and the mean of
    200 draws, for ``channel`` (default: the channel whose ReLU output varies most)."""
    if channel is None:
        channel = int(steps["h"].flatten(1).std(1).argmax())
    panels = [("h: the ReLU output", steps["h"]), (f"g in [0, {steps['lam']}]", steps["g"]),
              ("P(round up) = g - floor(g)", steps["p"]), ("one draw of SQA", steps["draw"]),
              ("nearest rounding", steps["nearest"]), ("mean of 200 draws", steps["mean of draws"])]
    fig, axes = plt.subplots(2, 3, figsize=(7.2, 5.0))
    for ax, (title, t) in zip(axes.flat, panels):
        im = ax.imshow(t[channel].numpy(), cmap="viridis")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    fig.suptitle(f"channel {channel}", fontsize=9)
    fig.tight_layout()
    return fig


def distributions(values: dict):
    """The activations SQA receives and what it outputs: ``{layer label: (input, output)}`` (one row
    per image, :func:`.measure.activation_values`), each image's values divided by its maximum."""
    fig, axes = plt.subplots(1, len(values), figsize=(3.3 * len(values), 2.6))
    for ax, (label, (h, q)) in zip(np.atleast_1d(axes), values.items()):
        top = h.amax(1, keepdim=True).clamp_min(1e-12)
        bins = np.linspace(0, 1, 41)
        ax.hist((h / top).flatten().numpy(), bins=bins, alpha=0.6, label="ReLU output", density=True)
        ax.hist((q / top).flatten().numpy(), bins=bins, alpha=0.6, label="after SQA", density=True)
        ax.set_yscale("log")
        ax.set_xlabel("activation / its maximum")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figure1(df: pd.DataFrame):
    """Figure 1: FGSM accuracy against epsilon with deterministic quantization on one layer."""
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    accuracy_vs_eps(df, ax=ax, group="model")
    ax.legend(fontsize=8)
    ax.set_title("FGSM against deterministic quantization, by layer", fontsize=9)
    fig.tight_layout()
    return fig


def timing(df: pd.DataFrame):
    """Table 4 as bars: seconds per training iteration relative to FGSM training, ours and the paper's."""
    fig, ax = plt.subplots(figsize=(6.0, 2.8))
    pos = np.arange(len(df))
    ax.bar(pos - 0.2, df["ratio to FGSM"], 0.4, label="ours (measured here)")
    ax.bar(pos + 0.2, df["paper ratio to FGSM"].fillna(0), 0.4, label="paper (table 4, ResNet-34, GPU)")
    ax.set_xticks(pos, df.method, fontsize=8)
    ax.set_ylabel("time per iteration / FGSM's")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def tsne(emb: pd.DataFrame):
    """Figure 2: t-SNE of the penultimate layer, clean (top) against C&W (bottom), per model."""
    return tsne_panels(emb)


def activation_maps(maps: dict, side: int | None = None):
    """Figure 3: the mean penultimate activation per class (columns), clean and attacked (a pair of
    rows per model), each drawn as a square map; one colour scale per model. Labels at the book's
    text size: the class above each column, the model to the left of its pair of rows."""
    names = list(maps)
    k = next(iter(maps.values()))["clean"].shape
    side = side or int(np.ceil(np.sqrt(k[1])))
    cell = 0.62  # inches per map: ten columns and their labels fit the text column
    rows = 2 * len(names)
    fig, axes = plt.subplots(rows, k[0], figsize=(cell * k[0] + 1.3, cell * rows + 0.5), squeeze=False)
    for i, name in enumerate(names):
        top = max(maps[name]["clean"].max(), maps[name]["attacked"].max())
        for r, what in enumerate(("clean", "attacked")):
            for c in range(k[0]):
                v = np.zeros(side * side)
                v[:k[1]] = maps[name][what][c]
                ax = axes[2 * i + r, c]
                ax.imshow(v.reshape(side, side), cmap="viridis", vmin=0, vmax=top)
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(what, fontsize=8, rotation=0, ha="right", va="center")
                if i == 0 and r == 0:
                    ax.set_title(f"class {c}" if k[0] <= 6 else str(c), fontsize=9)
    w = cell * k[0] + 1.3
    fig.subplots_adjust(left=1.2 / w, right=0.99, bottom=0.02, top=1 - 0.4 / (cell * rows + 0.5),
                        wspace=0.06, hspace=0.08)
    for i, name in enumerate(names):  # the model's name beside its two rows
        a, b = axes[2 * i, 0].get_position(), axes[2 * i + 1, 0].get_position()
        fig.text(0.2 / w, (a.y1 + b.y0) / 2, name.replace(" ", "\n", 1), ha="center", va="center", rotation=90,
                 fontsize=9, fontweight="bold")
    return fig


def convergence(df: pd.DataFrame):
    """Accuracy under EOT-PGD against the number of EOT samples and against the steps, one draw and
    majority vote (:func:`.measure.convergence`)."""
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.8), sharey=True)
    for ax, axis in zip(axes, ("EOT samples", "steps")):
        for j, (what, d) in enumerate(df[df.axis == axis].groupby("evaluation", sort=False)):
            d = d.sort_values("value")
            ax.errorbar(d.value, 100 * d.accuracy, yerr=[100 * (d.accuracy - d.ci_low), 100 * (d.ci_high - d.accuracy)],
                        marker="o", ms=3, capsize=2, label=what, c=f"C{j}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(set(df[df.axis == axis].value)), [str(v) for v in sorted(set(df[df.axis == axis].value))])
        ax.set_xlabel(axis)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"accuracy (%), {int(df.n.iloc[0])} images, 95% CI")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def curves(df: pd.DataFrame, names=None):
    """Accuracy against epsilon, one panel per model (two per row): the paper's PGD and the
    adaptive worst case."""
    names = names or list(dict.fromkeys(df.model))
    cols = min(2, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), sharey=True, squeeze=False)
    for ax, name in zip(axes.flat, names):
        accuracy_vs_eps(df[df.model == name], ax=ax, title=name)
        if ax not in axes[:, 0]:
            ax.set_ylabel("")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig

"""The Q-Layer chapter's figures (every notebook of the chapter draws them the same way)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ...attacks import FGSM
from ...defenses.qlayer import QLayer
from ...plot import bars_with_intervals
from .config import SOURCE_A
from .analysis import concept_usage

__all__ = ["toy_quantizer", "feature_maps", "usage", "distribution_shift", "paper_ours_adaptive", "paper_vs_ours", "grid"]


def toy_quantizer(seed: int = 0):
    """Eqs. 2-3 in two dimensions: six concepts (crosses) and random panels coloured by the concept
    that replaces them; the coloured regions are the concepts' Voronoi cells."""
    g = torch.Generator().manual_seed(seed)
    toy = QLayer(channels=2, heads=1, concepts=6)
    with torch.no_grad():
        toy.concepts[0] = torch.tensor([[0., 0.], [1., 0.], [0., 1.], [1., 1.], [.5, .5], [1.5, .5]])
    panels = torch.rand(400, 2, generator=g) * 2 - 0.25
    out = toy(panels)
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.scatter(panels[:, 0], panels[:, 1], c=out.index[0], cmap="tab10", s=8)
    ax.scatter(*toy.concepts[0].detach().T, marker="x", c="k", s=80)
    ax.set(xlabel="feature 1", ylabel="feature 2")
    fig.tight_layout()
    return fig


def feature_maps(model, zoo, x: torch.Tensor, y: torch.Tensor, eps: float, k: int = 3):
    """For ``k`` test images: the image, the norm of each encoder panel, the concept chosen at each
    position, the same for an FGSM example crafted on the black-box source CNN_A, and the positions
    whose concept changed. Returns the figure and the share of changed positions."""
    xk, yk = x[:k], y[:k]
    xa = FGSM(eps)(zoo[SOURCE_A], xk, yk)
    dev = next(model.parameters()).device
    with torch.no_grad():
        ze = model.encoder(xk.to(dev)).cpu()
    _, idx = concept_usage(model, xk)
    _, idx_a = concept_usage(model, xa)
    side = ze.shape[-1]
    fig, axes = plt.subplots(k, 6, figsize=(7.5, 1.45 * k))
    titles = ["image", "panel norm", "concept", f"FGSM {eps:g}", "concept (adv.)", "changed"]
    for i in range(k):
        panels = [(xk[i, 0], "gray"), (ze[i].norm(dim=0), "viridis"), (idx[0, i].view(side, side), "nipy_spectral"),
                  (xa[i, 0], "gray"), (idx_a[0, i].view(side, side), "nipy_spectral"),
                  ((idx[0, i] != idx_a[0, i]).view(side, side), "Reds")]
        for j, (ax, (img, cmap)) in enumerate(zip(axes[i], panels)):
            kw = dict(vmin=0, vmax=model.qlayer.nc - 1) if j in (2, 4) else {}
            ax.imshow(img, cmap=cmap, **kw)
            ax.set_xticks([]); ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
    fig.tight_layout()
    return fig, float((idx != idx_a).float().mean())


def usage(counts: dict):
    """Share of panels per concept, concepts sorted by frequency, one line per head (log scale)."""
    fig, axes = plt.subplots(1, len(counts), figsize=(7.5, 2.8), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (name, c) in zip(axes, counts.items()):
        for h in range(c.shape[0]):
            share = c[h].sort(descending=True).values.float() / c[h].sum()
            ax.plot(range(1, len(share) + 1), 100 * share.numpy(), marker=".", ms=3, label=f"head {h + 1}")
        ax.set(xlabel="concept rank", yscale="log", title=name)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("share of panels (%)")
    fig.tight_layout()
    return fig


def distribution_shift(d: dict, name: str):
    """Figure 2's question as histograms: pixel intensities and chosen concepts (head 1, sorted by
    clean frequency), clean against FGSM."""
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8))
    centers = (np.arange(len(d["pixel_hist_clean"])) + 0.5) / len(d["pixel_hist_clean"])
    w = 0.5 / len(centers)
    axes[0].bar(centers - w / 2, d["pixel_hist_clean"], width=w, label="clean")
    axes[0].bar(centers + w / 2, d["pixel_hist_adv"], width=w, label=f"FGSM {d['eps']:g}")
    axes[0].set(yscale="log", title="pixel intensities", xlabel="intensity", ylabel="pixels")
    order = np.argsort(-d["concept_hist_clean"][0])
    i = np.arange(len(order))
    axes[1].bar(i - 0.2, d["concept_hist_clean"][0][order], width=0.4, label="clean")
    axes[1].bar(i + 0.2, d["concept_hist_adv"][0][order], width=0.4, label=f"FGSM {d['eps']:g}")
    axes[1].set(yscale="log", title=f"{name}: chosen concepts", xlabel="concept (by clean frequency)", ylabel="panels")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def paper_ours_adaptive(summary: pd.DataFrame, paper: dict, paper_label: str):
    """Per model: the paper's reported number (``paper``: {model: percent}), ours under the paper's attack
    and the adaptive worst case, both with 95% intervals (``summary``: :func:`.measure.adaptive_table`)."""
    order = list(summary.model)
    p = pd.DataFrame({"model": order, "setting": paper_label, "accuracy": [paper.get(m, np.nan) / 100 for m in order]})
    p["ci_low"] = p["ci_high"] = p["accuracy"]
    long = pd.concat([
        p,
        summary.assign(setting="ours, the paper's attack", accuracy=summary.paper, ci_low=summary.paper_lo,
                       ci_high=summary.paper_hi)[["model", "setting", "accuracy", "ci_low", "ci_high"]],
        summary.assign(setting="ours, adaptive worst case", accuracy=summary.worst, ci_low=summary.worst_lo,
                       ci_high=summary.worst_hi)[["model", "setting", "accuracy", "ci_low", "ci_high"]]])
    return bars_with_intervals(long, "model", "setting", order, ylabel="Q-path accuracy (%)")


def grid(table: pd.DataFrame, paper: dict):
    """Table 8: black-box FGSM accuracy against the number of heads, one line per nc; ours with 95%
    intervals (left), the paper's (right), on the same y-range."""
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8), sharey=True)
    for nc, g in table.groupby("nc"):
        axes[0].errorbar(g.K, 100 * g.accuracy, yerr=[100 * (g.accuracy - g.ci_low), 100 * (g.ci_high - g.accuracy)],
                         marker="o", capsize=3, label=f"nc={nc}")
        axes[1].plot(g.K, [paper["rows"][f"K={k}"].get(f"nc={nc}", np.nan) for k in g.K], marker="s", label=f"nc={nc}")
    for ax, t in zip(axes, ["ours (95% CI)", "paper, table 8a"]):
        ax.set(xlabel="heads K", title=t, ylim=(0, 100), xticks=sorted(table.K.unique()))
        ax.legend(fontsize=8)
    axes[0].set_ylabel("accuracy (%)")
    fig.tight_layout()
    return fig


def paper_vs_ours(long: pd.DataFrame, table: str, columns, order):
    """One panel per column of the paper's ``table`` (e.g. ``["FGSM 0.2", "BIM 0.2"]``): the paper's
    number and ours with its 95% interval, per model (``long``: :func:`.paper.paper_cells`)."""
    d = long[long.table == table]
    fig, axes = plt.subplots(1, len(columns), figsize=(7.5, 3.0), sharey=True)
    for ax, col in zip(np.atleast_1d(axes), columns):
        g = d[d.column == col].set_index("model").reindex(order)
        parts = pd.DataFrame({"model": order, "setting": f"paper (table {table})", "accuracy": g.paper.values / 100})
        parts["ci_low"] = parts["ci_high"] = parts["accuracy"]
        ours = pd.DataFrame({"model": order, "setting": "ours (95% CI)", "accuracy": g.ours.values / 100,
                             "ci_low": g.ci_low.values / 100, "ci_high": g.ci_high.values / 100})
        bars_with_intervals(pd.concat([parts, ours]), "model", "setting", order, ax=ax)
        ax.set_title(col, fontsize=10)
        if ax is not np.atleast_1d(axes)[0]:
            ax.set_ylabel("")
            ax.get_legend().remove()
    fig.tight_layout()
    return fig

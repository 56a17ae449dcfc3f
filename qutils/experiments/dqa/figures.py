"""The DQA chapter's figures (both datasets' notebooks draw them the same way)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ...defenses.dqa import DQANet, FixedQuantizedActivation, quantizers
from ...plot import accuracy_vs_eps, tsne_panels
from .config import name_of
from .measure import activation_values

__all__ = ["activations", "feature_map", "distributions", "tsne", "curves", "seeds"]


def activations(models: dict, bits=(1, 2, 3)):
    """The activation functions: ReLU, tanh and the fixed quantizer for each bit width (with max|y| = 1),
    and the trained dynamic quantizers of the first layer (``models``: name -> DQANet)."""
    x = torch.linspace(-3, 3, 1201).view(1, -1)
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 2.9), sharey=True)
    ax = axes[0]
    ax.plot(x[0], torch.relu(x[0]).clamp(max=1.2), c="0.6", ls=":", label="ReLU (clipped)")
    ax.plot(x[0], torch.tanh(x[0]), c="0.3", ls="--", label="tanh")
    for b in bits:
        q = FixedQuantizedActivation(b, backward="auto")
        xx = torch.cat([x, torch.full((1, 1), 50.0)], 1)  # one saturated unit: max|y| = 1
        ax.step(x[0], q(xx)[0, :-1], where="mid", label=f"fixed {b}-bit")
    ax.set(title="fixed (eqs. 1-3)", xlabel="pre-activation x", ylabel="output")
    ax.legend(fontsize=7, loc="upper left")
    ax = axes[1]
    ax.plot(x[0], torch.tanh(x[0]), c="0.3", ls="--", label="tanh")
    for b in bits:
        m = models.get(name_of("dynamic", b))
        if m is None:
            continue
        q = quantizers(m.deployed())[0]
        with torch.no_grad():
            ax.step(x[0], q(x)[0], where="mid", label=f"dynamic {b}-bit, trained (layer 1)")
    ax.set(title="dynamic (eqs. 8-9), as trained", xlabel="pre-activation x")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def feature_map(models: dict, x: torch.Tensor, channel: int = 0):
    """One test image through the first convolution of each model in ``models``: the image, the
    pre-activation map of one channel and what the model's activation makes of it."""
    k = len(models)
    fig, axes = plt.subplots(2, k + 1, figsize=(1.6 * (k + 1), 3.4))
    axes[0, 0].imshow(x[0, 0], cmap="gray")
    axes[0, 0].set_title("image", fontsize=8)
    axes[1, 0].axis("off")
    for j, (name, m) in enumerate(models.items(), start=1):
        net = m.deployed().net if isinstance(m, DQANet) else m
        conv, act = net.features[0], net.features[1]
        with torch.no_grad():
            pre = conv(x[:1])
            post = act(pre)
        axes[0, j].imshow(pre[0, channel], cmap="RdBu_r")
        axes[0, j].set_title(f"{name}\npre-activation", fontsize=7)
        axes[1, j].imshow(post[0, channel], cmap="RdBu_r", vmin=-1 if isinstance(m, DQANet) else None)
        axes[1, j].set_title(f"{len(post[0, channel].unique())} distinct values", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def distributions(models: dict, x: torch.Tensor, bits=(1, 2)):
    """Figure 2: the distribution of the first activation layer's outputs on test images, fixed
    against dynamic, for each bit width (bars at the output levels, heights the share of outputs)."""
    fig, axes = plt.subplots(1, 2 * len(bits), figsize=(2.0 * 2 * len(bits), 2.4), sharey=True)
    panels = [(k, b) for b in bits for k in ("fixed", "dynamic")]
    for ax, (kind, b), letter in zip(axes, panels, "abcdefgh"):
        v = activation_values(models[name_of(kind, b)], x).numpy()
        levels, counts = np.unique(np.round(v, 4), return_counts=True)
        ax.bar(levels, 100 * counts / counts.sum(), width=0.08, color="C0" if kind == "fixed" else "C1")
        ax.set(xlim=(-1.15, 1.15), title=f"({letter}) {b}-bit {kind}", xlabel="output level")
        ax.title.set_fontsize(9)
    axes[0].set_ylabel("share of outputs (%)")
    fig.tight_layout()
    return fig


def tsne(emb: pd.DataFrame):
    """Figure 3: the t-SNE of the last layer's input (:func:`qutils.plot.tsne_panels`)."""
    return tsne_panels(emb)


def curves(df: pd.DataFrame, names=None):
    """Accuracy against epsilon, one panel per model (:func:`.measure.adaptive_curves`)."""
    names = names or list(dict.fromkeys(df.model))
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 2.9), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), names):
        accuracy_vs_eps(df[df.model == name], ax=ax, title=name)
        if ax is not np.atleast_1d(axes)[0]:
            ax.set_ylabel("")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def seeds(seed_df: pd.DataFrame):
    """Every training run of the headline pair: clean and PGD accuracy with both gradients, one dot
    per seed with its 95% interval."""
    what = [("none", "-", "clean"), ("PGD", "autograd", "PGD, autograd"),
            ("PGD", "straight-through", "PGD, straight-through")]
    names = list(dict.fromkeys(seed_df.model))
    fig, ax = plt.subplots(figsize=(6.2, 2.8))
    for k, name in enumerate(names):
        for j, (atk, g, label) in enumerate(what):
            d = seed_df[(seed_df.model == name) & (seed_df.attack == atk) & (seed_df.gradient == g)]
            pos = j * (len(names) + 1) + k + np.linspace(-0.15, 0.15, len(d))
            ax.errorbar(pos, 100 * d.accuracy, yerr=[100 * (d.accuracy - d.ci_low), 100 * (d.ci_high - d.accuracy)],
                        fmt="o", c=f"C{k}", ms=4, capsize=2, label=name if j == 0 else None)
    ax.set_xticks([j * (len(names) + 1) + (len(names) - 1) / 2 for j in range(len(what))], [w[2] for w in what])
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

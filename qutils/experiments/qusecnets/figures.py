"""The QuSecNets chapter's figures: each function draws one figure from measured data and returns it
(the notebooks show it with a numbered caption)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import torch

from ... import data as qdata
from ...defenses import QuantizationLayer
from ...evaluate import predict
from ...plot import accuracy_vs_eps, adversarial_grid, bars_with_intervals
from .config import NO_DEFENSE, QuSecNetsConfig

__all__ = ["layer", "layer_gradient", "vq_thresholds", "examples", "fgsm_curves", "fgsm_bars", "adversarial_training",
           "paper_vs_adaptive", "adaptive_curves"]


def layer(levels=(2, 3, 4), steepness=(5, 20, 50)):
    """Equation (1), repaired: the soft staircase for several z and its hard limit, one panel per n."""
    xs = torch.linspace(0, 1, 501).view(-1, 1, 1, 1)
    fig, axes = plt.subplots(1, len(levels), figsize=(7.5, 2.6), sharey=True)
    for ax, n in zip(axes, levels):
        for z in steepness:
            ax.plot(xs.flatten(), QuantizationLayer(n, z)(xs).flatten(), label=f"soft, z = {z}")
        ax.plot(xs.flatten(), QuantizationLayer(n, 50, mode="hard")(xs).flatten(), "k--", lw=1, label="hard")
        ax.set(title=f"n = {n}", xlabel="input pixel x")
    axes[0].set_ylabel("quantized y")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def layer_gradient(steepness=(5, 20, 50)):
    """The derivative of the two-level soft layer an attacker gets (log scale; exact zeros leave the plot)."""
    xs = torch.linspace(0, 1, 501).view(-1, 1, 1, 1).requires_grad_(True)
    fig, ax = plt.subplots(figsize=(5.5, 2.8))
    for z in steepness:
        (g,) = torch.autograd.grad(QuantizationLayer(2, z)(xs).sum(), xs)
        ax.semilogy(xs.detach().flatten(), g.flatten().clamp_min(1e-30), label=f"soft, z = {z}")
    ax.set(xlabel="input pixel x", ylabel="dy/dx (log scale)", ylim=(1e-12, 30))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def vq_thresholds(defs: dict):
    """VQ's learned per-pixel thresholds (maps) and their distribution against CQ's 0.5."""
    names = [k for k in defs if k.startswith("VQ")]
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(7.5, 2.4), gridspec_kw={"width_ratios": [1] * len(names) + [1.6]})
    for ax, name in zip(axes, names):
        t = defs[name].quantizer.thresholds.detach().cpu()[0, 0]
        im = ax.imshow(t, cmap="coolwarm", vmin=0, vmax=1)
        ax.set_title(name.replace("VQ ", "VQ\n"), fontsize=8)
        ax.axis("off")
        axes[-1].hist(t.flatten(), bins=40, histtype="step", label=name)
    axes[-1].axvline(0.5, color="k", ls="--", label="CQ (n = 2)")
    axes[-1].legend(fontsize=6)
    axes[-1].set(xlabel="threshold", ylabel="pixels")
    fig.colorbar(im, ax=list(axes[:-1]), shrink=0.8)
    return fig


def examples(defs: dict, x: torch.Tensor, y: torch.Tensor, cfg: QuSecNetsConfig, k: int = 8):
    """Clean images, CQ's quantization of them, FGSM on the undefended CNN (quantized and not), and
    FGSM crafted on each defended model through its soft layer (the paper's figures 1 and 8)."""
    from ...attacks import FGSM

    xk, yk = x[:k], y[:k]
    cq, plain = defs["CQ n=2"], defs[NO_DEFENSE]
    hard = cq.quantizer.view("hard")
    fg = FGSM(cfg.eps)
    adv = fg(plain, xk, yk)
    rows = {"clean": xk, "clean, CQ": hard(xk), "FGSM on CNN": adv, "... after CQ": hard(adv)}
    preds = {"clean": predict(plain, xk), "clean, CQ": predict(cq, xk), "FGSM on CNN": predict(plain, adv),
             "... after CQ": predict(cq, adv)}
    for name in ["CQ n=2", "VQ (eq. 2 cost)", "VQ + adv. training"]:
        a = fg(defs[name], xk, yk)
        short = "FGSM on " + name.replace(" (eq. 2 cost)", "").replace(" + adv. training", " + adv.")
        rows[short], preds[short] = a, predict(defs[name], a)
    return adversarial_grid(rows, preds, yk, class_names=qdata.DATASETS[cfg.dataset].classes, n=k)


def fgsm_curves(tabs: dict, defs: dict):
    """White-box FGSM accuracy against epsilon: CQ with n levels (figure 7, top) and the other
    defenses (figure 9's comparison, bottom)."""
    f = tabs["fgsm"]
    cq = [NO_DEFENSE] + [k for k in defs if k.startswith("CQ")]
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.4), sharex=True)
    accuracy_vs_eps(f[(f.setting == "white-box") & f.defense.isin(cq)], ax=axes[0], group="defense",
                    title="CQ with n levels")
    accuracy_vs_eps(f[(f.setting == "white-box") & ~f.defense.isin(cq[1:])], ax=axes[1], group="defense",
                    title="the other defenses")
    for ax in axes:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def fgsm_bars(head: pd.DataFrame, order):
    """FGSM at the headline radius, white-box against transferred, with 95% intervals (figure 9)."""
    return bars_with_intervals(head, "defense", "setting", order, ylabel="FGSM accuracy (%)")


def adversarial_training(zoo: dict):
    """Validation accuracy after each epoch of FGSM adversarial training, plain CNN against VQ (figure 5)."""
    fig, ax = plt.subplots(figsize=(5.5, 3))
    for name in ["No defense + adv. training", "VQ + adv. training"]:
        h = zoo[name].history_frame()
        line, = ax.plot(h.epoch, 100 * h.val_fgsm, marker="o", label=f"{name}: FGSM")
        ax.plot(h.epoch, 100 * h.val_clean, ls="--", marker=".", color=line.get_color(), label=f"{name}: clean")
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def paper_vs_adaptive(table: pd.DataFrame):
    """The paper's attack against the adaptive worst case, per defense, with 95% intervals."""
    table = table.rename(columns={"model": "defense"})
    long = pd.concat([
        table.assign(setting="the paper's attack (FGSM)", accuracy=table.paper, ci_low=table.paper_lo,
                     ci_high=table.paper_hi),
        table.assign(setting="adaptive worst case", accuracy=table.worst, ci_low=table.worst_lo,
                     ci_high=table.worst_hi)])
    return bars_with_intervals(long, "defense", "setting", list(table.defense), ylabel="accuracy (%)")


def adaptive_curves(curves: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    accuracy_vs_eps(curves, ax=ax)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

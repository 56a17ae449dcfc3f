"""What the Q-Layer chapter asks beyond one table cell: how much a cell owes to the training seed,
whether the shortcut path scores like the paper's e-path, and figure 2's question (which concepts
the Q-layer uses, and how an attack shifts them)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from ...attacks import FGSM
from ...defenses.qlayer import QLayerNet
from ...evaluate import compare_accuracies, pick, robust_accuracy
from ...profiles import Profile
from .config import SOURCE_A, QLayerConfig
from .measure import black_box
from .zoo import Zoo, seed_runs

__all__ = ["seed_spread", "shortcut_vs_e", "kl_divergence", "concept_usage", "usage_table", "distribution_shift",
           "shift_table"]


# ---------------------------------------------------------------------------------------------
# how much does one training run decide?
# ---------------------------------------------------------------------------------------------
def seed_spread(zoo: Zoo, names, x: torch.Tensor, y: torch.Tensor, cfg: QLayerConfig, profile: Profile,
                crafted: dict | None = None, device=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every training run (seed) of each of ``names`` scored on the examples of table 1 (crafted on
    CNN_A, Q-path). Returns ``(runs, spread)``: one row per (run, attack), and one row per (method,
    attack) with the spread between runs, the widest 95% interval and whether the best and worst run
    differ significantly."""
    runs = {f"{name}, seed {s}": m for name in names
            for s, m in seed_runs(zoo, name, cfg, profile, device=device).items()}
    df = black_box(runs, {SOURCE_A: zoo[SOURCE_A]}, x, y, cfg, progress=False, crafted=crafted)
    df = df[(df.path == "Q-path") & (df.attack != "none")].reset_index(drop=True)
    rows = []
    for name in names:
        sub = df[df.model.str.startswith(name + ", seed")]
        for (atk, eps), g in sub.groupby(["attack", "eps"], sort=False):
            lo = pick(sub, model=g.loc[g.accuracy.idxmin(), "model"], attack=atk, eps=eps)
            hi = pick(sub, model=g.loc[g.accuracy.idxmax(), "model"], attack=atk, eps=eps)
            rows.append({"method": name, "attack": f"{atk} {eps:g}", "runs": len(g),
                         "spread between runs (points)": 100 * (hi.value - lo.value),
                         "widest 95% CI (points)": 100 * (g.ci_high - g.ci_low).max(),
                         "runs differ significantly": "yes" if compare_accuracies(hi, lo) == "higher" else "no"})
    return df, pd.DataFrame(rows)


def shortcut_vs_e(shortcut: pd.DataFrame, e_path: pd.DataFrame, cfg: QLayerConfig) -> pd.DataFrame:
    """Cell by cell (Q-Layer network, attack, radius): Q-path accuracy under the eq.-9 shortcut attack
    against under the E-path attack, and which left less (95% intervals)."""
    rows = []
    for name in shortcut.model.unique():
        for eps in cfg.epsilons:
            for atk in ("FGSM", "BIM", "CW-Linf"):
                a = pick(shortcut, model=name, path="Q-path", attack=atk, eps=eps)
                b = pick(e_path, model=name, path="Q-path", attack=atk, eps=eps)
                rows.append({"model": name, "attack": atk, "eps": eps, "shortcut": a, "E-path": b,
                             "shortcut against E-path": compare_accuracies(a, b)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# concepts, figure 2
# ---------------------------------------------------------------------------------------------
def kl_divergence(p: np.ndarray, q: np.ndarray, smoothing: float = 1.0) -> float:
    """KL(p || q) in nats between two histograms of counts, with ``smoothing`` added to every bin
    (Laplace) so that an empty bin does not make it infinite."""
    p, q = np.asarray(p, dtype=float) + smoothing, np.asarray(q, dtype=float) + smoothing
    if p.shape != q.shape:
        raise ValueError(f"histograms of different shapes: {p.shape} and {q.shape}")
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


@torch.no_grad()
def concept_usage(model: QLayerNet, x: torch.Tensor, batch_size: int = 500):
    """How often each concept of each head is chosen on ``x``: (K, nc) counts; and the indices
    (K, n, positions) of every panel's concept."""
    if not isinstance(model, QLayerNet):
        raise ValueError("concept_usage needs a Q-Layer network")
    dev = next(model.parameters()).device
    model.eval()
    idx = []
    for i in range(0, len(x), batch_size):
        out = model.qlayer(model.encoder(x[i:i + batch_size].to(dev)))
        idx.append(out.index.view(model.qlayer.heads, min(batch_size, len(x) - i), -1).cpu())
    index = torch.cat(idx, 1)
    counts = torch.stack([torch.bincount(index[k].flatten(), minlength=model.qlayer.nc)
                          for k in range(model.qlayer.heads)])
    return counts, index


def usage_table(models: dict, x: torch.Tensor) -> tuple[pd.DataFrame, dict]:
    """One row per (Q-Layer network, head): concepts used on ``x``, the top concept's share, how many
    concepts cover 90% of the panels and the panels per image. Also ``{name: (K, nc) counts}``."""
    rows, counts = [], {}
    for name, m in models.items():
        c, idx = concept_usage(m, x)
        counts[name] = c
        for h in range(c.shape[0]):
            share = c[h].sort(descending=True).values.float() / c[h].sum()
            rows.append({"model": name, "head": h + 1, "concepts used": f"{int((c[h] > 0).sum())} of {c.shape[1]}",
                         "top concept's share (%)": float(100 * share[0]),
                         "concepts covering 90% of panels": int((share.cumsum(0) < 0.9).sum()) + 1,
                         "panels per image": idx.shape[-1]})
    return pd.DataFrame(rows), counts


def distribution_shift(model: QLayerNet, source: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                       bins: int = 32) -> dict:
    """Figure 2's question -- does FGSM (crafted on ``source``, radius ``eps``) move the distribution
    of concepts less than the distribution of pixels? -- answered with histograms instead of a
    PixelCNN: the KL divergence (clean || adversarial) of the pixel-intensity histogram (``bins``
    bins on [0, 1]) and of the concept-usage histogram (nc bins per head, averaged over heads), and
    the share of pixels / panels whose value / concept the attack changed."""
    _, x_adv = robust_accuracy(source, FGSM(eps), x, y, return_adv=True)
    ph = np.histogram(x.numpy().ravel(), bins=bins, range=(0, 1))[0]
    pa = np.histogram(x_adv.numpy().ravel(), bins=bins, range=(0, 1))[0]
    ch, ci = concept_usage(model, x)
    ca, cia = concept_usage(model, x_adv)
    return {"eps": eps, "pixel_hist_clean": ph, "pixel_hist_adv": pa, "concept_hist_clean": ch.numpy(),
            "concept_hist_adv": ca.numpy(), "kl_pixels": kl_divergence(ph, pa),
            "kl_concepts": float(np.mean([kl_divergence(ch[k].numpy(), ca[k].numpy()) for k in range(len(ch))])),
            "pixels_changed": float((x_adv != x).float().mean()), "concepts_changed": float((ci != cia).float().mean())}


def shift_table(zoo: Zoo, names, x: torch.Tensor, y: torch.Tensor, cfg: QLayerConfig) -> tuple[pd.DataFrame, dict]:
    """:func:`distribution_shift` for each of ``names`` (FGSM at ``cfg.fig2_eps`` crafted on CNN_A, the
    first ``cfg.fig2_images`` images): one row per network, and the full results by name."""
    n = cfg.fig2_images
    shifts = {name: distribution_shift(zoo[name], zoo[SOURCE_A], x[:n], y[:n], cfg.fig2_eps) for name in names}
    rows = [{"model": name, "FGSM eps": d["eps"], "KL pixels": d["kl_pixels"], "KL concepts": d["kl_concepts"],
             "pixels changed (%)": 100 * d["pixels_changed"], "panels whose concept changed (%)": 100 * d["concepts_changed"]}
            for name, d in shifts.items()]
    return pd.DataFrame(rows), shifts

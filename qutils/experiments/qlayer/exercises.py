"""The reference answers of the Q-Layer chapter's exercises."""
from __future__ import annotations

import torch

from ...attacks import FGSM, Adaptive
from ...evaluate import accuracy, robust_accuracy
from .analysis import concept_usage
from .config import QLayerConfig
from .measure import _input_grad
from .zoo import Zoo

__all__ = ["exercise_reference"]


# ---------------------------------------------------------------------------------------------
# exercises
# ---------------------------------------------------------------------------------------------
def exercise_reference(which: str, zoo: Zoo, x: torch.Tensor, y: torch.Tensor, cfg: QLayerConfig):
    """The reference answers of the chapter's exercises (the self-checks compare with these and never
    print them)."""
    if which == "nearest-concept":
        index = concept_usage(zoo["Q-base"], x[:1])[1][0, 0]  # head 1, image 1: one concept per position
        side = int(len(index) ** 0.5)
        return index.view(side, side)[4, 5].item()
    if which == "margin-share":
        qb = zoo["Q-base"]
        dev = next(qb.parameters()).device
        with torch.no_grad():
            p = qb.qlayer.panels(qb.encoder(x[:500].to(dev)))
            d = torch.cdist(p, qb.qlayer.concepts[0]).topk(2, largest=False).values
        return float(((d[:, 1] - d[:, 0]) < 0.1 * d[:, 0]).float().mean())
    if which == "gradient-norms":
        qb = zoo["Q-base"]
        return tuple(float(_input_grad(m, x[:100], y[:100]).abs().sum()) / 100 for m in (qb.view("q"), qb.view("q", "identity")))
    if which == "bpda-fgsm":
        qb = zoo["Q-base"]
        return robust_accuracy(qb, Adaptive(FGSM(cfg.eps), qb.view("q", "identity")), x[:200], y[:200]).value
    if which == "two-paths":
        ql = zoo["Q-large"]
        return tuple(accuracy(ql.view(p), x[:1000], y[:1000]).value for p in ("q", "e"))
    if which == "panels":
        dev = next(zoo["Q-inner"].parameters()).device
        with torch.no_grad():
            return tuple(len(zoo[k].qlayer.panels(zoo[k].encoder(x[:1].to(dev)))) for k in ("Q-inner", "Q-large"))
    if which == "small-codebook":
        from .config import grid_names

        g = grid_names(cfg)
        return tuple(accuracy(zoo[g[(k, 16)]], x[:1000], y[:1000]).value for k in (min(cfg.grid_heads), max(cfg.grid_heads)))
    raise ValueError(f"no exercise {which!r}")

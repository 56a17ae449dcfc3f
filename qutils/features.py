"""Read-outs of a network's inner layers, shared by the chapters' figures: what a layer computes on
a batch (a forward hook), the input of the last fully connected layer (the "penultimate layer" of
the DQA and SQA papers' figures), and its 2-D t-SNE (scikit-learn; van der Maaten & Hinton 2008)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

__all__ = ["hooked", "penultimate", "tsne_2d"]


@torch.no_grad()
def hooked(model: nn.Module, module: nn.Module, x: torch.Tensor, grab) -> torch.Tensor:
    """``grab(inputs, output)`` of ``module`` when ``model`` runs on ``x`` (the first call only)."""
    out = {}

    def keep(mod, i, o):  # returns None: the module's output is left as it is
        out.setdefault("v", grab(i, o).detach())

    h = module.register_forward_hook(keep)
    try:
        model(x)
    finally:
        h.remove()
    if "v" not in out:
        raise ValueError(f"{type(module).__name__} is not called when the model runs")
    return out["v"]


def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of ``model``'s last fully connected layer, one row per image."""
    linears = [mod for mod in model.modules() if isinstance(mod, nn.Linear)]
    if not linears:
        raise ValueError("the model has no fully connected layer")
    return hooked(model, linears[-1], x, lambda i, o: i[0]).flatten(1)


def tsne_2d(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """A 2-D t-SNE embedding of ``features`` (rows), PCA-initialised and seeded."""
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, max(1.0, (len(features) - 1) / 3))
    return TSNE(2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(features)

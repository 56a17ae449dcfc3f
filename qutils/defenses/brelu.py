"""BReLU + GDA (Zantedeschi, Nicolae & Rawat 2017), a baseline of the QuSecNets paper.

* **Bounded ReLU**: ``min(max(0, x), t)`` replaces every ReLU, so no activation can grow without
  bound under a perturbation.
* **Gaussian data augmentation**: every training batch is doubled with a noisy copy,
  ``clip(x + N(0, sigma^2), 0, 1)``, which smooths the decision function around the data.

:func:`brelu_cnn` builds a registered architecture with BReLU activations;
:class:`GaussianAugmentation` is the training loss (``loss_fn`` of :func:`qutils.train.train`).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .protocol import Baseline

__all__ = ["BoundedReLU", "GaussianAugmentation", "brelu_cnn", "BReLUGDA"]


class BoundedReLU(nn.Module):
    def __init__(self, t: float = 1.0):
        super().__init__()
        t = float(t)
        if not math.isfinite(t) or t <= 0:
            raise ValueError(f"the bound t must be a positive finite number, got {t}")
        self.t = t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, self.t)

    def extra_repr(self) -> str:
        return f"t={self.t:g}"


class GaussianAugmentation:
    """Loss: cross-entropy on the clean batch and on a Gaussian-noise copy of it (equal weight)."""

    def __init__(self, sigma: float = 0.3):
        sigma = float(sigma)
        if not math.isfinite(sigma) or sigma < 0:
            raise ValueError(f"sigma must be a non-negative finite number, got {sigma}")
        self.sigma = sigma
        self.cache_key = f"gaussian_augmentation(sigma={sigma:g})"

    def noisy(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.sigma * torch.randn_like(x)).clamp(0.0, 1.0)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(torch.cat([x, self.noisy(x)])), torch.cat([y, y]))

    def __repr__(self) -> str:
        return f"GaussianAugmentation(sigma={self.sigma:g})"


def brelu_cnn(arch: str = "cleverhans_cnn", t: float = 1.0, **build_kwargs) -> nn.Module:
    """A registered architecture with every ReLU replaced by ``BoundedReLU(t)``."""
    from ..models import build

    BoundedReLU(t)  # validate t once, with a clear error
    return build(arch, activation=lambda: BoundedReLU(t), **build_kwargs)


class BReLUGDA(Baseline):
    """The defense protocol for a BReLU network trained with Gaussian augmentation: deployed as it
    is, attacked through its own gradient (every layer is differentiable almost everywhere)."""

    def __init__(self, model: nn.Module):
        super().__init__(model, reference="BReLU + GDA (Zantedeschi, Nicolae & Rawat 2017)")

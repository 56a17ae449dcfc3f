"""Training a Q-Layer network as the paper does: the loss of eq. 7 (:class:`QLayerLoss`), the
inactive-concept strategies of section 3.5 after every epoch (:class:`InactiveConceptUpdate`) and
FGSM adversarial training crafted on the E-path (:class:`EPath`). Each plugs into
:func:`qutils.train.train` and names itself in the checkpoint's cache key."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_int

__all__ = ["QLayerLoss", "InactiveConceptUpdate", "EPath"]


class QLayerLoss:
    """Eq. 7 as a ``loss_fn(model, x, y)`` for :func:`qutils.train.train` (appendix B's defaults)."""

    def __init__(self, c1: float = 1.0, c2: float = 1.0, alpha: float = 1e-3, beta: float = 1e-3):
        for name, v in (("c1", c1), ("c2", c2), ("alpha", alpha), ("beta", beta)):
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a non-negative number, got {v}")
        self.c1, self.c2, self.alpha, self.beta = float(c1), float(c2), float(alpha), float(beta)
        self.cache_key = f"qlayer_loss(c1={c1:g},c2={c2:g},alpha={alpha:g},beta={beta:g})"

    @staticmethod
    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Squared L2 distance per panel (over the channels), averaged over panels and batch."""
        return (a - b).pow(2).sum(1).mean()

    def terms(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
        o = model.forward_all(x)
        return {"L_Q": F.cross_entropy(o["yq"], y), "L_E": F.cross_entropy(o["ye"], y),
                "L_Q->E": self.distance(o["zq"], o["ze"].detach()),
                "L_E->Q": self.distance(o["zq"].detach(), o["ze"])}

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = self.terms(model, x, y)
        return self.c1 * t["L_Q"] + self.c2 * t["L_E"] + self.alpha * t["L_Q->E"] + self.beta * t["L_E->Q"]

    def __repr__(self) -> str:
        return f"QLayerLoss(c1={self.c1:g}, c2={self.c2:g}, alpha={self.alpha:g}, beta={self.beta:g})"


class InactiveConceptUpdate:
    """``on_epoch_end`` hook for :func:`qutils.train.train`: after every epoch, apply a section-3.5
    strategy to the concepts no panel chose during the epoch, using the encoder panels of
    ``images`` training images (a fixed, seeded sample). Strategy 1 (the paper's default): Adam at
    1e-3 on the distance to the closest panel (appendix B); strategy 2 (the paper's choice for
    Q-inner on MNIST): re-initialise as the closest panel."""

    def __init__(self, strategy: int = 1, steps: int = 10, lr: float = 1e-3, images: int = 1000, seed: int = 0):
        if strategy not in (1, 2):
            raise ValueError(f"strategy must be 1 (move) or 2 (re-initialise), got {strategy!r}")
        self.strategy, self.steps, self.lr = strategy, check_int(steps, "steps"), float(lr)
        self.images, self.seed = check_int(images, "images"), int(seed)
        self.cache_key = f"inactive_concepts(strategy={strategy},steps={steps},lr={lr:g},images={images})"

    def __call__(self, model: nn.Module, train_data, epoch: int) -> dict:
        gen = torch.Generator().manual_seed(self.seed + epoch)
        idx = torch.randperm(len(train_data), generator=gen)[:self.images]
        dev = next(model.parameters()).device
        was = model.training
        model.eval()
        with torch.no_grad():
            panels = model.qlayer.panels(model.encoder(train_data.x[idx].to(dev)))
        model.train(was)
        inactive = model.qlayer.update_inactive(panels, self.strategy, self.steps, self.lr)
        return {"inactive_concepts": inactive}


class EPath:
    """``craft_on`` for :func:`qutils.train.train`: FGSM adversarial training of a Q-Layer network
    crafts its examples on the E-path, the only path with an input gradient (on the Q-path FGSM
    would return the clean image and adversarial training would silently be clean training)."""

    cache_key = "qlayer E-path"

    def __call__(self, model: nn.Module) -> nn.Module:
        return model.view("e")

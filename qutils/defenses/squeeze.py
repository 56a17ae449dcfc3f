"""Feature squeezing baselines (Xu, Evans & Qi 2018): input transformations placed in front of
a classifier.

:class:`BitDepthReduction` rounds every pixel to ``2**bits`` levels:

    x_q = round(x * (2**bits - 1)) / (2**bits - 1)

``torch.round`` has a zero derivative almost everywhere, so a model behind this layer shows an
attacker an input gradient of exactly zero -- the gradient masking this book is about.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..attacks.base import check_inputs

__all__ = ["BitDepthReduction", "InputTransformModel"]


class BitDepthReduction(nn.Module):
    def __init__(self, bits: int):
        super().__init__()
        if int(bits) != bits or not 1 <= bits <= 16:
            raise ValueError(f"bits must be an integer in [1, 16], got {bits}")
        self.bits = int(bits)

    @property
    def levels(self) -> int:
        return 2 ** self.bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.levels - 1
        return torch.round(x * m) / m

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class InputTransformModel(nn.Module):
    """``model(transform(x))``: a classifier defended by an input transformation."""

    def __init__(self, transform: nn.Module, model: nn.Module, check: bool = True):
        super().__init__()
        self.transform = transform
        self.model = model
        self.check = check

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.check:
            check_inputs(x)
        return self.model(self.transform(x))

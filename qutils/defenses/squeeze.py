"""Feature squeezing baselines (Xu, Evans & Qi 2018): input transformations placed in front of
a classifier.

:class:`BitDepthReduction` rounds every pixel to ``2**bits`` levels:

    x_q = round(x * (2**bits - 1)) / (2**bits - 1)

``torch.round`` has a zero derivative almost everywhere, so a model behind this layer shows an
attacker an input gradient of exactly zero -- the gradient masking this book is about.

:class:`MedianSmoothing` replaces each pixel by the median of its ``size x size`` neighbourhood,
exactly as ``scipy.ndimage.median_filter(x, size=(1, 1, size, size), mode="reflect")`` does (the
squeezer of Xu et al.'s code): for an even window the upper of the two middle values, the window
reaching ``size // 2`` pixels up/left, edges mirrored. Its gradient flows to the selected pixel.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..attacks.base import check_inputs
from ..attacks.bpda import BPDA
from ..checks import check_int
from .protocol import AttackView, Defense

__all__ = ["BitDepthReduction", "MedianSmoothing", "InputTransformModel"]


class BitDepthReduction(nn.Module):
    #: each pixel's level depends on that pixel alone and never falls as it rises
    #: (what :class:`~qutils.attacks.ThresholdFlip` needs of a quantizer)
    pixelwise_monotone = True

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_int(bits, "bits", maximum=16)

    @property
    def levels(self) -> int:
        return 2 ** self.bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.levels - 1
        return torch.round(x * m) / m

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def _symmetric_index(n: int, before: int, after: int, device) -> torch.Tensor:
    """Indices of a length-``n`` axis padded symmetrically (scipy's 'reflect': d c b a | a b c d | d c b a)."""
    i = torch.arange(-before, n + after, device=device)
    i = torch.where(i < 0, -i - 1, i)
    return torch.where(i >= n, 2 * n - i - 1, i)


class MedianSmoothing(nn.Module):
    def __init__(self, size: int = 2):
        super().__init__()
        self.size = check_int(size, "size")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        s = self.size
        if s == 1:
            return x
        h, w = x.shape[-2:]
        before, after = s // 2, s - 1 - s // 2
        if max(before, after) > min(h, w):
            raise ValueError(f"window {s} is larger than the image {h}x{w}")
        xp = x[..., _symmetric_index(h, before, after, x.device), :][..., _symmetric_index(w, before, after, x.device)]
        win = xp.unfold(2, s, 1).unfold(3, s, 1).reshape(*x.shape, s * s)
        return win.sort(dim=-1).values[..., (s * s) // 2]

    def extra_repr(self) -> str:
        return f"size={self.size}"


class InputTransformModel(nn.Module, Defense):
    """``model(transform(x))``: a classifier defended by an input transformation.

    The defense protocol: deployed as it is; a rounding transform (:class:`BitDepthReduction`) is
    attacked with its straight-through estimator (BPDA), a differentiable one (median smoothing)
    through its own gradient.
    """

    reference = "feature squeezing (Xu, Evans & Qi 2018)"

    def __init__(self, transform: nn.Module, model: nn.Module, check: bool = True):
        super().__init__()
        self.transform = transform
        self.model = model
        self.check = check

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.check:
            check_inputs(x)
        return self.model(self.transform(x))

    def deployed(self) -> "InputTransformModel":
        return self

    def attack_views(self) -> dict[str, AttackView]:
        if isinstance(self.transform, BitDepthReduction):
            bpda = InputTransformModel(BPDA(self.transform), self.model, self.check).train(self.training)
            return {"straight-through": AttackView(bpda, "straight-through", "rounding forward, identity backward")}
        return {"autograd": AttackView(self, "autograd", f"the gradient through {type(self.transform).__name__}")}

    def classifier(self) -> nn.Module:
        return self.model

    def designed_attacks(self, eps: float, steps: int, seed: int = 0, flips: int | None = None,
                         flip_steps: int | None = None, **options) -> dict:
        """A quantizer that acts on each pixel alone and monotonically (bit-depth reduction, QuSecNets'
        layer) is attacked by :class:`~qutils.attacks.ThresholdFlip`: a search over the pixels whose
        level can change within ``eps`` (``flips`` pixels per step, ``flip_steps`` steps). Only when the
        chapter sets ``flips``; none for a differentiable transform (median smoothing)."""
        if flips is None or not flips or not getattr(self.transform, "pixelwise_monotone", False):
            return {}
        from ..attacks.threshold import ThresholdFlip

        return {"threshold flip (designed)": ThresholdFlip(eps, self, flip_steps or steps, flips)}

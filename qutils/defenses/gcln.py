"""GCLN ("Generative Cleaning Networks with Quantized Nonlinear Transform for Deep Neural Network
Defense", ICLR 2020 submission), section 3: a cleaner in front of an unchanged classifier.

**The quantized nonlinear transform** (section 3.2), :class:`QuantizedTransform`: the image is cut
into ``M x M`` blocks, each block goes through the 2-D DCT (equation 1), every coefficient is
rounded to a multiple of ``q`` (equation 2, ``RQ(X) = round(X / q) q``) and the block goes back
through the inverse DCT. We use the *orthonormal* DCT-II (``scipy.fft.dctn(..., norm="ortho")``,
JPEG's scaling for 8 x 8 blocks), so the inverse is the transpose and a coefficient step of ``q``
on pixels in [0, 1] is the paper's ``Qs = 255 q`` on pixels in [0, 255]. The paper gives no ``M``:
we take JPEG's 8 and pad 28 x 28 images by 2 pixels (edge values repeated) to 32 x 32, four blocks
a side; the padding is cropped after the inverse transform.

Rounding has a zero derivative almost everywhere, so the transform hands an attacker an input
gradient of exactly zero (``backward="auto"``); its BPDA view (``backward="identity"``) passes the
gradient straight through the rounding, and because the DCT is orthonormal and the padding is
cropped, straight through the whole transform.

**The generative cleaning network** :math:`G_\\theta` (:class:`CleaningNetwork`): the transform,
then a small convolutional encoder-decoder (the paper gives no architecture; ours: two 3 x 3
convolutions down to half resolution, one transposed convolution back, a sigmoid), whose output
is an image in [0, 1]. **The detector** :math:`D_\\phi` (:class:`Detector`): a small CNN with one
logit, clean or attacked.

**The losses and the training** (section 3.3) are in :mod:`qutils.defenses.gcln_train`.

:class:`GCLN` is the defended model, ``C(G(x))``, with the defense protocol: deterministic at
test time; attack views: BPDA through the rounding (the cleaner's own gradient everywhere else)
and BPDA through the whole cleaner (``G(x)`` forward, the identity backward: Athalye et al.'s
attack on purifiers).
"""
from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attacks.base import check_inputs
from ..attacks.bpda import bpda
from ..checks import check_int
from ..dct import block_dct, block_idct, dct_matrix
from .protocol import AttackView, Defense, check_backward, check_positive

__all__ = ["dct_matrix", "block_dct", "block_idct", "round_to_step", "QuantizedTransform", "CleaningNetwork",
           "Detector", "FeatureNet", "GCLN", "qs_of", "q_of"]


def qs_of(q: float) -> float:
    """The paper's ``Qs`` (pixels in [0, 255]) of a step ``q`` on pixels in [0, 1]."""
    return 255.0 * float(q)


def q_of(qs: float) -> float:
    """The step ``q`` on pixels in [0, 1] of the paper's ``Qs`` (pixels in [0, 255])."""
    return float(qs) / 255.0


def round_to_step(coef: torch.Tensor, q: float) -> torch.Tensor:
    """Equation 2: ``round(coef / q) * q`` (ties to even, as ``torch.round``)."""
    q = check_positive(q, "the quantization step q")
    return torch.round(coef / q) * q


class QuantizedTransform(nn.Module):
    """Section 3.2: pad, blockwise DCT, rounding with step ``q``, inverse DCT, crop.

    ``block``: M; ``pad``: pixels added on every side (edge values repeated) before cutting into
    blocks, cropped at the end; ``backward``: ``"auto"`` (the exact gradient: zero through the
    rounding) or ``"identity"`` (straight-through BPDA)."""

    def __init__(self, q: float, block: int = 8, pad: int = 0, backward: str = "auto"):
        super().__init__()
        self.q = check_positive(q, "the quantization step q")
        self.block = check_int(block, "the block size M")
        self.pad = check_int(pad, "pad", minimum=0)
        self.backward = check_backward(backward, ("auto", "identity"))

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """The blockwise DCT coefficients of the padded image (before rounding)."""
        if x.dim() != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="replicate")
        return block_dct(x, self.block)

    def from_coefficients(self, coef: torch.Tensor) -> torch.Tensor:
        x = block_idct(coef, self.block)
        p = self.pad
        return x[..., p:x.shape[-2] - p, p:x.shape[-1] - p] if p else x

    def quantize(self, coef: torch.Tensor) -> torch.Tensor:
        if self.backward == "identity":
            return bpda(coef, lambda c: round_to_step(c, self.q))
        return round_to_step(coef, self.q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_coefficients(self.quantize(self.coefficients(x)))

    def with_backward(self, backward: str) -> "QuantizedTransform":
        return QuantizedTransform(self.q, self.block, self.pad, backward)

    def extra_repr(self) -> str:
        return f"q={self.q:.4g} (Qs={qs_of(self.q):.3g}), block={self.block}, pad={self.pad}, backward={self.backward}"


class CleaningNetwork(nn.Module):
    """:math:`G_\\theta`: the quantized transform, then a small encoder-decoder with a sigmoid output
    (our architecture; the paper gives none). Its output is an image in [0, 1]."""

    def __init__(self, transform: QuantizedTransform, channels: int = 1, width: int = 32):
        super().__init__()
        if not isinstance(transform, QuantizedTransform):
            raise ValueError(f"transform must be a QuantizedTransform, got {type(transform).__name__}")
        self.transform = transform
        w = int(width)
        self.encoder = nn.Sequential(nn.Conv2d(channels, w, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(w, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.transform(x)
        return torch.sigmoid(self.decoder(self.encoder(t)))

    def with_backward(self, backward: str) -> "CleaningNetwork":
        """The same network (shared weights) with the transform's backward rule replaced."""
        new = nn.Module.__new__(CleaningNetwork)
        nn.Module.__init__(new)
        new.transform = self.transform.with_backward(backward)
        new.encoder, new.decoder = self.encoder, self.decoder
        return new.train(self.training)


class Detector(nn.Module):
    """:math:`D_\\phi`: clean (logit > 0) or attacked. Two strided convolutions and a linear read-out."""

    def __init__(self, channels: int = 1, width: int = 32):
        super().__init__()
        w = int(width)
        self.net = nn.Sequential(nn.Conv2d(channels, w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class FeatureNet(nn.Module):
    """The perceptual loss's feature extractor :math:`F_\\beta`: the convolutional trunk of a trained
    classifier (its ``features`` module or method), frozen."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        feats = getattr(classifier, "features", None)
        if feats is None:
            raise ValueError(f"{type(classifier).__name__} has no `features` trunk to take perceptual features from")
        self.classifier = classifier.eval()
        for p in self.classifier.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(x)

    def train(self, mode: bool = True):  # always evaluated (dropout off), whatever the caller asks
        super().train(mode)
        self.classifier.eval()
        return self


class GCLN(nn.Module, Defense):
    """The defended model ``C(G(x))``: the cleaning network in front of the unchanged target."""

    reference = "GCLN (ICLR 2020 submission), section 3"
    random = False

    def __init__(self, cleaner: CleaningNetwork, target: nn.Module, check: bool = True):
        super().__init__()
        if not isinstance(cleaner, CleaningNetwork):
            raise ValueError(f"cleaner must be a CleaningNetwork, got {type(cleaner).__name__}")
        self.cleaner, self.target, self.check = cleaner, target, check

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.check:
            check_inputs(x)
        return self.target(self.cleaner(x))

    def clean(self, x: torch.Tensor) -> torch.Tensor:
        """``G(x)``: what the target sees."""
        return self.cleaner(x)

    def deployed(self) -> "GCLN":
        return self

    def attack_views(self) -> dict[str, AttackView]:
        through = GCLN(self.cleaner.with_backward("identity"), self.target, self.check).train(self.training)
        skip = _Purifier(self.cleaner, self.target, self.check).train(self.training)
        return {
            "straight-through": AttackView(through, "straight-through",
                                           "rounding forward, identity backward; the gradient of G's layers"),
            "identity through G": AttackView(skip, "straight-through",
                                             "G forward, the identity backward (BPDA of the whole cleaner)"),
        }

    def classifier(self) -> nn.Module:
        return self.target

    def designed_attacks(self, eps: float, steps: int, seed: int = 0, lowfreq_keep: int | None = None,
                         rel_stepsize: float | None = None, **options) -> dict:
        """Low-frequency PGD (:class:`~qutils.attacks.LowFrequencyPGD`) through the straight-through
        view: each step keeps only the lowest ``lowfreq_keep`` x ``lowfreq_keep`` DCT coefficients of
        every block of the cleaner's transform, the band G's rounding keeps. ``lowfreq_keep`` is required."""
        if lowfreq_keep is None:
            raise ValueError("GCLN's designed attack needs the option lowfreq_keep (the chapter's config)")
        from ..attacks import Adaptive
        from ..attacks.lowfreq import LowFrequencyPGD

        t = self.cleaner.transform
        lf = LowFrequencyPGD(eps, steps, keep=lowfreq_keep, block=t.block, pad=t.pad, rel_stepsize=rel_stepsize,
                             early_stop=True)
        label = f"low-frequency PGD ({lowfreq_keep}x{lowfreq_keep} of {t.block}x{t.block}, designed)"
        return {label: Adaptive(lf, self.attack_views()["straight-through"].model, how="BPDA")}


class _Purifier(nn.Module):
    """``C(G(x))`` with ``G``'s backward pass replaced by the identity."""

    def __init__(self, cleaner, target, check=True):
        super().__init__()
        self.cleaner, self.target, self.check = cleaner, target, check

    def forward(self, x):
        if self.check:
            check_inputs(x)
        return self.target(bpda(x, self.cleaner))

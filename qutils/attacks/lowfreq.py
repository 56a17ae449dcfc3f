"""Low-frequency PGD: an L-infinity PGD whose perturbation lives in the lowest DCT frequencies.

A defense that quantizes blockwise DCT coefficients (GCLN's quantized nonlinear transform, JPEG
compression) and a cleaner trained on the noise of ordinary attacks both bet on one thing: that an
adversarial perturbation looks like PGD's -- spread over every frequency, small in each. This
attack takes PGD's steps along the gradient *low-passed* to the lowest ``keep x keep`` DCT
frequencies of each ``block x block`` block: the sign of a smooth gradient is constant over whole
regions, so the perturbation's energy sits in the frequencies whose coefficients are largest and
which the rounding and the cleaner must leave alone to keep the image (Guo et al. 2018 and Sharma
et al. 2019 study such low-frequency attacks). It starts from the clean image (a random start
would put energy in every frequency).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_int
from ..dct import block_dct, block_idct
from .pgd import PGD

__all__ = ["LowFrequencyPGD", "lowpass"]


def lowpass(t: torch.Tensor, keep: int, block: int = 8, pad: int = 0) -> torch.Tensor:
    """``t`` with every DCT coefficient of frequency ``u >= keep`` or ``v >= keep`` of each block set to
    zero (the image padded by ``pad`` pixels, edge values repeated, and cropped back)."""
    if keep >= block:
        return t
    tp = F.pad(t, (pad,) * 4, mode="replicate") if pad else t
    coef = block_dct(tp, block)
    idx = torch.arange(coef.shape[-1], device=t.device) % block
    jdx = torch.arange(coef.shape[-2], device=t.device) % block
    mask = (jdx[:, None] < keep) & (idx[None, :] < keep)
    out = block_idct(coef * mask, block)
    return out[..., pad:out.shape[-2] - pad, pad:out.shape[-1] - pad] if pad else out


class LowFrequencyPGD(PGD):
    """PGD (L-infinity) stepping along the sign of the gradient low-passed to the lowest ``keep x keep``
    DCT frequencies of each ``block x block`` block; no random start."""

    name = "low-frequency PGD"
    random_start = False

    def __init__(self, eps, steps=40, keep=4, block=8, pad=0, rel_stepsize=None, abs_stepsize=None, seed=0,
                 early_stop=False, loss="ce", confidence=0.0):
        super().__init__(eps, steps, "Linf", rel_stepsize, abs_stepsize, 1, False, seed, early_stop, loss,
                         confidence, 1)
        self.block = check_int(block, "block")
        self.keep = check_int(keep, "keep")
        if self.keep > self.block:
            raise ValueError(f"keep ({self.keep}) must be at most the block size ({self.block})")
        self.pad = check_int(pad, "pad", minimum=0)

    def params(self) -> dict:
        return {**super().params(), "keep": self.keep, "block": self.block}

    def _step(self, grad):
        return self.step_size * lowpass(grad, self.keep, self.block, self.pad).sign()

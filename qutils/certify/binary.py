"""The binary threat model: which bits each pixel of an image can take within the L-infinity ball,
and the real input that realises a chosen vertex (:mod:`qutils.certify`)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..checks import check_eps, check_inputs

CERTIFIED, BROKEN, UNKNOWN, MISCLASSIFIED = "certified", "broken", "unknown", "misclassified"


def binarizer_of(defense: nn.Module):
    """``(quantizer, classifier)`` of an input-binarization defense ``classifier(quantizer(x))``: a
    QuSecNet or an InputTransformModel whose per-pixel monotone quantizer has two levels. The
    quantizer is applied exactly (QuSecNets' hard mode)."""
    transform, classifier = getattr(defense, "transform", None), getattr(defense, "model", None)
    if not getattr(transform, "pixelwise_monotone", False) or not isinstance(classifier, nn.Module):
        raise ValueError("certify needs an input-quantization defense classifier(quantizer(x)) with a per-pixel "
                         f"monotone quantizer (QuSecNets, bit-depth reduction); got {type(defense).__name__}")
    if hasattr(transform, "view"):
        transform = transform.view("hard")
    levels = getattr(transform, "levels", None)
    if levels != 2:
        raise ValueError(f"certify bounds two-level quantizers (binarization); this one has {levels} levels")
    return transform, classifier


def is_binarizer(defense: nn.Module) -> bool:
    """Whether :func:`certify` can bound ``defense`` (:func:`binarizer_of` accepts it)."""
    try:
        binarizer_of(defense)
    except ValueError:
        return False
    return True


def reachable(quantizer, x: torch.Tensor, eps: float):
    """``(lo, hi)``: the lowest and highest bit each pixel of ``x`` reaches within the L-infinity ball
    of radius ``eps`` (inside [0, 1]), for a per-pixel monotone two-level ``quantizer``. Every binary
    image between them (pixel by pixel) is reachable, and nothing else is."""
    eps = check_eps(eps)
    check_inputs(x)
    with torch.no_grad():
        lo, hi = quantizer((x - eps).clamp(0, 1)), quantizer((x + eps).clamp(0, 1))
    if not bool(((lo == 0) | (lo == 1)).all() & ((hi == 0) | (hi == 1)).all()):
        raise ValueError("the quantizer's outputs are not bits (0 or 1): certify bounds binarization only")
    return lo, hi



def realise(x: torch.Tensor, bits: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, eps: float) -> torch.Tensor:
    """A real input within the ball around ``x`` whose binarization is ``bits`` (a reachable vertex):
    a pixel whose bit changes moves to the end of its interval that has that bit (``x - eps`` for
    the low bit, ``x + eps`` for the high one, inside [0, 1]); the others stay."""
    q0 = torch.where(lo == hi, lo, torch.full_like(lo, -1.0))
    down = (bits == lo) & (lo != hi)
    up = (bits == hi) & (lo != hi)
    out = x.clone()
    out[down] = (x[down] - eps).clamp(0, 1)
    out[up] = (x[up] + eps).clamp(0, 1)
    if bool(((q0 >= 0) & (bits != q0)).any()):
        raise ValueError("bits is not reachable: it changes a pixel whose bit is fixed")
    return out


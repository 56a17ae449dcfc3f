"""The blockwise 2-D DCT, orthonormal: the maths under GCLN's quantized transform
(:mod:`qutils.defenses.gcln`) and the low-frequency attack (:mod:`qutils.attacks.lowfreq`).

An image (B, C, H, W) is cut into ``m x m`` blocks; each block ``x`` goes to ``C @ x @ C.T`` with
``C`` the orthonormal DCT-II basis (:func:`dct_matrix`; JPEG's transform for ``m = 8``), so the
inverse is the transpose. The coefficients keep the image's layout: block ``(r, s)``'s
coefficients sit where the block was.
"""
from __future__ import annotations

import math

import torch

from .checks import check_int

__all__ = ["dct_matrix", "block_dct", "block_idct"]


def dct_matrix(m: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """The orthonormal DCT-II basis as an ``m x m`` matrix ``C``: the coefficients of a block ``x``
    are ``C @ x @ C.T`` (equation 1 with its normalisation made orthonormal), and ``x = C.T @ X @ C``.
    Row ``i`` is ``c_i cos(pi i (2n + 1) / 2m)`` with ``c_0 = sqrt(1/m)``, ``c_i = sqrt(2/m)``."""
    m = check_int(m, "the block size M")
    n = torch.arange(m, dtype=torch.float64)
    c = torch.cos(math.pi * n[:, None] * (2 * n[None, :] + 1) / (2 * m))
    c[0] *= math.sqrt(1.0 / m)
    c[1:] *= math.sqrt(2.0 / m)
    return c.to(dtype=dtype, device=device)


def _blocks(x: torch.Tensor, m: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H/m, W/m, m, m); raises if ``m`` does not divide H and W."""
    if x.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    if h % m or w % m:
        raise ValueError(f"the block size {m} does not divide the (padded) image {h} x {w}: choose M or the "
                         "padding so that it does")
    return x.reshape(b, c, h // m, m, w // m, m).permute(0, 1, 2, 4, 3, 5)


def _unblocks(x: torch.Tensor) -> torch.Tensor:
    b, c, nh, nw, m, _ = x.shape
    return x.permute(0, 1, 2, 4, 3, 5).reshape(b, c, nh * m, nw * m)


def block_dct(x: torch.Tensor, m: int = 8) -> torch.Tensor:
    """Blockwise 2-D orthonormal DCT-II of images (B, C, H, W), each ``m x m`` block on its own;
    the result has the image's layout (block ``(r, s)``'s coefficients where the block was)."""
    m = check_int(m, "the block size M")
    cm = dct_matrix(m, x.dtype, x.device)
    return _unblocks(cm @ _blocks(x, m) @ cm.T)


def block_idct(coef: torch.Tensor, m: int = 8) -> torch.Tensor:
    """The inverse of :func:`block_dct`."""
    m = check_int(m, "the block size M")
    cm = dct_matrix(m, coef.dtype, coef.device)
    return _unblocks(cm.T @ _blocks(coef, m) @ cm)

"""Argument checks, in one place: every public function of qutils turns bad input into a
``ValueError`` that names the argument and what it should be, never a silent wrong answer.

Numbers: :func:`check_int` (whole numbers, at least ``minimum``, at most ``maximum``),
:func:`check_eps` (radii and other non-negative sizes), :func:`check_positive` (a steepness, a
temperature, a step), :func:`check_finite` (any finite number), :func:`check_choice` (one of a set).
Images and labels: :func:`check_inputs` (a batch of pixels in [0, 1] and its labels),
:func:`check_batch` (the labels against the classes the model outputs).

This module imports nothing of qutils: every layer may use it.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["check_int", "check_eps", "check_positive", "check_finite", "check_choice", "check_box", "check_inputs",
           "check_batch", "num_classes"]


def check_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int; ``ValueError`` unless it is a whole number (not a bool) >= ``minimum``
    (and <= ``maximum`` when given). ``2.0`` passes as 2; ``2.5``, ``"2"`` and ``True`` do not."""
    try:
        ok = not isinstance(value, (bool, str)) and int(value) == value and value >= minimum
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        what = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, got {value!r}")
    return int(value)


def check_eps(eps: float, name: str = "eps", allow_inf: bool = False) -> float:
    """``eps`` as a float; ``ValueError`` if it is not a number, negative, NaN or (unless allowed) infinite."""
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {eps!r}") from None
    if math.isnan(eps) or eps < 0 or (math.isinf(eps) and not allow_inf):
        raise ValueError(f"{name} must be a {'' if allow_inf else 'finite '}number >= 0, got {eps}")
    return eps


def check_positive(value, name: str) -> float:
    """``value`` as a float if it is a positive finite number (a steepness, a temperature); otherwise
    a ``ValueError`` naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {v}")
    return v


def check_finite(value, name: str) -> float:
    """``value`` as a float if it is a finite number; otherwise a ``ValueError`` naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v}")
    return v


def check_box(lo: torch.Tensor, hi: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``[lo, hi]`` is a box: two tensors of one shape with ``lo <= hi``."""
    if lo.shape != hi.shape or bool((lo > hi).any()):
        raise ValueError("a box needs lo <= hi of the same shape")


def check_choice(value, allowed, name: str):
    """``value`` if it is one of ``allowed``; otherwise a ``ValueError`` naming the choices."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def check_inputs(x: torch.Tensor, y: torch.Tensor | None = None, num_classes: int | None = None) -> None:
    """Raise ``ValueError`` unless ``x`` is a non-empty NCHW float batch of finite pixels in [0, 1]
    and ``y`` holds one integer label per image, each in ``[0, num_classes)`` (when given)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor with pixels in [0, 1], got dtype {x.dtype}")
    if len(x) == 0 or x.numel() == 0:
        raise ValueError(f"x is an empty batch (shape {tuple(x.shape)}): there is nothing to classify or attack")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).flatten(1).any(1).sum())
        raise ValueError(f"x has NaN or infinite pixels in {bad} of {len(x)} images; every pixel must be in [0, 1]")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"x must have pixels in [0, 1], got range [{x.min().item():.3g}, {x.max().item():.3g}]; "
            "normalise inside the model, not before the attack"
        )
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.ndim != 1 or len(y) != len(x):
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"y must be a 1-D label tensor of length {len(x)}, got {shape}")
        if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or (num_classes is not None and hi >= num_classes):
            span = f"[0, {num_classes})" if num_classes is not None else "non-negative"
            raise ValueError(f"labels must be {span}, got labels from {lo} to {hi}")


def num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """The number of classes ``model`` outputs (one forward pass on the first image, no gradient)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            dev = next((p.device for p in model.parameters()), x.device)
            out = model(x[:1].to(dev))
    finally:
        model.train(was)
    if out.ndim != 2:
        raise ValueError(f"the model must return logits of shape (N, classes), got {tuple(out.shape)}")
    return int(out.shape[1])


def check_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """:func:`check_inputs` with the labels checked against the classes ``model`` outputs."""
    check_inputs(x, y)
    check_inputs(x, y, num_classes(model, x))

"""BPDA: Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner 2018).

A defense that contains a non-differentiable step g (rounding, quantization, a sign) hands
the attacker a useless gradient: zero almost everywhere, or undefined. BPDA keeps g in the
forward pass and replaces its derivative in the backward pass by that of a differentiable
approximation h(x) ~ g(x) -- for quantizers usually the identity (the straight-through
estimator), or a smooth surrogate such as a steep sigmoid staircase.

    y = bpda(x, forward=torch.round)                 # straight-through
    y = bpda(x, forward=q_hard, approx=q_soft)       # gradient of a soft quantizer

Wrap the non-differentiable layer of a defended model, e.g.
``InputTransformModel(BPDA(BitDepthReduction(1)), model)``, and any gradient attack becomes the
adaptive attack: it calls the wrapped model as usual. The quantizers of the defense chapters
build on this function.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

__all__ = ["bpda", "BPDA"]


class _BPDAFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, forward_fn, approx_fn):
        ctx.save_for_backward(x)
        ctx.approx_fn = approx_fn
        with torch.no_grad():
            return forward_fn(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        if ctx.approx_fn is None:  # straight-through: d g / d x := identity
            return grad_out, None, None
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(ctx.approx_fn(xd), xd, grad_out)
        return g, None, None


def bpda(x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor],
         approx: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """``forward(x)`` in the forward pass; the gradient of ``approx`` (identity if None) backward."""
    return _BPDAFunction.apply(x, forward, approx)


class BPDA(nn.Module):
    """Wrap a non-differentiable module: its output unchanged, its gradient that of ``approx``.

    ``BPDA(BitDepthReduction(1))`` is the straight-through version of 1-bit rounding;
    ``BPDA(layer, approx=smooth_layer)`` borrows the gradient of a smooth stand-in.
    """

    def __init__(self, module: nn.Module | Callable, approx: nn.Module | Callable | None = None):
        super().__init__()
        self.module = module
        self.approx = approx

    def forward(self, x):
        return bpda(x, self.module, self.approx)

"""Linear bounds over a box of binary images (:mod:`qutils.certify`): CROWN (backward) and the
forward symbolic intervals, for chains of affine layers and ReLUs."""
from __future__ import annotations

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_box
from .intervals import _affine, _bn_scale, _graph, _spec

_AFFINE_MODULES = (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.Flatten, nn.Dropout, nn.Identity, nn.AvgPool2d)
_AFFINE_METHODS = ("view", "flatten", "reshape", "contiguous")
_RELU = "relu"


def _chain(gm):
    """The traced network as a chain of steps, each taking the previous step's output: an affine
    callable (linear, convolution, batch norm in eval mode, average pooling, reshapes) or
    :data:`_RELU`. Raises ValueError for anything else (branches, max pooling, other activations):
    CROWN here bounds chains of affine layers and ReLUs; :func:`interval_bounds` bounds more."""
    modules = dict(gm.named_modules())
    steps, prev = [], None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            prev = node
            continue
        if node.op == "output":
            if node.args[0] is not prev:
                raise ValueError("linear bounds need a chain network: its output is not its last step")
            break
        inputs = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if inputs != [prev]:
            raise ValueError(f"linear bounds need a chain network; {node.name} does not take the previous step alone")
        rest = node.args[1:]
        if node.op == "call_module":
            mod = modules[node.target]
            if isinstance(mod, nn.ReLU):
                steps.append(_RELU)
            elif isinstance(mod, _AFFINE_MODULES):
                if mod.training and isinstance(mod, (nn.BatchNorm2d, nn.Dropout)):
                    raise ValueError("bound a network in eval mode (batch norm, dropout)")
                steps.append(mod)
            else:
                raise ValueError(f"linear bounds (CROWN, forward) cannot bound layer {type(mod).__name__} ({node.target})")
        elif node.op == "call_function" and node.target in (F.relu, torch.relu):
            steps.append(_RELU)
        elif node.op == "call_function" and node.target is torch.flatten:
            steps.append(lambda v, rest=rest, kw=node.kwargs: torch.flatten(v, *rest, **kw))
        elif node.op == "call_method" and node.target == "relu":
            steps.append(_RELU)
        elif node.op == "call_method" and node.target in _AFFINE_METHODS:
            steps.append(lambda v, m=node.target, rest=rest, kw=node.kwargs: getattr(v, m)(*rest, **kw))
        else:
            raise ValueError(f"linear bounds (CROWN, forward) cannot bound operation {node.op} {node.target}")
        prev = node
    return steps


def _back_affine(step, a, in_shape):
    """``(A W, A b)`` for the affine ``step(v) = W v + b``, ``A`` of shape (S, *out_shape): the
    vector-Jacobian product (exact: the step is affine) and the bias term."""
    with torch.enable_grad():
        vs = torch.zeros((len(a), *in_shape), dtype=a.dtype, device=a.device, requires_grad=True)
        out = step(vs)
        (aw,) = torch.autograd.grad(out, vs, grad_outputs=a)
    bias = out[:1].detach().flatten(1)  # step(0) = b
    return aw.detach(), (a.flatten(1) * bias).sum(1)


def _back(steps, shapes, bounds, a, upto, lo, hi):
    """A sound lower bound of ``A . h_upto`` (``h_upto``: the output of ``steps[:upto]``) over the
    box ``[lo, hi]``, propagating ``A`` backwards through the affine steps exactly and through each
    ReLU with CROWN's linear relaxation (Zhang et al. 2018), given pre-activation ``bounds``."""
    const = torch.zeros(len(a), dtype=a.dtype, device=a.device)
    for k in range(upto - 1, -1, -1):
        step = steps[k]
        if step is _RELU:
            l, u = bounds[k]
            l, u = l.expand_as(a), u.expand_as(a)
            active, unstable = l >= 0, (l < 0) & (u > 0)
            slope_up = torch.where(unstable, u / (u - l).clamp_min(1e-12), active.to(a.dtype))
            # the lower line through 0: slope 1 where the upper part dominates, 0 elsewhere (CROWN's choice)
            slope_lo = torch.where(unstable, (u > -l).to(a.dtype), active.to(a.dtype))
            pos = a >= 0
            const = const + torch.where(pos | ~unstable, torch.zeros_like(a), -a * slope_up * l).flatten(1).sum(1)
            a = a * torch.where(pos, slope_lo, slope_up)
        else:
            a, b = _back_affine(step, a, shapes[k])
            const = const + b
    mid, rad = ((lo + hi) / 2).flatten(1), ((hi - lo) / 2).flatten(1)
    af = a.flatten(1)
    return const + af @ mid[0] - af.abs() @ rad[0]


def _crown_bounds(steps, shapes, lo, hi, chunk: int = 2048):
    """Pre-activation bounds ``{k: (l, u)}`` of every ReLU step ``k`` over the box (batch of one),
    each by CROWN back to the input, intersected with the interval bounds; neurons the interval
    bounds already prove stable are not recomputed."""
    bounds = {}
    h_lo, h_hi = lo, hi
    for k, step in enumerate(steps):
        if step is _RELU:
            l, u = h_lo.clone(), h_hi.clone()
            open_ = ((l < 0) & (u > 0)).flatten().nonzero().flatten()
            n = l[0].numel()
            for s in range(0, len(open_), chunk):
                idx = open_[s:s + chunk]
                eye = torch.zeros(len(idx), n, dtype=lo.dtype, device=lo.device)
                eye[torch.arange(len(idx)), idx] = 1
                a = torch.cat([eye, -eye]).view(2 * len(idx), *shapes[k])
                got = _back(steps, shapes, bounds, a, k, lo, hi)
                lf, uf = l.view(-1), u.view(-1)
                lf[idx] = torch.maximum(lf[idx], got[:len(idx)])
                uf[idx] = torch.minimum(uf[idx], -got[len(idx):])
            bounds[k] = (l, u)
            h_lo, h_hi = l.clamp_min(0), u.clamp_min(0)
        else:
            got = _affine(step, h_lo, h_hi) if isinstance(step, nn.Module) else None
            if got is None:  # a reshape, dropout or average pooling: monotone, apply to both ends
                got = (step(h_lo), step(h_hi))
            h_lo, h_hi = got
    return bounds


class _Crown:
    """CROWN bounds for one chain network (:func:`_chain`), the shapes of its steps' inputs recorded once."""

    def __init__(self, net: nn.Module, example: torch.Tensor):
        self.steps = _chain(_graph(net))
        self.shapes = []
        with torch.no_grad():
            h = example[:1]
            for step in self.steps:
                self.shapes.append(tuple(h.shape[1:]))
                h = torch.relu(h) if step is _RELU else step(h)
        self.out_shape = tuple(h.shape[1:])

    def margin(self, lo, hi, y):
        """A sound lower bound on ``min_{j != y} z_y - z_j`` over the box (batch of one)."""
        if len(lo) != 1:
            raise ValueError("CROWN margins here are computed one image at a time")
        with torch.no_grad():
            bounds = _crown_bounds(self.steps, self.shapes, lo, hi)
            c = _spec(y.view(1), self.out_shape[0])[0]  # (classes - 1, classes)
            return _back(self.steps, self.shapes, bounds, c, len(self.steps), lo, hi).min()


# ------------------------------------------------------------------- forward linear bounds (symbolic)
def _signed(step):
    """``(positive part, negative part, bias)`` of an affine step: two linear maps whose sum is the
    step's linear part, and the bias (None for a map without one). A step whose weights are all
    non-negative (a reshape, dropout in eval mode, average pooling) is its own positive part."""
    if isinstance(step, nn.Linear):
        w = step.weight
        return (lambda v: F.linear(v, w.clamp(min=0)), lambda v: F.linear(v, w.clamp(max=0)), step.bias)
    if isinstance(step, nn.Conv2d):
        if step.padding_mode != "zeros":
            raise ValueError(f"bounds support zero padding only, not {step.padding_mode!r}")
        w = step.weight

        def conv(v, ww):
            return F.conv2d(v, ww, None, step.stride, step.padding, step.dilation, step.groups)

        bias = None if step.bias is None else step.bias.view(-1, 1, 1)
        return (lambda v: conv(v, w.clamp(min=0)), lambda v: conv(v, w.clamp(max=0)), bias)
    if isinstance(step, nn.BatchNorm2d):
        scale = _bn_scale(step)
        shift = step.bias - step.running_mean * scale
        sp, sn = scale.clamp(min=0).view(1, -1, 1, 1), scale.clamp(max=0).view(1, -1, 1, 1)
        return (lambda v: v * sp, lambda v: v * sn, shift.view(-1, 1, 1))
    return step, None, None


class _Symbolic:
    """Forward linear bounds (symbolic intervals, as in ReluVal and DeepPoly's forward pass) for one
    chain network (:func:`_chain`). Over a box of binary images only the ``k`` free pixels vary, so
    every neuron is bounded by two linear functions of ``k`` variables in [0, 1], pushed forward
    layer by layer: an affine layer maps them exactly (its positive weights take the lower function
    to the lower one, its negative weights the upper one), a ReLU that may be on or off keeps its
    upper function scaled onto the chord ``u (z - l) / (u - l)`` and its lower one times 0 or 1.
    It costs a forward pass of ``2 (k + 1)`` images, where CROWN's backward pass costs one row per
    uncertain neuron; it keeps what interval bounds lose, the correlation between neurons."""

    def __init__(self, net: nn.Module):
        self.steps = _chain(_graph(net))
        self.fold = isinstance(self.steps[-1], nn.Linear)

    def margin(self, lo, hi, y):
        """A sound lower bound on ``min_{j != y} z_y - z_j`` over the box (batch of one)."""
        if len(lo) != 1:
            raise ValueError("linear margins here are computed one image at a time")
        with torch.no_grad():
            free = (lo != hi).flatten().nonzero().flatten()
            k = len(free)
            a = torch.zeros(k, lo[0].numel(), dtype=lo.dtype, device=lo.device)
            a[torch.arange(k), free] = (hi - lo).flatten()[free]
            a_lo, c_lo = a.view(k, *lo.shape[1:]), lo
            a_up, c_up = a_lo, lo
            body = self.steps[:-1] if self.fold else self.steps
            for step in body:
                if step is _RELU:
                    l = c_lo + a_lo.clamp(max=0).sum(0, keepdim=True)
                    u = c_up + a_up.clamp(min=0).sum(0, keepdim=True)
                    on, unstable = l >= 0, (l < 0) & (u > 0)
                    slope = torch.where(unstable, u / (u - l).clamp_min(1e-12), on.to(lo.dtype))
                    lam = torch.where(unstable, (u > -l).to(lo.dtype), on.to(lo.dtype))
                    a_up, c_up = a_up * slope, slope * (c_up - torch.where(unstable, l, torch.zeros_like(l)))
                    a_lo, c_lo = a_lo * lam, c_lo * lam
                    continue
                pos, neg, bias = _signed(step)
                low, up = torch.cat([a_lo, c_lo]), torch.cat([a_up, c_up])
                if neg is None:
                    low, up = pos(low), pos(up)
                else:
                    low, up = pos(low) + neg(up), pos(up) + neg(low)
                    if bias is not None:
                        low[-1:] += bias
                        up[-1:] += bias
                a_lo, c_lo, a_up, c_up = low[:-1], low[-1:], up[:-1], up[-1:]
            classes = self.steps[-1].out_features if self.fold else c_lo[0].numel()
            spec = _spec(y.view(1), classes)[0].to(lo.dtype)  # (classes - 1, classes)
            if self.fold:
                last = self.steps[-1]
                w, b = spec @ last.weight, spec @ last.bias if last.bias is not None else 0.0
            else:
                w, b = spec, 0.0
            wp, wn = w.clamp(min=0).T, w.clamp(max=0).T
            coef = a_lo.flatten(1) @ wp + a_up.flatten(1) @ wn  # (k, classes - 1)
            const = c_lo.flatten(1) @ wp + c_up.flatten(1) @ wn + b
            return (const[0] + coef.clamp(max=0).sum(0)).min()


def linear_margin_lower_bound(net: nn.Module, lo: torch.Tensor, hi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image, the forward linear bound (:class:`_Symbolic`) on ``min_{j != y} z_y(v) - z_j(v)``
    over every input ``v`` of the box ``[lo, hi]`` (so over its binary images too): each pixel is
    ``lo + b (hi - lo)`` with ``b`` in [0, 1]."""
    check_box(lo, hi)
    sym = _Symbolic(net)
    return torch.stack([sym.margin(lo[i:i + 1], hi[i:i + 1], y[i]) for i in range(len(lo))])


def crown_margin_lower_bound(net: nn.Module, lo: torch.Tensor, hi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image, CROWN's sound lower bound on ``min_{j != y} z_y(v) - z_j(v)`` over the box
    ``[lo, hi]`` (Zhang et al. 2018, "Efficient neural network robustness certification with
    general activation functions"): linear bounds propagated backwards, every ReLU's pre-activation
    bounds themselves computed by CROWN. Usually much tighter than interval bounds on a network
    trained without them; for chains of affine layers and ReLUs (``net`` in eval mode)."""
    check_box(lo, hi)
    crown = _Crown(net, lo)
    return torch.stack([crown.margin(lo[i:i + 1], hi[i:i + 1], y[i]) for i in range(len(lo))])


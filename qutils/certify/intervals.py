"""Interval bound propagation (IBP; Gowal et al. 2018) through a traced network, and the margin
lower bound with the last linear layer folded in (:mod:`qutils.certify`)."""
from __future__ import annotations

import operator

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_box

_MONOTONE_MODULES = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.MaxPool2d, nn.AvgPool2d,
                     nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Identity, nn.Hardtanh, nn.Softplus)
_MONOTONE_FUNCTIONS = (F.relu, torch.relu, torch.flatten, torch.sigmoid, torch.tanh, F.max_pool2d, F.avg_pool2d)
_SHAPE_METHODS = ("view", "flatten", "reshape", "relu", "contiguous", "sigmoid", "tanh")


def _bn_scale(module: nn.BatchNorm2d) -> torch.Tensor:
    """Per channel, the factor batch norm in eval mode multiplies its input by."""
    return module.weight / torch.sqrt(module.running_var + module.eps)


def _affine(module, lo, hi):
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    if isinstance(module, nn.Linear):
        m, r = module(mid), F.linear(rad, module.weight.abs())
    elif isinstance(module, nn.Conv2d):
        m = module(mid)
        r = F.conv2d(rad, module.weight.abs(), None, module.stride, module.padding, module.dilation, module.groups)
    elif isinstance(module, nn.BatchNorm2d):
        if module.training:
            raise ValueError("bound a network in eval mode: batch norm in training mode depends on the batch")
        m, r = module(mid), rad * _bn_scale(module).abs().view(1, -1, 1, 1)
    else:
        return None
    return m - r, m + r


def _graph(net: nn.Module):
    import torch.fx

    try:
        return torch.fx.symbolic_trace(net)
    except Exception as e:  # noqa: BLE001 - a model fx cannot trace: say which and why
        raise ValueError(f"cannot trace {type(net).__name__} to bound it ({e})") from e


def _propagate(gm, lo, hi, stop_before_last_linear: bool):
    """Interval bounds of every node of the traced ``gm``; with ``stop_before_last_linear``, the
    bounds of the last Linear layer's input and that layer (None if the output is not a Linear)."""
    env = {}
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    out_node = next(n for n in nodes if n.op == "output")
    last = out_node.args[0]
    fold = (stop_before_last_linear and getattr(last, "op", None) == "call_module"
            and isinstance(modules[last.target], nn.Linear))
    for node in nodes:
        if node.op == "placeholder":
            env[node.name] = (lo, hi)
            continue
        if node.op == "output":
            break
        if fold and node is last:
            return env[node.args[0].name], modules[last.target]
        args = [env[a.name] if isinstance(a, torch.fx.Node) else a for a in node.args]
        if node.op == "call_module":
            mod = modules[node.target]
            if mod.training and isinstance(mod, nn.Dropout):
                raise ValueError("bound a network in eval mode: dropout is random in training mode")
            got = _affine(mod, *args[0])
            if got is None:
                if not isinstance(mod, _MONOTONE_MODULES):
                    raise ValueError(f"cannot bound layer {type(mod).__name__} ({node.target}): IBP here handles "
                                     "linear, convolution, batch norm (eval), pooling and monotone activations")
                got = (mod(args[0][0]), mod(args[0][1]))
        elif node.op == "call_function" and node.target in _MONOTONE_FUNCTIONS:
            rest = args[1:]
            got = (node.target(args[0][0], *rest, **node.kwargs), node.target(args[0][1], *rest, **node.kwargs))
        elif node.op == "call_function" and node.target is operator.getitem:
            got = args[0]
        elif node.op == "call_method" and node.target in _SHAPE_METHODS:
            a, b = args[0]
            got = (getattr(a, node.target)(*args[1:], **node.kwargs), getattr(b, node.target)(*args[1:], **node.kwargs))
        else:
            raise ValueError(f"cannot bound operation {node.op} {node.target} of {type(gm).__name__}")
        env[node.name] = got
    return env[last.name], None


def interval_bounds(net: nn.Module, lo: torch.Tensor, hi: torch.Tensor):
    """``(out_lo, out_hi)``: bounds on ``net(v)`` for every input ``lo <= v <= hi`` (interval bound
    propagation; ``net`` in eval mode, built of linear, convolution, batch norm, pooling and
    monotone activation layers)."""
    check_box(lo, hi)
    with torch.no_grad():
        return _propagate(_graph(net), lo, hi, stop_before_last_linear=False)[0]


def _spec(y: torch.Tensor, classes: int) -> torch.Tensor:
    """``C`` of shape (B, classes - 1, classes): row j is ``e_y - e_j`` for every ``j != y``."""
    eye = torch.eye(classes, device=y.device)
    c = eye[y].unsqueeze(1) - eye.unsqueeze(0)  # (B, classes, classes): e_y - e_j
    keep = torch.ones(len(y), classes, dtype=torch.bool, device=y.device)
    keep[torch.arange(len(y)), y] = False
    return c[keep].view(len(y), classes - 1, classes)


def margin_lower_bound(net: nn.Module, lo: torch.Tensor, hi: torch.Tensor, y: torch.Tensor, gm=None) -> torch.Tensor:
    """A sound lower bound, per image, on ``min_{j != y} z_y(v) - z_j(v)`` over the box ``[lo, hi]``:
    positive means every input of the box is classified ``y``. The last linear layer is folded into
    the margin (its interval is then exact for that layer)."""
    gm = gm if gm is not None else _graph(net)
    with torch.no_grad():
        (h_lo, h_hi), last = _propagate(gm, lo, hi, stop_before_last_linear=True)
        if last is not None:
            c = _spec(y, last.out_features)
            w = c @ last.weight  # (B, m, in)
            b = c @ last.bias if last.bias is not None else 0
            mid, rad = (h_lo + h_hi) / 2, (h_hi - h_lo) / 2
            m = torch.einsum("bmi,bi->bm", w, mid) + b
            r = torch.einsum("bmi,bi->bm", w.abs(), rad)
            return (m - r).min(1).values
        z_lo, z_hi = h_lo, h_hi
        own = z_lo.gather(1, y[:, None])
        other = z_hi.scatter(1, y[:, None], float("-inf"))
        return (own - other.max(1, keepdim=True).values).squeeze(1)


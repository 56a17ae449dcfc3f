"""Robust accuracy of input binarization, bounded from both sides.

A defense that binarizes every pixel before its classifier -- QuSecNets' two-level layer (constant
or per-pixel thresholds), feature squeezing's 1-bit depth -- turns the L-infinity ball into a
finite set. A pixel at distance more than ``eps`` from its threshold keeps its bit whatever the
attacker does; a pixel closer than that can take either bit. If ``k`` pixels of an image can
flip, the classifier can only ever see ``2**k`` binary images, and the question "is there an
adversarial example within eps?" has an exact answer: look at all of them. That is what makes
both bounds possible here, where for a smooth defense an attack gives only an upper bound.

* :func:`reachable` -- the bits each pixel can take within the ball: the box ``[lo, hi]`` of the
  binary images the classifier can see (``lo == hi`` where the bit is fixed).
* :func:`interval_bounds` / :func:`margin_lower_bound` -- interval bound propagation (IBP; Gowal
  et al. 2018) through the classifier over that box, the last linear layer folded into the margin
  ``z_y - z_j``: a sound lower bound on the margin of every binary image in the box.
* :func:`linear_margin_lower_bound` -- forward linear bounds (symbolic intervals): every neuron
  between two linear functions of the free pixels, pushed forward; as cheap as a forward pass of
  a few dozen images, and on the book's CNNs it proves boxes that interval bounds miss by tens of
  logits. The search's default (``"auto"``).
* :func:`crown_margin_lower_bound` -- CROWN (Zhang et al. 2018): linear bounds propagated
  backwards, each ReLU relaxed between two lines; tighter still, but one backward row per
  uncertain neuron (seconds per box on the book's CNNs), for chains of affine layers and ReLUs.
* :func:`certify` -- per image, *certified* (no reachable binary image changes the prediction:
  proved by the bound, or by enumerating every vertex), *broken* (a reachable binary image that
  does, realised as a real input within the ball and checked on the deployed model), or *unknown*
  (the search budget ran out). It is a branch and bound: bound the box; where the bound does not
  prove the margin positive, try the box's most promising vertex; enumerate a box with few free
  pixels exactly; otherwise fix the most influential free pixel both ways and recurse.
* :func:`two_sided` -- both bounds on the same images: the certified share (lower) and the share
  that neither the attacks nor the search broke (upper), as a :class:`Bounds`;
  :func:`bounds_table` -- the same for several models and radii; :func:`cascade_bounds` -- a
  chapter's table, its cascade behind the upper bound, within a :class:`SearchBudget`.

The certified fraction is a lower bound on robust accuracy under the threat model (L-infinity,
``eps``, the deployed binarizing network), the attacks' best an upper bound; the truth lies
between. auto_LiRPA, the maintained CROWN library, is not on PyPI (it installs from its git
repository, with pins of its own), so the two bounds here are written small and tested for
soundness against brute force (``tests/test_certify.py``).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_box, check_choice, check_eps, check_inputs, check_int

__all__ = ["SearchBudget", "cascade_bounds", "reachable", "interval_bounds", "margin_lower_bound", "crown_margin_lower_bound", "certify", "BOUNDS",
           "two_sided", "Bounds", "is_binarizer", "bounds_table", "linear_margin_lower_bound",
           "Certificate", "CERTIFIED", "BROKEN", "UNKNOWN", "MISCLASSIFIED", "realise", "binarizer_of"]

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


# --------------------------------------------------------------------------------------------- IBP
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


# ----------------------------------------------------------------------------------------- CROWN
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


# ------------------------------------------------------------------------------------ the search
@dataclass
class Certificate:
    """One image's verdict: :data:`CERTIFIED`, :data:`BROKEN`, :data:`UNKNOWN` or :data:`MISCLASSIFIED`
    (wrong before any attack), with the number of pixels whose bit can change (``free``), the boxes
    the search bounded (``nodes``), the vertices it evaluated, and for a broken image the real input
    that breaks it (``x_adv``)."""

    status: str
    free: int
    nodes: int = 0
    vertices: int = 0
    how: str = ""
    x_adv: torch.Tensor | None = field(default=None, repr=False)


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


def _enumerate(classifier, base, free_idx, y, batch: int = 1024):
    """Every assignment of the free pixels of ``base`` (a flat binary image); the first vertex that
    is not classified ``y``, or None, and the number evaluated."""
    k = len(free_idx)
    n = 1 << k
    shape = base.shape
    flat = base.flatten()
    powers = 1 << torch.arange(k, device=base.device)
    seen = 0
    for start in range(0, n, batch):
        codes = torch.arange(start, min(n, start + batch), device=base.device)
        bits = ((codes[:, None] & powers) > 0).to(base.dtype)
        v = flat.repeat(len(codes), 1)
        v[:, free_idx] = bits
        with torch.no_grad():
            pred = classifier(v.view(len(codes), *shape[1:])).argmax(1)
        seen += len(codes)
        bad = (pred != y).nonzero()
        if len(bad):
            return v[bad[0, 0]].view(shape), seen
    return None, seen


def _certify_one(classifier, bound, x, y, lo, hi, eps, enum_limit, node_budget, deployed):
    free = int((lo != hi).sum())
    with torch.no_grad():
        if int(deployed(x).argmax(1)) != int(y):
            return Certificate(MISCLASSIFIED, free, how="misclassified without attack")
    yv = y.view(1)
    stack = [(lo, hi)]
    nodes = vertices = 0

    def broken(v, how):
        x_adv = realise(x, v, lo, hi, eps)
        with torch.no_grad():  # a verdict of "broken" is checked on the deployed model, on a real input
            if int(deployed(x_adv).argmax(1)) == int(y):
                raise RuntimeError("a vertex that fools the classifier did not fool the deployed model: the "
                                   "quantizer is not the binarization certify assumed")
        return Certificate(BROKEN, free, nodes, vertices, how, x_adv)

    while stack:
        if nodes >= node_budget:
            return Certificate(UNKNOWN, free, nodes, vertices, f"search budget of {node_budget} boxes spent")
        b_lo, b_hi = stack.pop()
        nodes += 1
        if float(bound(b_lo, b_hi, yv)) > 0:
            continue
        open_ = (b_lo != b_hi).flatten().nonzero().flatten()
        if len(open_) <= enum_limit:
            v, seen = _enumerate(classifier, b_lo, open_, yv)
            vertices += seen
            if v is not None:
                return broken(v, f"enumeration of {len(open_)} free pixels")
            continue
        # the most promising vertex: each free bit set by the sign of the margin's gradient at the centre
        centre = ((b_lo + b_hi) / 2).requires_grad_(True)
        logits = classifier(centre)
        other = logits.detach().clone()
        other[0, int(y)] = float("-inf")
        j = int(other.argmax(1))
        (g,) = torch.autograd.grad(logits[0, int(y)] - logits[0, j], centre)
        v = torch.where(g < 0, b_hi, b_lo)
        vertices += 1
        with torch.no_grad():
            if int(classifier(v).argmax(1)) != int(y):
                return broken(v, "the gradient's vertex of a box")
        # split on the free pixel with the largest first-order influence
        score = (g.abs() * (b_hi - b_lo)).flatten()
        i = int(score.argmax())
        for bit in (0.0, 1.0):
            c_lo, c_hi = b_lo.clone().flatten(), b_hi.clone().flatten()
            c_lo[i] = c_hi[i] = bit
            stack.append((c_lo.view_as(b_lo), c_hi.view_as(b_hi)))
    how = "bound" if nodes == 1 else f"branch and bound, {nodes} boxes"
    return Certificate(CERTIFIED, free, nodes, vertices, how)


BOUNDS = ("auto", "linear", "crown", "ibp")


def _bound_fn(classifier, example, bound: str):
    """``f(lo, hi, y)``: the margin lower bound the search uses. ``"ibp"``: interval bounds;
    ``"linear"``: the larger of the forward linear bound (:class:`_Symbolic`) and the interval
    bound (both sound, so their maximum is); ``"crown"``: the same with CROWN, tighter and two
    orders of magnitude slower; ``"auto"``: ``"linear"`` where the network is a chain the linear
    bounds handle, else ``"ibp"``. The tighter bound runs only where the interval bound fails."""
    check_choice(bound, BOUNDS, "bound")
    gm = _graph(classifier)

    def ibp(lo, hi, y):
        return margin_lower_bound(classifier, lo, hi, y, gm)

    if bound == "ibp":
        return ibp
    try:
        tight = _Crown(classifier, example) if bound == "crown" else _Symbolic(classifier)
    except ValueError:
        if bound != "auto":
            raise
        return ibp

    def both(lo, hi, y):
        first = ibp(lo, hi, y)
        return first if float(first) > 0 else torch.maximum(first, tight.margin(lo, hi, y[0]).view(1))

    return both


def certify(defense: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, enum_limit: int = 10,
            node_budget: int = 200, bound: str = "auto", progress: bool = False) -> list[Certificate]:
    """Per image of ``x`` (labels ``y``), the exact verdict on the deployed binarizing ``defense``
    (:func:`binarizer_of`) within the L-infinity ball of radius ``eps``: certified, broken (with
    the real input that breaks it, verified on the deployed model), unknown (more than
    ``node_budget`` boxes would be needed) or misclassified. ``enum_limit``: a box with at most that
    many free pixels is enumerated (``2**enum_limit`` images). ``bound``: the margin bound of each
    box (:data:`BOUNDS`; ``"auto"``: forward linear bounds where the classifier is a chain of affine
    layers and ReLUs, interval bounds otherwise)."""
    eps = check_eps(eps)
    check_inputs(x, y)
    enum_limit = check_int(enum_limit, "enum_limit", minimum=0, maximum=20)
    node_budget = check_int(node_budget, "node_budget")
    quantizer, classifier = binarizer_of(defense)
    was = classifier.training
    classifier.eval()
    try:
        bound_fn = _bound_fn(classifier, x[:1], bound)
        lo, hi = reachable(quantizer, x, eps)

        def deployed(v):
            return classifier(quantizer(v))

        from .progress import progress as _progress

        out = []
        for i in _progress(range(len(x)), enabled=progress, desc="certify"):
            out.append(_certify_one(classifier, bound_fn, x[i:i + 1], y[i], lo[i:i + 1], hi[i:i + 1], eps, enum_limit,
                                    node_budget, deployed))
        return out
    finally:
        classifier.train(was)


# ------------------------------------------------------------------------------ both bounds at once
@dataclass
class Bounds:
    """Robust accuracy of a binarizing defense at one radius, bounded from both sides on the same
    images: ``lower`` -- the share certified (no reachable binary input changes the prediction);
    ``upper`` -- the share that neither the attacks nor the search broke. The truth lies between;
    ``unknown`` images (the search ran out of budget and no attack broke them) make the gap."""

    lower: "Accuracy"
    upper: "Accuracy"
    certificates: list = field(repr=False)
    survived: torch.Tensor | None = field(default=None, repr=False)  #: per image: the attacks left it correct

    @property
    def missed(self) -> int:
        """Images the attacks left correct that the search broke: what the attacks missed."""
        if self.survived is None:
            return 0
        return sum(bool(s) and c.status == BROKEN for s, c in zip(self.survived.tolist(), self.certificates))

    def counts(self) -> dict:
        """Images per verdict of the search (:data:`CERTIFIED`, :data:`BROKEN`, :data:`UNKNOWN`,
        :data:`MISCLASSIFIED`)."""
        out = {s: 0 for s in (CERTIFIED, BROKEN, UNKNOWN, MISCLASSIFIED)}
        for c in self.certificates:
            out[c.status] += 1
        return out

    def row(self) -> dict:
        """One table row: both bounds with their 95% intervals (in [0, 1]) and the verdict counts
        (``n_certified``, ``n_broken``, ``n_unknown``, ``n_misclassified``), ``n_missed`` (:attr:`missed`)
        and ``survived``: the attacks' robust accuracy alone, before the search."""
        (llo, lhi), (ulo, uhi) = self.lower.ci, self.upper.ci
        alone = float("nan") if self.survived is None else int(self.survived.sum()) / len(self.survived)
        return {"eps": self.lower.eps, "n": self.lower.n, "certified": self.lower.value, "certified_lo": llo,
                "certified_hi": lhi, "attacked": self.upper.value, "attacked_lo": ulo, "attacked_hi": uhi,
                "gap": self.upper.value - self.lower.value, **{f"n_{k}": v for k, v in self.counts().items()},
                "n_missed": self.missed, "survived": alone}


def two_sided(defense: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, survived: torch.Tensor,
              attack: str = "attacks", **kw) -> Bounds:
    """Both bounds on the robust accuracy of the binarizing ``defense`` at L-infinity ``eps``:
    :func:`certify` on every image (``kw``: its budget), and ``survived`` -- per image, whether the
    attacks (``attack``: their name, for the label) left it classified correctly; the search budget
    given is recorded with the lower bound. The upper bound
    counts an image robust only if it survived the attacks and the search did not break it; the
    lower bound counts the certified ones. A certified image that an attack broke is a bug in one
    of them, and raises."""
    from .metrics import Accuracy

    survived = torch.as_tensor(survived, dtype=torch.bool).flatten()
    if len(survived) != len(x):
        raise ValueError(f"survived has {len(survived)} entries for {len(x)} images")
    certs = certify(defense, x, y, eps, **kw)
    cert = torch.tensor([c.status == CERTIFIED for c in certs], dtype=torch.bool)
    searched = torch.tensor([c.status in (CERTIFIED, UNKNOWN) for c in certs], dtype=torch.bool)
    if bool((cert & ~survived).any()):
        raise RuntimeError(f"{int((cert & ~survived).sum())} certified images were broken by the attacks: the "
                           "certificate or the attack's scoring is wrong")
    n = len(x)
    lower = Accuracy(int(cert.sum()), n, "certified (bound + branch and bound)", "white-box", "Linf", eps, 0,
                     dict(kw))
    upper = Accuracy(int((survived & searched).sum()), n, f"{attack} + exact search", "white-box", "Linf", eps, 0)
    return Bounds(lower, upper, certs, survived)


def bounds_table(models: dict, x: torch.Tensor, y: torch.Tensor, epsilons, survived, progress: bool = False,
                 **kw) -> "pd.DataFrame":
    """:func:`two_sided` for every binarizing model of ``models`` (the others are skipped) at every
    radius of ``epsilons``, on the same images. ``survived(name, model, eps)`` returns the attacks'
    per-image verdict and their name (``(mask, label)``); ``kw``: the search budget of
    :func:`certify`. One row per model and radius (:meth:`Bounds.row`) with the model's name, the
    attacks' name and the seconds the search took."""
    import time

    import pandas as pd

    from .progress import progress as _progress

    rows = []
    jobs = [(name, m, float(e)) for name, m in models.items() if is_binarizer(m) for e in epsilons]
    if not jobs:
        raise ValueError(f"none of the models {list(models)} binarizes its input: nothing to bound")
    for name, m, e in _progress(jobs, enabled=progress, desc="bounds"):
        mask, label = survived(name, m, e)
        t0 = time.perf_counter()
        b = two_sided(m, x, y, e, mask, label, **kw)
        rows.append({"model": name, **b.row(), "attack": label, "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- a chapter's two bounds
@dataclass(frozen=True)
class SearchBudget:
    """What a chapter spends on the two-sided bounds: the first ``images`` test images (those of its
    cascade), the radii ``epsilons``; per image the search bounds at most ``nodes`` boxes before it says
    "unknown" (an int, or one per radius of ``epsilons``) and enumerates a box with at most ``enum``
    free pixels."""

    images: int = 100
    epsilons: tuple = (0.1, 0.3)
    nodes: int | tuple = 40
    enum: int = 10

    def __post_init__(self):
        check_int(self.images, "images")
        check_int(self.enum, "enum", minimum=0, maximum=20)
        eps = tuple(check_eps(e) for e in self.epsilons)  # a list (a results file's JSON) becomes a tuple
        if not eps:
            raise ValueError("a search budget needs at least one radius")
        object.__setattr__(self, "epsilons", eps)
        if isinstance(self.nodes, list):
            object.__setattr__(self, "nodes", tuple(self.nodes))
        nodes = self.nodes if isinstance(self.nodes, tuple) else (self.nodes,) * len(eps)
        if len(nodes) != len(eps):
            raise ValueError(f"nodes gives {len(nodes)} budgets for {len(eps)} radii")
        for n in nodes:
            check_int(n, "nodes")

    def nodes_at(self, eps: float) -> int:
        """The search's budget of boxes per image at radius ``eps`` (one of :attr:`epsilons`, unless
        :attr:`nodes` is one number for every radius)."""
        if not isinstance(self.nodes, tuple):
            return self.nodes
        for e, n in zip(self.epsilons, self.nodes):
            if abs(e - float(eps)) < 1e-12:
                return n
        raise ValueError(f"the search budget has no radius {eps}; it has {self.epsilons}")


def cascade_bounds(models: dict, x: torch.Tensor, y: torch.Tensor, eps: float, budget: SearchBudget,
                   results: dict | None = None, light=None, light_label: str = "the light cascade", epsilons=None,
                   progress: bool = False) -> "pd.DataFrame":
    """A chapter's two-sided bounds (:func:`bounds_table`) for every binarizing model of ``models`` on
    the first ``budget.images`` images of ``x``, at each radius of ``epsilons`` (default
    ``budget.epsilons``). The attacks behind the upper bound: at the chapter's radius ``eps``, its
    adaptive cascade (``results[name].robust``, run on the same first images); at another radius
    ``light(name, model, x, y, eps)``, the per-image verdict of a cheaper cascade named ``light_label``.
    One row per model and radius, :meth:`Bounds.row`'s columns with ``model``, ``attack`` and ``seconds``."""
    import pandas as pd

    k = min(budget.images, len(x))
    xs, ys = x[:k], y[:k]

    def survived(name, m, e):
        r = (results or {}).get(name)
        if r is not None and abs(e - eps) < 1e-12 and len(r.robust) >= k:
            return r.robust[:k], "the adaptive cascade"
        if light is None:
            raise ValueError(f"no cascade result for {name!r} at eps {e} and no light cascade to run")
        return light(name, m, xs, ys, e), light_label

    tables = [bounds_table(models, xs, ys, (e,), survived, progress=progress, node_budget=budget.nodes_at(e),
                           enum_limit=budget.enum) for e in (epsilons or budget.epsilons)]
    return pd.concat(tables, ignore_index=True)

"""The exact search behind a certificate (:mod:`qutils.certify`): per image a branch and bound over
the reachable binary images -- bound a box, try its most promising vertex, enumerate a small box,
otherwise split on the most influential free pixel."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..checks import check_choice, check_eps, check_inputs, check_int
from .binary import BROKEN, CERTIFIED, MISCLASSIFIED, UNKNOWN, binarizer_of, reachable, realise
from .intervals import _graph, margin_lower_bound
from .linear import _Crown, _Symbolic


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

        from ..progress import progress as _progress

        out = []
        for i in _progress(range(len(x)), enabled=progress, desc="certify"):
            out.append(_certify_one(classifier, bound_fn, x[i:i + 1], y[i], lo[i:i + 1], hi[i:i + 1], eps, enum_limit,
                                    node_budget, deployed))
        return out
    finally:
        classifier.train(was)


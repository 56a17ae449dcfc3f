"""DQA (Rakin et al. 2018, "Defend Deep Neural Networks Against Adversarial Examples via Fixed and
Dynamic Quantized Activation Functions"), section 3: quantized activation functions.

**Fixed quantized activation** (equations 1-3), :class:`FixedQuantizedActivation`::

    y  = tanh(x)                                   (1)
    y' = y / (2 max|y|) + 1/2                      (2)   in [0, 1]
    yn = 2 round((2^n - 1) y') / (2^n - 1) - 1     (3)   2^n levels in [-1, 1]

The paper takes the max "in the y matrix" without saying over what. The scope is a choice
(``scope``): ``"sample"`` (the default: the max over one image's feature map, all channels),
``"channel"`` (per image and channel) or ``"batch"`` (the whole batch tensor, the most literal
reading). With ``"batch"`` an image's prediction depends on the other images of its batch: an
evaluation would then measure the batch, not the model (:func:`batch_dependence` shows it), so
the book uses ``"sample"``. With one bit the scope does not matter: ``yn = sign(x)``. Ties are
rounded up (``floor(u + 1/2)``), so ``x = 0`` has one defined level.

**Dynamic quantized activation** (equations 8-9), :class:`DynamicQuantizedActivation`: ``2^n - 1``
learnable, ordered thresholds ``t_1 < ... < t_{m-1}`` (``m = 2^n``) per layer, trained with the
network. Read term by term, equation 8 outputs ``-1`` below ``t_1``, ``+1`` above ``t_{m-1}``, and
on the interval ``(t_{i-1}, t_i)`` the threshold on its *outer* side: ``t_{i-1}`` in the lower half
(``i <= m/2``), ``t_i`` in the upper half. For two bits that is equation 9: ``-1, t_1, t_3, +1``;
the middle threshold (``t_2``; for n bits ``t_{m/2}``) is a boundary but never an output. That is
the default (``levels="paper"``); ``levels="uniform"`` keeps the fixed quantizer's evenly spaced
levels and learns only where the steps are. Two choices of ours, stated: the input first goes
through ``tanh`` (as in the fixed quantizer, so thresholds and levels live in ``(-1, 1)``; the
paper applies equation 8 to ``x`` and does not say how thresholds and the ``+-1`` levels are kept
consistent), and the thresholds start at the fixed quantizer's (``max|y| = 1``).

**Gradients** (the paper is silent; ``round`` and ``sgn`` have zero derivative). Every quantizer
has a ``backward`` rule, one of :data:`~qutils.defenses.protocol.BACKWARDS`:

* ``"identity"`` -- straight-through (Bengio et al. 2013; DoReFa-Net's rounding): the forward pass
  is exact, the backward pass treats the rounding as the identity. Used for **training**; the
  dynamic thresholds also get their exact gradient as output levels and, as step positions, the
  derivative of a sigmoid step of steepness ``z``. It is also the adaptive attacker's BPDA view.
* ``"auto"`` -- plain autograd of the exact forward pass: the input gradient is exactly zero.
  This is the **deployed** model, and what a naive attack sees.
* ``"sigmoid"`` -- BPDA with the derivative of a smooth staircase (sigmoids of steepness ``z`` per
  step, in units of a step's width).

:class:`DQANet` wraps a network whose activations are quantizers and implements the defense
protocol: deployed with ``"auto"`` (the same function as trained), attacked through the
straight-through and the sigmoid views. :func:`dqa_lenet` and :func:`dqa_resnet18` build the
paper's networks with every activation replaced.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_int
from .protocol import AttackView, Defense, check_backward, check_choice, check_positive, copy_tree

__all__ = ["FixedQuantizedActivation", "DynamicQuantizedActivation", "DQANet", "SCOPES", "LEVELS", "KINDS",
           "quantized_activation", "dqa_lenet", "dqa_resnet18", "fixed_levels", "paper_levels",
           "batch_dependence", "quantizers"]

SCOPES = ("sample", "channel", "batch")  #: what ``max|y|`` of equation 2 is taken over
LEVELS = ("paper", "uniform")  #: the dynamic quantizer's output levels: eq. 8 as printed, or evenly spaced
KINDS = ("fixed", "dynamic")


def fixed_levels(bits: int) -> torch.Tensor:
    """The ``2^bits`` output levels of equation 3: evenly spaced in [-1, 1]."""
    m = 2 ** check_int(bits, "bits", maximum=8)
    return torch.linspace(-1.0, 1.0, m)


def paper_levels(thresholds: torch.Tensor) -> torch.Tensor:
    """Equation 8's output levels for ordered ``thresholds`` ``t_1 .. t_{m-1}`` (``m = 2^n``): ``-1``,
    the lower thresholds ``t_1 .. t_{m/2-1}``, the upper ones ``t_{m/2+1} .. t_{m-1}``, ``+1``."""
    t = torch.as_tensor(thresholds)
    m = t.numel() + 1
    if m < 2 or m & (m - 1):
        raise ValueError(f"expected 2^n - 1 thresholds, got {t.numel()}")
    one = torch.ones(1, dtype=t.dtype, device=t.device)
    return torch.cat([-one, t[: m // 2 - 1], t[m // 2:], one])


def _steps(u: torch.Tensor, edges: torch.Tensor, heights: torch.Tensor, z: float, width: float) -> torch.Tensor:
    """``sum_k heights_k * sigmoid(z (u - edges_k) / width)``: a smooth staircase."""
    shape = (-1,) + (1,) * u.dim()
    return (heights.view(shape) * torch.sigmoid(z * (u.unsqueeze(0) - edges.view(shape)) / width)).sum(0)


def _lookup(levels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``levels[idx]``, with a gradient in ``levels`` that is the same on every run.

    Autograd's backward of ``levels[idx]`` adds millions of upstream gradients into a handful of
    slots with concurrent atomic adds, so on several CPU threads the sum's order, and its last bits,
    change from run to run, and a trained dynamic quantizer with them. Here the forward is the same
    lookup (bit for bit: it adds an exact zero) and each level's gradient is one ordinary reduction,
    ``sum(upstream * (idx == j))``, whose order is fixed."""
    out = levels.detach()[idx]
    if not levels.requires_grad:
        return out
    delta = levels - levels.detach()  # zero, carrying the gradient
    for j in range(levels.numel()):
        out = out + (idx == j) * delta[j]
    return out


class _QuantizedActivation(nn.Module):
    def __init__(self, bits: int, backward: str = "identity", z: float = 4.0):
        super().__init__()
        self.bits = check_int(bits, "bits", maximum=8)
        self.backward = check_backward(backward, ("auto", "identity", "sigmoid"))
        self.z = check_positive(z, "z (the sigmoid steepness)")

    @property
    def n_levels(self) -> int:
        return 2 ** self.bits

    def view(self, backward: str = "auto", z: float | None = None) -> "_QuantizedActivation":
        """The same activation (parameters shared, not copied) with another backward rule."""
        new = copy.copy(self)
        new.backward = check_backward(backward, ("auto", "identity", "sigmoid"))
        new.z = self.z if z is None else check_positive(z, "z (the sigmoid steepness)")
        return new

    def levels(self) -> torch.Tensor:
        raise NotImplementedError


class FixedQuantizedActivation(_QuantizedActivation):
    """Equations 1-3: tanh, the shift by ``max|y|`` (over ``scope``) into [0, 1], n-bit rounding."""

    def __init__(self, bits: int = 2, scope: str = "sample", backward: str = "identity", z: float = 4.0):
        super().__init__(bits, backward, z)
        self.scope = check_choice(scope, SCOPES, "scope")

    def _max(self, y: torch.Tensor) -> torch.Tensor:
        a = y.abs()
        if self.scope == "batch":
            m = a.amax()
        elif self.scope == "sample" or y.dim() == 2:
            m = a.flatten(1).amax(1).view(-1, *([1] * (y.dim() - 1)))
        else:  # channel
            m = a.flatten(2).amax(2).view(*y.shape[:2], *([1] * (y.dim() - 2)))
        return m.clamp_min(1e-12)

    def normalised(self, x: torch.Tensor) -> torch.Tensor:
        """``(2^n - 1) y'``: the value equation 3 rounds (in [0, 2^n - 1])."""
        y = torch.tanh(x)
        return (self.n_levels - 1) * (y / (2 * self._max(y)) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"expected a batch (B, ...), got {tuple(x.shape)}")
        u = self.normalised(x)
        r = torch.floor(u + 0.5)  # round half up; autograd: exactly zero
        if self.backward == "identity":
            r = u + (r - u).detach()
        elif self.backward == "sigmoid":
            k = self.n_levels - 1
            edges = torch.arange(k, dtype=u.dtype, device=u.device) + 0.5
            ones = torch.ones(k, dtype=u.dtype, device=u.device)
            s = _steps(u, edges, ones, self.z, 1.0)
            r = r.detach() + (s - s.detach())
        return 2 * r / (self.n_levels - 1) - 1

    def levels(self) -> torch.Tensor:
        return fixed_levels(self.bits)

    def extra_repr(self) -> str:
        return f"fixed, bits={self.bits}, scope={self.scope}, backward={self.backward}"


class DynamicQuantizedActivation(_QuantizedActivation):
    """Equations 8-9: ``2^n - 1`` learnable ordered thresholds on ``tanh(x)``; output levels as the
    paper prints them (``levels="paper"``) or evenly spaced (``"uniform"``)."""

    def __init__(self, bits: int = 2, levels: str = "paper", backward: str = "identity", z: float = 4.0,
                 thresholds=None):
        super().__init__(bits, backward, z)
        self.level_kind = check_choice(levels, LEVELS, "levels")
        m = self.n_levels
        if thresholds is None:  # the fixed quantizer's steps (max|y| = 1): midway between its levels
            lv = fixed_levels(self.bits)
            thresholds = (lv[:-1] + lv[1:]) / 2
        t = torch.as_tensor(thresholds, dtype=torch.float32).flatten()
        if t.numel() != m - 1:
            raise ValueError(f"a {self.bits}-bit dynamic quantizer has {m - 1} thresholds, got {t.numel()}")
        if not torch.isfinite(t).all() or not (t > -1).all() or not (t < 1).all():
            raise ValueError(f"thresholds must lie strictly inside (-1, 1) (the range of tanh), got {t.tolist()}")
        if not (t[1:] > t[:-1]).all():
            raise ValueError(f"thresholds must be strictly increasing, got {t.tolist()}")
        # ordered by construction: t = -1 + 2 cumsum(softmax(g))[:-1] over m gap logits g
        gaps = torch.diff(torch.cat([torch.tensor([-1.0]), t, torch.tensor([1.0])])) / 2
        self.gap_logits = nn.Parameter(gaps.log())

    @property
    def thresholds(self) -> torch.Tensor:
        """``t_1 < ... < t_{m-1}`` in (-1, 1)."""
        return -1 + 2 * torch.cumsum(F.softmax(self.gap_logits, 0), 0)[:-1]

    def levels(self) -> torch.Tensor:
        """The ``2^n`` output levels, lowest first."""
        if self.level_kind == "paper":
            return paper_levels(self.thresholds)
        return fixed_levels(self.bits).to(self.gap_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"expected a batch (B, ...), got shape {tuple(x.shape)}")
        y = torch.tanh(x)
        t, lv = self.thresholds, self.levels()
        idx = torch.bucketize(y.detach(), t.detach(), right=True)  # number of thresholds <= y
        out = _lookup(lv, idx)  # autograd: zero in x; the levels' own gradient where they are thresholds
        width = 2.0 / (self.n_levels - 1)
        if self.backward == "auto":
            return out + 0 * y
        if self.backward == "identity":
            # x: straight-through; thresholds: as levels (exact) and as step positions (sigmoid steps)
            pos = _steps(y.detach(), t, torch.diff(lv).detach(), self.z, width)
            return out + (y - y.detach()) + (pos - pos.detach())
        s = _steps(y, t.detach(), torch.diff(lv).detach(), self.z, width)
        return out.detach() + (s - s.detach())

    def extra_repr(self) -> str:
        return f"dynamic, bits={self.bits}, levels={self.level_kind}, backward={self.backward}"


def quantized_activation(kind: str, bits: int, **options) -> _QuantizedActivation:
    """A fixed or dynamic quantized activation (``kind`` in :data:`KINDS`)."""
    check_choice(kind, KINDS, "kind")
    return (FixedQuantizedActivation if kind == "fixed" else DynamicQuantizedActivation)(bits, **options)


def quantizers(model: nn.Module) -> list[_QuantizedActivation]:
    """The quantized activations of ``model``, in order."""
    return [m for m in model.modules() if isinstance(m, _QuantizedActivation)]


class DQANet(nn.Module, Defense):
    """A network whose activations are DQA quantizers, with the defense protocol.

    Deployed exactly quantized with plain autograd (``backward="auto"``: a zero input gradient);
    attacked through the straight-through view (the training backward pass: BPDA with the identity)
    and a sigmoid view (BPDA with the derivative of a smooth staircase of steepness
    :attr:`bpda_z`). Deterministic at test time.
    """

    reference = "DQA (Rakin et al. 2018), section 3, eqs. 1-3 and 8-9"
    bpda_z: float = 4.0  #: steepness of the sigmoid BPDA view, per step width (the book's choice)

    def __init__(self, net: nn.Module):
        super().__init__()
        if not quantizers(net):
            raise ValueError("a DQANet needs a network with quantized activations (see dqa_lenet)")
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def quantizers(self) -> list[_QuantizedActivation]:
        return quantizers(self.net)

    def view(self, backward: str = "auto", z: float | None = None) -> "DQANet":
        """The same network (weights and thresholds shared) with every quantizer's backward rule set:
        ``"auto"`` (deployed), ``"identity"`` (straight-through) or ``"sigmoid"`` (smooth BPDA)."""
        new = copy.copy(self)
        new._modules = {"net": copy_tree(self.net, _QuantizedActivation, lambda q: q.view(backward, z))}
        return new

    def deployed(self) -> "DQANet":
        return self.view("auto")

    def attack_views(self) -> dict[str, AttackView]:
        return {
            "straight-through": AttackView(self.view("identity"), "straight-through",
                                           "exact quantized activations forward, identity backward"),
            f"sigmoid z={self.bpda_z:g}": AttackView(self.view("sigmoid", self.bpda_z), "smooth",
                                                     f"exact forward, sigmoid-staircase (z={self.bpda_z:g}) backward",
                                                     same_forward=True),
        }

    def designed_attacks(self, eps: float, steps: int, seed: int = 0, anneal_z=None, anneal_steps=None,
                         **options) -> dict:
        """Annealed BPDA (:class:`~qutils.attacks.AnnealedBPDA`): PGD through sigmoid views whose
        steepness rises along ``anneal_z`` (``anneal_steps`` steps each), so the attack starts on a
        smooth staircase and ends on the exact one. Both options are required."""
        if anneal_z is None or anneal_steps is None:
            raise ValueError("DQA's designed attack needs the options anneal_z and anneal_steps (the chapter's config)")
        from ..attacks.anneal import AnnealedBPDA

        return {"annealed BPDA (designed)": AnnealedBPDA(eps, lambda z: self.view("sigmoid", z), anneal_z, anneal_steps,
                                                         seed=seed)}


def dqa_lenet(kind: str, bits: int, in_channels: int = 1, num_classes: int = 10, input_size: int = 28,
              **options) -> DQANet:
    """LeNet (the paper's MNIST network) with every activation replaced by a quantizer."""
    from ..models import build

    quantized_activation(kind, bits, **options)  # check the arguments once, with a clear error
    net = build("lenet", in_channels, num_classes, input_size,
                activation=lambda: quantized_activation(kind, bits, **options))
    return DQANet(net)


def dqa_resnet18(kind: str, bits: int, in_channels: int = 3, num_classes: int = 10, input_size: int = 32,
                 **options) -> DQANet:
    """ResNet-18 (the paper's CIFAR-10 network) with every ReLU replaced by a quantizer (each ReLU
    module of torchvision's blocks is called twice per block; here each becomes its own quantizer
    object, so a dynamic block shares its thresholds between its two activations)."""
    from ..models import build

    quantized_activation(kind, bits, **options)
    net = build("resnet18", in_channels, num_classes, input_size)
    _replace_relu(net, lambda: quantized_activation(kind, bits, **options))
    return DQANet(net)


def _replace_relu(module: nn.Module, factory) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, factory())
        else:
            _replace_relu(child, factory)


@torch.no_grad()
def batch_dependence(model: nn.Module, x: torch.Tensor, batch_size: int = 100) -> float:
    """Share of images whose predicted class changes between evaluating each image alone and in
    batches of ``batch_size``: 0 for a model whose prediction of an image is its own business."""
    model.eval()
    alone = torch.cat([model(x[i:i + 1]).argmax(1) for i in range(len(x))])
    batched = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    return float((alone != batched).float().mean())

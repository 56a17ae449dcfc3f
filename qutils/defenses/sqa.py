"""SQA ("Stochastic Quantized Activation: to prevent Overfitting in Fast Adversarial Training",
ICLR 2019 submission), section 3 and algorithm 1: a stochastic quantizer after a ReLU.

**Algorithm 1**, :class:`StochasticQuantizedActivation`, on the output ``h`` of a convolution and
its ReLU::

    g = (h - min_J h) / (max_J h - min_J h) * lambda      min-max normalisation, scaled to [0, lambda]
    g = floor(g) + Bernoulli(g - floor(g))                 stochastic rounding (eq. 8)
    g = g / lambda * (max_J h - min_J h) + min_J h         back to the range of h
    backward: the identity                                 (straight-through, Bengio et al. 2013)

The output takes ``lambda + 1`` values, evenly spaced between the min and the max: ``lambda = 1``
is binary, ``2`` ternary. The rounding is *unbiased*: ``E[floor(g) + Bernoulli(g - floor(g))] = g``,
so on average the layer is the identity and each draw adds zero-mean noise of variance
``f (1 - f)`` (``f = g - floor(g)``) in units of a level step. That is what an attacker uses
(``mode="mean"``, the expectation view).

**What "for all j in J" ranges over** (the paper does not say): ``scope="sample"`` -- all units of
one image's feature map, every channel (the book's choice: an image's prediction must not depend on
the other images of its batch); ``"channel"`` -- per image and channel; ``"batch"`` -- the whole
batch tensor (what ``h.min()`` on a batch computes; it makes a prediction depend on the batch).

**Modes**: ``"stochastic"`` (algorithm 1, as deployed: the paper keeps the layer active at test
time), ``"nearest"`` (deterministic rounding to the nearest level, the deterministic quantization
of the paper's figure 1) and ``"mean"`` (the rounding replaced by its expectation: the identity).

**Randomness**: each layer draws from a ``torch.Generator`` it is given (:meth:`SQANet.reseed`
gives every layer of a network one seeded generator per device), so a measurement repeated with the
same seed gives the same draws; without one the layer uses torch's global generator (training,
which :func:`qutils.utils.seed_everything` seeds).

:class:`SQANet` implements the defense protocol: deployed stochastic, random at test time (EOT
applies); its own gradient is already the straight-through one (the paper's backward pass); the
expectation view is the attacker's smooth, noise-free alternative. :func:`sqa_vanilla` builds the
paper's MNIST networks (SMALL and LARGE, SQA after the first and second convolution with lambda 1 and
2), :func:`sqa_resnet` its CIFAR-10 ResNets.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from ..checks import check_int
from .protocol import AttackView, Defense, check_choice, copy_tree

__all__ = ["StochasticQuantizedActivation", "SQANet", "SCOPES", "MODES", "sqa_layers", "sqa_vanilla", "sqa_resnet",
           "insert_after_relu", "levels_of"]

SCOPES = ("sample", "channel", "batch")  #: what "for all j in J" (the min and max of algorithm 1) ranges over
MODES = ("stochastic", "nearest", "mean")


class StochasticQuantizedActivation(nn.Module):
    """Algorithm 1: min-max normalisation over ``scope``, scaling by ``lam``, rounding (``mode``),
    rescaling; the backward pass is the identity."""

    def __init__(self, lam: int = 1, scope: str = "sample", mode: str = "stochastic", generator=None):
        super().__init__()
        self.lam = check_int(lam, "lambda (the number of quantization steps)")
        self.scope = check_choice(scope, SCOPES, "scope")
        self.mode = check_choice(mode, MODES, "mode")
        self.generator = generator  #: a torch.Generator, a callable device -> Generator, or None (global)

    def _range(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.scope == "batch":
            return h.amin(), h.amax()
        dims = 1 if self.scope == "sample" or h.dim() == 2 else 2
        flat = h.flatten(dims)
        shape = h.shape[:dims] + (1,) * (h.dim() - dims)
        return flat.amin(dims).view(shape), flat.amax(dims).view(shape)

    def _generator(self, device):
        # Bernoulli(p) is drawn as U < p (U uniform): the same law as torch.bernoulli, three times faster on a CPU
        return self.generator(device) if callable(self.generator) else self.generator

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() < 2:
            raise ValueError(f"expected a batch (B, ...), got shape {tuple(h.shape)}")
        with torch.no_grad():
            lo, hi = self._range(h)
            span = hi - lo
            flat = span <= 0  # a constant map has nothing to quantize: it passes unchanged
            step = torch.where(flat, torch.ones_like(span), span) / self.lam  # one level step
            g = (h.detach() - lo).div_(step)  # in [0, lambda]
            if self.mode == "stochastic":
                low = torch.floor(g)
                u = torch.rand(g.shape, generator=self._generator(g.device), device=g.device, dtype=g.dtype)
                g = low.add_(u.lt_(g.sub_(low)))  # floor(g) + Bernoulli(g - floor(g)), as U < p
            elif self.mode == "nearest":
                g = g.add_(0.5).floor_()
            out = g.mul_(step).add_(lo)
            if bool(flat.any()):
                out = torch.where(flat, h.detach(), out)
        return h + (out - h.detach())  # value: ``out``; gradient: the identity

    def extra_repr(self) -> str:
        return f"lambda={self.lam}, scope={self.scope}, mode={self.mode}"


def levels_of(h: torch.Tensor, lam: int) -> torch.Tensor:
    """The ``lam + 1`` values algorithm 1 may output for each image of ``h`` (scope ``"sample"``):
    ``(B, lam + 1)``, evenly spaced from the image's min to its max."""
    lam = check_int(lam, "lambda (the number of quantization steps)")
    flat = h.flatten(1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    return lo + torch.arange(lam + 1, dtype=h.dtype, device=h.device) / lam * (hi - lo)


def sqa_layers(model: nn.Module) -> list[StochasticQuantizedActivation]:
    """The SQA layers of ``model``, in order."""
    return [m for m in model.modules() if isinstance(m, StochasticQuantizedActivation)]


def _set_mode(layer: "StochasticQuantizedActivation", mode: str) -> "StochasticQuantizedActivation":
    new = copy.copy(layer)
    new.mode = mode
    return new


class _Generators:
    """One seeded torch.Generator per device, created on first use."""

    def __init__(self, seed: int):
        self.seed, self.by_device = int(seed), {}

    def __call__(self, device) -> torch.Generator:
        key = str(device)
        if key not in self.by_device:
            self.by_device[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self.by_device[key]


class SQANet(nn.Module, Defense):
    """A network with SQA layers, with the defense protocol.

    Deployed as the paper deploys it: stochastic at test time (:attr:`random` is True, so the
    cascade averages gradients over draws: EOT) with the straight-through backward pass of
    algorithm 1 as its own gradient. Attack views: the deployed network itself (autograd =
    straight-through, one draw per pass) and the expectation view (every rounding replaced by its
    mean, the noise-free network).
    """

    reference = "SQA (ICLR 2019 submission), section 3, algorithm 1"
    random = True

    def __init__(self, net: nn.Module, seed: int = 0):
        super().__init__()
        if not sqa_layers(net):
            raise ValueError("an SQANet needs a network with SQA layers (see sqa_vanilla)")
        self.net = net
        self.random = any(layer.mode == "stochastic" for layer in sqa_layers(net))
        self.reseed(seed)

    def reseed(self, seed: int) -> "SQANet":  # noqa: D102 (the protocol's)
        """Give every SQA layer (of this network and its views) a fresh generator seeded with ``seed``."""
        gens = _Generators(seed)
        for layer in sqa_layers(self.net):
            layer.generator = gens
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def sqa_layers(self) -> list[StochasticQuantizedActivation]:
        return sqa_layers(self.net)

    def view(self, mode: str = "stochastic") -> "SQANet":
        """The same network (weights and generators shared) with every SQA layer in ``mode``:
        ``"stochastic"`` (deployed), ``"nearest"`` (deterministic rounding) or ``"mean"`` (expectation)."""
        check_choice(mode, MODES, "mode")
        new = copy.copy(self)
        new._modules = {"net": copy_tree(self.net, StochasticQuantizedActivation, lambda q: _set_mode(q, mode))}
        new.random = mode == "stochastic" and self.random
        return new

    def deployed(self) -> "SQANet":
        return self

    def attack_views(self) -> dict[str, AttackView]:
        return {
            "straight-through": AttackView(self, "autograd", "the deployed network's own gradient: straight-through "
                                                             "rounding, one Bernoulli draw per forward pass"),
            "expectation": AttackView(self.view("mean"), "smooth",
                                      "every stochastic rounding replaced by its mean (the noise-free network)",
                                      random=False, title="expectation view"),
        }

    def designed_attacks(self, eps: float, steps: int, seed: int = 0, eot: int | None = None,
                         confidence: float = 10.0, **options) -> dict:
        """For a network that draws at test time: EOT-PGD (:class:`~qutils.attacks.EOTPGD`), the
        margin loss averaged over ``eot`` draws per step (a confident example, ``confidence`` in
        logits, survives the next draw). ``eot`` is required; none for a deterministic mode."""
        if not self.random:
            return {}
        if eot is None:
            raise ValueError("SQA's designed attack needs the option eot (the chapter's config)")
        from ..attacks.eot import EOTPGD

        return {f"EOT-PGD, {eot} draws (designed)": EOTPGD(eps, steps, eot, confidence=confidence, seed=seed)}


def insert_after_relu(features: nn.Sequential, lams: dict) -> nn.Sequential:
    """``features`` with an SQA layer after its ``i``-th ReLU (0-based) for each ``{i: lam}`` of
    ``lams`` (other SQA options: the SQA layers' own defaults, changed afterwards)."""
    relus = [i for i, m in enumerate(features) if isinstance(m, nn.ReLU)]
    for i in lams:
        if not 0 <= i < len(relus):
            raise ValueError(f"no ReLU number {i} (0-based) among the {len(relus)} of this network")
    out, k = [], 0
    for m in features:
        out.append(m)
        if isinstance(m, nn.ReLU):
            if k in lams:
                out.append(StochasticQuantizedActivation(lams[k]))
            k += 1
    return nn.Sequential(*out)


def sqa_vanilla(size: str = "large", lams=(1, 2), mode: str = "stochastic", scope: str = "sample",
                in_channels: int = 1, num_classes: int = 10, input_size: int = 28, seed: int = 0) -> SQANet:
    """The paper's MNIST network (section 4.1): the vanilla CNN ``"small"`` (16, 32, 64 filters) or
    ``"large"`` (64, 128, 256) with SQA after the ReLU of its first ``len(lams)`` convolutions,
    ``lams[i]`` steps after the ``i``-th (the paper: 1 and 2). ``lams`` may also be a dict
    ``{layer: lam}`` (figure 1 quantizes one layer at a time)."""
    from ..models import build

    check_choice(size, ("small", "large"), "size")
    lams = dict(enumerate(lams)) if not isinstance(lams, dict) else dict(lams)
    if not lams:
        raise ValueError("give at least one layer to quantize")
    for lam in lams.values():
        check_int(lam, "lambda (the number of quantization steps)")
    net = build(size, in_channels, num_classes, input_size)
    net.features = insert_after_relu(net.features, lams)
    for layer in sqa_layers(net):
        layer.mode = check_choice(mode, MODES, "mode")
        layer.scope = check_choice(scope, SCOPES, "scope")
    return SQANet(net, seed)


def sqa_resnet(depth: int = 34, lams=(1, 2), scope: str = "sample", in_channels: int = 3, num_classes: int = 10,
               input_size: int = 32, seed: int = 0) -> SQANet:
    """The paper's CIFAR-10 networks (section 4.1, table 2): ResNet-34 or ResNet-101 with SQA on
    "the output from the first layer ... and its bottleneck module with each lambda = 1 and 2". Our
    reading (the paper gives no more): lambda ``lams[0]`` after the stem's ReLU and ``lams[1]`` after
    the first residual stage."""
    from ..models import build

    check_choice(depth, (34, 101), "depth")
    l1, l2 = (check_int(v, "lambda (the number of quantization steps)") for v in lams)
    net = build(f"resnet{depth}", in_channels, num_classes, input_size)
    net.relu = nn.Sequential(net.relu, StochasticQuantizedActivation(l1, scope))
    net.layer1 = nn.Sequential(net.layer1, StochasticQuantizedActivation(l2, scope))
    return SQANet(net, seed)

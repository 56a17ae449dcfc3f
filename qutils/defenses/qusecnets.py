"""QuSecNets (Ali et al. 2018): a quantization layer placed at the input of a CNN.

Equation (1) of the paper, as printed, reads ``y = 1/(n-1) * sum_{k=1}^{n} sigmoid(z (x - t_k))``:
``n`` sigmoids scaled by ``1/(n-1)`` reach ``n/(n-1) > 1`` and give ``n + 1`` levels. The form
that gives exactly ``n`` levels in [0, 1] uses ``n - 1`` thresholds:

    y = 1/(n-1) * sum_{k=1}^{n-1} sigmoid(z (x - t_k))            (soft mode)
    y = 1/(n-1) * sum_{k=1}^{n-1} 1[x >= t_k]                      (hard mode, the limit z -> inf)

Each sigmoid is a step of height ``1/(n-1)``; a pixel that has passed ``j`` thresholds is mapped
to ``j/(n-1)``, so the levels are ``0, 1/(n-1), ..., 1``. The paper's example -- two levels,
everything below 0.5 to 0, everything from 0.5 on to 1 -- is ``n = 2``, ``t_1 = 0.5``.

* **Constant quantization (CQ)**: fixed thresholds halfway between the levels,
  ``t_k = (k - 1/2)/(n-1)`` (hard CQ is then ``round(x (n-1))/(n-1)``, the bit-depth reduction of
  feature squeezing when ``n = 2**bits``), steep ``z`` (the paper: 50).
* **Variable quantization (VQ)**: the thresholds are parameters trained by backpropagation with
  the network, with a soft ``z`` between 5 and 40 (the paper: 5). "For each input pixel there is one
  quantization function": by default every pixel has its own thresholds. They are kept ordered
  and inside (0, 1) by construction: ``t = cumsum(softmax(g))[:-1]`` over ``n`` gap logits ``g``.

What an attacker sees is decided by the mode. In soft mode the gradient is the sigmoids'
derivative, ``z sigma (1 - sigma) / (n-1)``: tiny for a steep ``z`` away from a threshold, but its
sign is intact. In hard mode autograd returns exactly zero. :meth:`QuantizationLayer.view` gives
the same layer (sharing its thresholds) with another forward mode or a BPDA backward pass:
``backward="identity"`` (straight-through) or ``"sigmoid"`` (the derivative of the soft layer
with a chosen ``z``).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attacks.bpda import bpda
from ..checks import check_int
from .protocol import AttackView, check_backward, check_choice, check_positive
from .squeeze import InputTransformModel

__all__ = ["constant_thresholds", "QuantizationLayer", "QuSecNet", "constant_quantization",
           "variable_quantization", "qusecnets_cost", "qusecnets_loss", "MODES"]

MODES = ("soft", "hard")


def constant_thresholds(levels: int) -> torch.Tensor:
    """CQ's thresholds for ``levels`` levels: ``(k - 1/2)/(levels - 1)``, k = 1 .. levels-1."""
    levels = check_int(levels, "levels", minimum=2)
    return (torch.arange(1, levels, dtype=torch.float32) - 0.5) / (levels - 1)


class QuantizationLayer(nn.Module):
    """The QuSecNets input quantizer (equation 1 in its ``n``-level form; see the module docstring).

    Parameters
    ----------
    levels : number of output levels ``n`` (>= 2).
    z : steepness of the sigmoids (soft mode).
    trainable : ``False`` for CQ (fixed thresholds, a buffer), ``True`` for VQ (learned).
    shape : ``None`` for one set of thresholds shared by all pixels, or the input's ``(C, H, W)``
        for one quantization function per pixel (the paper's VQ).
    mode : ``"soft"`` (sigmoids; used for training) or ``"hard"`` (exact steps).
    backward : ``"auto"`` (autograd of the forward mode), or a BPDA rule for the hard mode:
        ``"identity"`` (straight-through) or ``"sigmoid"`` (gradient of the soft layer with
        steepness ``backward_z``, default ``z``).
    """

    #: each pixel's level depends on that pixel alone and never falls as it rises (thresholds stay
    #: ordered): what :class:`~qutils.attacks.ThresholdFlip` needs of a quantizer
    pixelwise_monotone = True

    def __init__(self, levels: int = 2, z: float = 50.0, trainable: bool = False, shape=None,
                 mode: str = "soft", backward: str = "auto", backward_z: float | None = None):
        super().__init__()
        self.levels = check_int(levels, "levels", minimum=2)
        self.z = check_positive(z, "z")
        self.trainable = bool(trainable)
        self.shape = None if shape is None else tuple(int(s) for s in shape)
        if self.shape is not None and (len(self.shape) != 3 or min(self.shape) < 1):
            raise ValueError(f"shape must be (C, H, W) of the input, got {shape!r}")
        self._set_modes(mode, backward, backward_z)
        t = constant_thresholds(self.levels)
        if self.trainable:
            # n gaps summing to 1: half a level step below t_1 and above t_{n-1}, a full step between
            gaps = torch.full((self.levels,), 1.0 / (self.levels - 1))
            gaps[0] = gaps[-1] = 0.5 / (self.levels - 1)
            g = gaps.log().view(-1, *([1] * len(self.shape or ())))
            self.gap_logits = nn.Parameter(g.expand(-1, *(self.shape or ())).clone())
        else:
            t = t.view(-1, *([1] * len(self.shape or ())))
            self.register_buffer("fixed_thresholds", t.expand(-1, *(self.shape or ())).clone())

    def _set_modes(self, mode, backward, backward_z):
        check_choice(mode, MODES, "mode")
        check_backward(backward)
        if backward != "auto" and mode != "hard":
            raise ValueError("a BPDA backward rule replaces the gradient of the hard mode; use mode='hard'")
        self.mode, self.backward = mode, backward
        self.backward_z = None if backward_z is None else check_positive(backward_z, "backward_z")

    @property
    def thresholds(self) -> torch.Tensor:
        """The ``n - 1`` thresholds, ordered along dim 0: shape ``(n-1,)`` or ``(n-1, C, H, W)``."""
        if self.trainable:
            return torch.cumsum(F.softmax(self.gap_logits, dim=0), dim=0)[:-1]
        return self.fixed_thresholds

    def _diff(self, x: torch.Tensor) -> torch.Tensor:
        """``x - t_k`` for every threshold: shape ``(B, n-1, *x.shape[1:])``."""
        t = self.thresholds
        if self.shape is not None and tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"this layer has one threshold set per pixel of a {self.shape} input; got input "
                             f"of shape {tuple(x.shape)}")
        if self.shape is None:
            t = t.view(1, -1, *([1] * (x.dim() - 1)))
        else:
            t = t.unsqueeze(0)
        return x.unsqueeze(1) - t

    def soft(self, x: torch.Tensor, z: float | None = None) -> torch.Tensor:
        """The sigmoid staircase with steepness ``z`` (default the layer's)."""
        return torch.sigmoid((z or self.z) * self._diff(x)).mean(1)

    def hard(self, x: torch.Tensor) -> torch.Tensor:
        """Exact quantization. Its autograd derivative is the true one: zero (almost everywhere)."""
        d = self._diff(x)
        return ((d >= 0).to(x.dtype) + 0 * d).mean(1)  # `0 * d` keeps the graph: the gradient is exactly 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"expected a batch of inputs (B, ...), got shape {tuple(x.shape)}")
        if self.mode == "soft":
            return self.soft(x)
        if self.backward == "auto":
            return self.hard(x)
        approx = None if self.backward == "identity" else (lambda v: self.soft(v, self.backward_z))
        return bpda(x, lambda v: self.hard(v), approx)

    def view(self, mode: str = "hard", backward: str = "auto", backward_z: float | None = None) -> "QuantizationLayer":
        """The same layer (thresholds shared, not copied) with another forward mode or BPDA backward rule."""
        new = copy.copy(self)
        new._set_modes(mode, backward, backward_z)
        return new

    def extra_repr(self) -> str:
        kind = "VQ" if self.trainable else "CQ"
        where = "shared" if self.shape is None else f"per pixel {self.shape}"
        bw = "" if self.backward == "auto" else f", backward={self.backward}" + (
            f"(z={self.backward_z:g})" if self.backward_z else "")
        return f"{kind}, levels={self.levels}, z={self.z:g}, thresholds {where}, mode={self.mode}{bw}"


class QuSecNet(InputTransformModel):
    """``classifier(quantizer(x))``: the defended network of the paper's figure 2.

    The defense protocol: deployed **exactly quantized** (hard mode: the limit of the paper's steep
    sigmoid, whose input gradient is then exactly zero); attacked through the soft layer the paper
    trains with, the straight-through quantizer and a sigmoid backward pass of steepness
    :attr:`bpda_z`; deterministic at test time.
    """

    reference = "QuSecNets (Ali et al. 2018), section III, eq. 1"
    bpda_z: float = 10.0  #: steepness of the sigmoid backward pass (BPDA): the book's choice

    def __init__(self, quantizer: QuantizationLayer, classifier: nn.Module, check: bool = True):
        if not isinstance(quantizer, QuantizationLayer):
            raise ValueError(f"quantizer must be a QuantizationLayer, got {type(quantizer).__name__}")
        super().__init__(quantizer, classifier, check)

    @property
    def quantizer(self) -> QuantizationLayer:
        return self.transform

    def view(self, mode: str = "hard", backward: str = "auto", backward_z: float | None = None) -> "QuSecNet":
        """The same network (all weights shared) with the quantizer in another mode, e.g.
        ``net.view("hard")`` (deployed exactly quantized) or ``net.view("hard", "identity")`` (the BPDA
        attack model: hard forward, straight-through backward)."""
        new = copy.copy(self)
        new._modules = dict(self._modules)
        new._modules["transform"] = self.quantizer.view(mode, backward, backward_z)
        return new

    def deployed(self) -> "QuSecNet":
        return self.view("hard")

    def as_published(self) -> "QuSecNet":
        """The paper's network: the soft (sigmoid) layer it trains, evaluates and attacks."""
        return self.view("soft")

    def attack_views(self) -> dict[str, AttackView]:
        """Straight-through first (the deployed forward pass: an attack can stop on an image as soon as
        it is fooled), then the sigmoid backward pass, then the paper's soft layer (another function)."""
        return {
            "straight-through": AttackView(self.view("hard", "identity"), "straight-through",
                                           "exact quantization forward, identity backward"),
            f"sigmoid z={self.bpda_z:g}": AttackView(self.view("hard", "sigmoid", self.bpda_z), "smooth",
                                                    f"exact quantization forward, sigmoid (z={self.bpda_z:g}) backward",
                                                    same_forward=True),
            "soft layer": AttackView(self.view("soft"), "smooth",
                                     f"the sigmoid layer the paper trains (z={self.quantizer.z:g})"),
        }


def constant_quantization(levels: int = 2, z: float = 50.0, mode: str = "soft") -> QuantizationLayer:
    """CQ: fixed, evenly spaced thresholds, steep sigmoids (the paper uses z = 50)."""
    return QuantizationLayer(levels, z, trainable=False, mode=mode)


def variable_quantization(levels: int = 2, z: float = 5.0, shape=(1, 28, 28), mode: str = "soft") -> QuantizationLayer:
    """VQ: thresholds learned by backpropagation (one set per pixel unless ``shape=None``); the
    paper trains with z = 5 and recommends 5 <= z <= 40."""
    z = check_positive(z, "z")
    if not 5 <= z <= 40:
        import warnings

        warnings.warn(f"the paper found VQ trains well only for 5 <= z <= 40 (got z={z:g})", stacklevel=2)
    return QuantizationLayer(levels, z, trainable=True, shape=shape, mode=mode)


def qusecnets_cost(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The paper's cost (equation 2), read as the mean squared difference between the predicted
    class probabilities and the one-hot true label, ``1/C sum_c (P(c) - 1[c = y])^2``, averaged
    over the batch. (As printed, ``P(x = c_acc)`` would make the minimum a uniform prediction.)"""
    if logits.dim() != 2 or y.shape != logits.shape[:1]:
        raise ValueError(f"expected logits (B, C) and labels (B,), got {tuple(logits.shape)} and {tuple(y.shape)}")
    p = logits.softmax(1)
    return (p - F.one_hot(y, logits.shape[1]).to(p.dtype)).pow(2).mean(1).mean()


def qusecnets_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``loss_fn`` for :func:`qutils.train.train`: equation 2 on the model's output."""
    return qusecnets_cost(model(x), y)


qusecnets_loss.cache_key = "qusecnets_cost(eq2)"

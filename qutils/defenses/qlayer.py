"""The Q-Layer (multi-head quantization of intermediate features), sections 3.1-3.5 of
"Defensive Quantization Layer for Convolutional Networks against Adversarial Attack" (ICLR 2020
submission).

A CNN is split into an encoder ``N_F`` (the convolution blocks) and the rest. The encoder's output
``z_e`` (n x d x h x w) is read as ``n*h*w`` *panels*, d-dimensional vectors, one per position.

* **Projection** (eq. 4): head ``i`` re-weights the channels of each panel,
  ``z_{e,i} = z_e * Softmax(z_e W_i + b_i)`` (Hadamard product), ``W_i`` d x d, ``b_i`` 1 x d.
  A single head (Q-base) uses the panels as they are.
* **Quantization** (eqs. 2-3): each projected panel is replaced by the nearest row of the head's
  concept matrix ``Q_i`` (nc x d): ``z_{q,i} = I(z_{e,i}) Q_i`` with ``I`` the one-hot of the argmin.
* **Concatenation** (eq. 5): the heads' outputs are concatenated along the channels (K*d).
* **Two paths** (eq. 6, appendix G): the quantized path (Q-path) feeds ``N_Q``; the non-quantized
  concatenation (E-path) feeds ``N_E``, a separate network (default) or the same one (``shared``).
  The Q-path is not differentiable in ``z_e``: its gradient to the encoder is exactly zero.
* **Loss** (eqs. 7-8): ``c1 L_Q + c2 L_E + alpha ||z_q - sg(z_e)||^2 + beta ||sg(z_q) - z_e||^2``.
  The concept matrices learn from ``L_Q`` and the alpha term only; the encoder and the
  projections from ``L_E`` and the beta term only.
* **Inactive concepts** (section 3.5): a concept no panel chose during an epoch is moved towards
  its closest panel (strategy 1, a loss optimised with Adam after the epoch) or re-initialised as
  that panel (strategy 2).

For an attacker, :meth:`QLayerNet.view` gives the E-path (the paper's white-box attack), the
Q-path with autograd (zero input gradient), the Q-path with a straight-through backward pass
through the nearest-concept step (BPDA, end to end), and the Q-path shortcut of eq. 9
(``N_Q(z_e)``: the quantizer skipped).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from ..attacks.bpda import bpda
from ..models import build
from ..models.registry import register
from .protocol import AttackView, Defense, check_backward, check_choice
from .qlayer_quantizer import PATHS, SOFT_TEMPERATURE, QLayer, QLayerOutput
from .qlayer_train import EPath, InactiveConceptUpdate, QLayerLoss

__all__ = ["QLayer", "QLayerOutput", "QLayerNet", "QLayerLoss", "InactiveConceptUpdate", "EPath", "qlayer_cnn",
           "PATHS", "SOFT_TEMPERATURE"]


class QLayerNet(nn.Module, Defense):
    """Encoder -> Q-Layer -> ``head_q`` (Q-path) and ``head_e`` (E-path; the same module when shared).

    ``forward`` returns the logits of ``path``: ``"q"`` (what the paper reports), ``"e"`` or
    ``"shortcut"`` (eq. 9: ``head_q`` applied to the non-quantized features). With
    ``backward="identity"`` the Q-path passes the gradient straight through the nearest-concept
    step to ``z_e`` (BPDA); with ``"auto"`` its input gradient is exactly zero.

    The defense protocol: deployed as the Q-path; attacked through the E-path (the paper's white-box
    attack), the eq.-9 shortcut and the straight-through Q-path; deterministic at test time.
    """

    reference = "Q-Layer (ICLR 2020 submission), sections 3.1-3.5 and eq. 9"

    def __init__(self, encoder: nn.Module, qlayer: QLayer, head_q: nn.Module, head_e: nn.Module | None = None,
                 path: str = "q", backward: str = "auto"):
        super().__init__()
        self.encoder, self.qlayer, self.head_q = encoder, qlayer, head_q
        self.shared = head_e is None
        self.head_e = head_q if head_e is None else head_e
        self.temperature = SOFT_TEMPERATURE
        self._set(path, backward)

    def _set(self, path, backward, temperature=None):
        check_choice(path, PATHS, "path")
        check_backward(backward, ("auto", "identity", "soft"))
        if backward != "auto" and path != "q":
            raise ValueError("a BPDA backward pass (identity or soft) applies to the Q-path (path='q')")
        if temperature is not None:
            t = float(temperature)
            if not math.isfinite(t) or t <= 0:
                raise ValueError(f"temperature must be a positive number, got {temperature!r}")
            self.temperature = t
        self.path, self.backward = path, backward

    def forward_all(self, x: torch.Tensor) -> dict:
        """Both paths at once (training): logits ``yq``, ``ye`` and the Q-Layer's ``zq``, ``ze``, ``index``."""
        out = self.qlayer(self.encoder(x))
        # the Q-path's derivative in ze is zero: L_Q reaches the concepts only (no `0 * ze` needed here,
        # the encoder gets its gradient from the E-path)
        return {"yq": self.head_q(out.zq), "ye": self.head_e(out.ze), "zq": out.zq, "ze": out.ze, "index": out.index}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.path != "q":  # z_q is not used: skip the nearest-concept search
            ze = self.qlayer.features(self.encoder(x))
            return self.head_e(ze) if self.path == "e" else self.head_q(ze)
        out = self.qlayer(self.encoder(x))
        zq = out.zq.detach()
        if self.backward == "identity":
            # BPDA: forward z_q exactly, gradient straight through to z_e
            return self.head_q(bpda(out.ze, lambda _: zq))
        if self.backward == "soft":
            # BPDA: forward z_q exactly, gradient of the soft assignment
            def soft(ze):
                return self.qlayer.soft(ze, self.temperature)

            return self.head_q(bpda(out.ze, lambda _: zq, soft))
        return self.head_q(out.zq + 0 * out.ze)

    def view(self, path: str = "q", backward: str = "auto", temperature: float | None = None) -> "QLayerNet":
        """The same network (every weight shared) with another output path or backward rule:
        ``backward="identity"`` (straight-through) or ``"soft"`` (the gradient of :meth:`QLayer.soft`
        at ``temperature``, default :data:`SOFT_TEMPERATURE`), both with the exact Q-path forward."""
        new = copy.copy(self)
        new._set(path, backward, temperature)
        return new

    def deployed(self) -> "QLayerNet":
        return self.view("q")

    def attack_views(self) -> dict[str, AttackView]:
        # the straight-through view first: the cascade's targeted attack uses the first view
        return {
            "straight-through": AttackView(self.view("q", "identity"), "straight-through",
                                           "the exact Q-path forward, identity gradient through the nearest-concept step"),
            "E-path": AttackView(self.view("e"), "alternative path",
                                 "the non-quantized path N_E(z_e): the paper's white-box attack"),
            "shortcut (eq. 9)": AttackView(self.view("shortcut"), "shortcut",
                                           "N_Q(z_e): the Q-path's network with the quantizer skipped"),
        }

    def designed_attacks(self, eps: float, steps: int, seed: int = 0, soft_temperature: float | None = None,
                         **options) -> dict:
        """APGD with the margin (DLR) loss, its gradient taken through a *soft* nearest-concept
        assignment (a softmax over the distances to the concepts, at ``soft_temperature``, default
        :data:`SOFT_TEMPERATURE`) while the forward pass stays the exact quantizer. Where the
        straight-through identity is a poor derivative (a panel far from a cell boundary does not move
        its concept), the soft assignment says which concept is closest to taking over."""
        from ..attacks import APGD, Adaptive

        view = self.view("q", "soft", temperature=soft_temperature)
        attack = APGD(eps, steps, "Linf", "dlr", seed=seed, early_stop=True)
        return {"APGD-DLR (soft assignment, designed)": Adaptive(attack, view, how="soft assignment")}


def qlayer_cnn(variant: str = "base", heads: int | None = None, concepts: int = 64, shared: bool = False,
               in_channels: int = 1, num_classes: int = 10, input_size: int = 28) -> QLayerNet:
    """CNN_A with a Q-Layer: ``"base"`` (K=1, nc=64) or ``"large"`` (K=4, nc=64) after the convolution
    blocks, ``"inner"`` (K=4, nc=64: "the same parameter setting as the Q-large", section 4.4) between them. ``shared``: one subsequent network for both paths."""
    variant = str(variant).lower()
    if variant not in ("base", "large", "inner"):
        raise ValueError(f"variant must be 'base', 'large' or 'inner', got {variant!r}")
    heads = heads or (1 if variant == "base" else 4)
    cnn = build("cnn_a", in_channels=in_channels, num_classes=num_classes, input_size=input_size)

    def rest(src, in_ch):
        """A fresh copy of the layers after the Q-Layer, taking ``in_ch`` channels."""
        m = copy.deepcopy(src)
        for layer in m.modules():  # independent initialisation for each path's network
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        first = next(l for l in m.modules() if isinstance(l, (nn.Conv2d, nn.Linear)))
        if isinstance(first, nn.Conv2d):
            new = nn.Conv2d(in_ch, first.out_channels, first.kernel_size, first.stride, first.padding)
        else:
            new = nn.Linear(first.in_features * in_ch // 64, first.out_features)
        for parent in m.modules():
            for name, child in parent.named_children():
                if child is first:
                    setattr(parent, name, new)
        return m

    if variant == "inner":
        encoder, after = cnn.block1, nn.Sequential(cnn.block2, cnn.classifier)
    else:
        encoder, after = nn.Sequential(cnn.block1, cnn.block2), cnn.classifier
    channels = 64
    head_q = rest(after, heads * channels)
    head_e = None if shared else rest(after, heads * channels)
    return QLayerNet(encoder, QLayer(channels, heads, concepts), head_q, head_e)


# -- the Q-Layer networks in the model registry (models.build("q_base") once this module is imported) --

_QLAYER_NOTE = ("CNN_A's layers; a separate subsequent network per path (appendix G); "
                "see qutils.defenses.qlayer")


@register("q_base", "Q-Layer paper, section 4.1.2: CNN_A with a Q-Layer (K=1, nc=64) after the convolution blocks",
          _QLAYER_NOTE)
def q_base(in_channels=1, num_classes=10, input_size=28, shared=False):
    return qlayer_cnn("base", shared=shared, in_channels=in_channels, num_classes=num_classes, input_size=input_size)


@register("q_large", "Q-Layer paper, section 4.1.2: CNN_A with a Q-Layer (K=4, nc=64) after the convolution blocks",
          _QLAYER_NOTE)
def q_large(in_channels=1, num_classes=10, input_size=28, shared=False):
    return qlayer_cnn("large", shared=shared, in_channels=in_channels, num_classes=num_classes, input_size=input_size)


@register("q_inner", "Q-Layer paper, section 4.4: CNN_A with a Q-Layer (K=4, nc=64, as Q-large) between the convolution blocks",
          _QLAYER_NOTE)
def q_inner(in_channels=1, num_classes=10, input_size=28, shared=False):
    return qlayer_cnn("inner", shared=shared, in_channels=in_channels, num_classes=num_classes, input_size=input_size)

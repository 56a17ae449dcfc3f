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
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attacks.bpda import bpda
from ..checks import check_int
from ..models import build
from ..models.registry import register
from .protocol import AttackView, Defense, check_backward, check_choice

__all__ = ["QLayer", "QLayerOutput", "QLayerNet", "QLayerLoss", "InactiveConceptUpdate", "EPath", "qlayer_cnn",
           "PATHS", "SOFT_TEMPERATURE"]

PATHS = ("q", "e", "shortcut")
#: default temperature of the soft nearest-concept assignment (:meth:`QLayer.soft`), in units of the
#: mean squared distance of a panel to its nearest concept
SOFT_TEMPERATURE = 0.5


@dataclass
class QLayerOutput:
    # feature maps are stored channels-last (``permute`` views of the panels, no copy): use
    # ``reshape``, not ``view``, to flatten them
    zq: torch.Tensor  #: quantized features, (n, K*d, h, w) or (n, K*d)
    ze: torch.Tensor  #: projected, non-quantized features, same shape
    index: torch.Tensor  #: chosen concept of every panel, (K, n*h*w)


class QLayer(nn.Module):
    """Multi-head quantization of d-channel features with ``heads`` concept matrices of ``concepts`` rows.

    ``project``: apply the eq.-4 re-weighting (default: only with more than one head).
    ``usage`` counts, while training, how often each concept was chosen (for section 3.5).
    """

    def __init__(self, channels: int, heads: int = 1, concepts: int = 64, project: bool | None = None):
        super().__init__()
        self.d = check_int(channels, "channels")
        self.heads = check_int(heads, "heads")
        self.nc = check_int(concepts, "concepts")
        self.project = self.heads > 1 if project is None else bool(project)
        if self.project:
            bound = 1 / math.sqrt(self.d)  # nn.Linear's initialisation
            self.weight = nn.Parameter(torch.empty(self.heads, self.d, self.d).uniform_(-bound, bound))
            self.bias = nn.Parameter(torch.zeros(self.heads, self.d))
        # VQ-VAE's initialisation of the codebook
        self.concepts = nn.Parameter(torch.empty(self.heads, self.nc, self.d).uniform_(-1 / self.nc, 1 / self.nc))
        self.register_buffer("usage", torch.zeros(self.heads, self.nc, dtype=torch.long))

    # -- the three steps --------------------------------------------------------------------
    def panels(self, z: torch.Tensor) -> torch.Tensor:
        """(n, d, h, w) or (n, d) -> (n*h*w, d)."""
        if z.dim() not in (2, 4) or z.shape[1] != self.d:
            raise ValueError(f"expected features (n, {self.d}, h, w) or (n, {self.d}), got {tuple(z.shape)}")
        return z if z.dim() == 2 else z.permute(0, 2, 3, 1).reshape(-1, self.d)

    def _project(self, p: torch.Tensor) -> torch.Tensor:
        """Eq. 4 for every head, heads in the middle: (N, d) -> (N, K, d) (the layout that
        concatenates over heads without a copy)."""
        if not self.project:
            return p.unsqueeze(1).expand(-1, self.heads, -1)
        gate = torch.softmax(torch.einsum("nd,kde->nke", p, self.weight) + self.bias, dim=-1)
        return p.unsqueeze(1) * gate

    def projections(self, p: torch.Tensor) -> torch.Tensor:
        """Eq. 4 for every head: (N, d) -> (K, N, d)."""
        return self._project(p).transpose(0, 1)

    def _scores(self, ze: torch.Tensor) -> torch.Tensor:
        """``||c||^2 - 2 <z, c>`` for (N, K, d) panels and every concept of their head: (N, K, nc), the
        squared distance up to ``||z||^2`` (the same for every concept), one matrix product."""
        c = self.concepts.detach()
        return (c * c).sum(-1) - 2 * torch.einsum("nkd,kcd->nkc", ze, c)

    @torch.no_grad()
    def _assign(self, ze: torch.Tensor) -> torch.Tensor:
        """Eq. 2 on (N, K, d) panels -> (N, K): the concept of the lowest :meth:`_scores`."""
        return self._scores(ze.detach()).argmin(-1)

    def assign(self, ze: torch.Tensor) -> torch.Tensor:
        """Eq. 2: index of the nearest concept of each head for every projected panel: (K, N, d) -> (K, N)."""
        return self._assign(ze.transpose(0, 1)).t()

    def _stacked(self, index: torch.Tensor) -> torch.Tensor:
        """(N, K) per-head indices -> rows of the K concept matrices stacked into one (K*nc, d)."""
        return index + torch.arange(self.heads, device=index.device) * self.nc

    def _lookup(self, index: torch.Tensor) -> torch.Tensor:
        """Eq. 3 on (N, K) indices -> (N, K, d), one gather in the stacked concept matrices."""
        return F.embedding(self._stacked(index), self.concepts.reshape(self.heads * self.nc, self.d))

    def _unpanel(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """(N, K, d) -> concatenation over heads in the layout of ``like``: (n, K*d, h, w) or (n, K*d).
        Feature maps come back in channels-last memory order (a view, no copy; convolutions accept it)."""
        cat = t.reshape(t.shape[0], self.heads * self.d)
        if like.dim() == 2:
            return cat
        n, _, h, w = like.shape
        return cat.view(n, h, w, -1).permute(0, 3, 1, 2)

    def soft(self, ze: torch.Tensor, temperature: float) -> torch.Tensor:
        """A smooth stand-in for eqs. 2-3 on projected, concatenated features ``ze`` (the layout of
        :class:`QLayerOutput`): every panel becomes the softmax-weighted mean of its head's concepts,
        weights ``softmax(-||z - c||^2 / (temperature * mean_z min_c ||z - c||^2))``. As the
        temperature falls it tends to the nearest concept; the scale makes ``temperature`` free of
        the features' units. Used as the derivative of the quantizer in BPDA (``backward="soft"``)."""
        p = (ze.permute(0, 2, 3, 1) if ze.dim() == 4 else ze).reshape(-1, self.heads, self.d)  # (N, K, d)
        d2 = ((p * p).sum(-1, keepdim=True) + self._scores(p)).clamp_min(0)
        scale = d2.min(-1, keepdim=True).values.mean().detach().clamp_min(1e-12)
        w = torch.softmax(-d2 / (temperature * scale), dim=-1)
        return self._unpanel(torch.einsum("nkc,kcd->nkd", w, self.concepts.detach()), ze)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The E-path's input alone (projected, concatenated, not quantized): no nearest-concept search."""
        return self._unpanel(self._project(self.panels(z)), z)

    def forward(self, z: torch.Tensor) -> QLayerOutput:
        ze = self._project(self.panels(z))
        index = self._assign(ze)
        zq = self._lookup(index)
        if self.training:
            self.usage += torch.bincount(self._stacked(index).flatten(), minlength=self.usage.numel()).view_as(self.usage)
        return QLayerOutput(self._unpanel(zq, z), self._unpanel(ze, z), index.t().contiguous())

    # -- section 3.5 ----------------------------------------------------------------------------
    def inactive(self) -> torch.Tensor:
        """Boolean (K, nc): concepts not chosen since the last :meth:`reset_usage`."""
        return self.usage == 0

    def reset_usage(self) -> None:
        self.usage.zero_()

    def inactive_loss(self, panels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Strategy 1's loss: sum over inactive concepts of the squared distance to their closest
        projected panel (``panels``: encoder panels (N, d); the panels are held fixed)."""
        mask = self.inactive() if mask is None else mask
        with torch.no_grad():
            ze = self.projections(panels)
        total = self.concepts.sum() * 0
        for k in range(self.heads):
            if mask[k].any():
                d2 = torch.cdist(self.concepts[k][mask[k]], ze[k]).pow(2)
                total = total + d2.min(1).values.sum()
        return total

    def update_inactive(self, panels: torch.Tensor, strategy: int = 1, steps: int = 10, lr: float = 1e-3) -> int:
        """Apply a section-3.5 strategy to the inactive concepts; returns how many there were.

        ``strategy=1``: ``steps`` Adam steps (learning rate ``lr``, appendix B) on :meth:`inactive_loss`.
        ``strategy=2``: each inactive concept becomes its closest projected panel.
        The usage counts are reset afterwards.
        """
        if strategy not in (1, 2):
            raise ValueError(f"strategy must be 1 (move) or 2 (re-initialise), got {strategy!r}")
        mask = self.inactive().clone()
        count = int(mask.sum())
        if count:
            panels = panels.detach()
            if strategy == 1:
                opt = torch.optim.Adam([self.concepts], lr=lr)
                for _ in range(check_int(steps, "steps")):
                    opt.zero_grad()
                    self.inactive_loss(panels, mask).backward()
                    opt.step()
            else:
                with torch.no_grad():
                    ze = self.projections(panels)
                    for k in range(self.heads):
                        if mask[k].any():
                            nearest = torch.cdist(self.concepts[k][mask[k]], ze[k]).argmin(1)
                            self.concepts[k][mask[k]] = ze[k][nearest]
        self.reset_usage()
        return count

    def extra_repr(self) -> str:
        return f"channels={self.d}, heads={self.heads}, concepts={self.nc}, project={self.project}"


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
        if self.path != "q":  # the quantizer's output is not used: skip the nearest-concept search
            ze = self.qlayer.features(self.encoder(x))
            return self.head_e(ze) if self.path == "e" else self.head_q(ze)
        out = self.qlayer(self.encoder(x))
        if self.backward == "identity":  # BPDA: forward z_q exactly, gradient straight through to z_e
            zq = out.zq.detach()
            return self.head_q(bpda(out.ze, lambda _: zq))
        if self.backward == "soft":  # BPDA: forward z_q exactly, gradient of the soft assignment
            zq = out.zq.detach()
            return self.head_q(bpda(out.ze, lambda _: zq, lambda ze: self.qlayer.soft(ze, self.temperature)))
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


class QLayerLoss:
    """Eq. 7 as a ``loss_fn(model, x, y)`` for :func:`qutils.train.train` (appendix B's defaults)."""

    def __init__(self, c1: float = 1.0, c2: float = 1.0, alpha: float = 1e-3, beta: float = 1e-3):
        for name, v in (("c1", c1), ("c2", c2), ("alpha", alpha), ("beta", beta)):
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a non-negative number, got {v}")
        self.c1, self.c2, self.alpha, self.beta = float(c1), float(c2), float(alpha), float(beta)
        self.cache_key = f"qlayer_loss(c1={c1:g},c2={c2:g},alpha={alpha:g},beta={beta:g})"

    @staticmethod
    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Squared L2 distance per panel (over the channels), averaged over panels and batch."""
        return (a - b).pow(2).sum(1).mean()

    def terms(self, model: QLayerNet, x: torch.Tensor, y: torch.Tensor) -> dict:
        o = model.forward_all(x)
        return {"L_Q": F.cross_entropy(o["yq"], y), "L_E": F.cross_entropy(o["ye"], y),
                "L_Q->E": self.distance(o["zq"], o["ze"].detach()),
                "L_E->Q": self.distance(o["zq"].detach(), o["ze"])}

    def __call__(self, model: QLayerNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = self.terms(model, x, y)
        return self.c1 * t["L_Q"] + self.c2 * t["L_E"] + self.alpha * t["L_Q->E"] + self.beta * t["L_E->Q"]

    def __repr__(self) -> str:
        return f"QLayerLoss(c1={self.c1:g}, c2={self.c2:g}, alpha={self.alpha:g}, beta={self.beta:g})"


class InactiveConceptUpdate:
    """``on_epoch_end`` hook for :func:`qutils.train.train`: after every epoch, apply a section-3.5
    strategy to the concepts no panel chose during the epoch, using the encoder panels of
    ``images`` training images (a fixed, seeded sample). Strategy 1 (the paper's default): Adam at
    1e-3 on the distance to the closest panel (appendix B); strategy 2 (the paper's choice for
    Q-inner on MNIST): re-initialise as the closest panel."""

    def __init__(self, strategy: int = 1, steps: int = 10, lr: float = 1e-3, images: int = 1000, seed: int = 0):
        if strategy not in (1, 2):
            raise ValueError(f"strategy must be 1 (move) or 2 (re-initialise), got {strategy!r}")
        self.strategy, self.steps, self.lr = strategy, check_int(steps, "steps"), float(lr)
        self.images, self.seed = check_int(images, "images"), int(seed)
        self.cache_key = f"inactive_concepts(strategy={strategy},steps={steps},lr={lr:g},images={images})"

    def __call__(self, model: QLayerNet, train_data, epoch: int) -> dict:
        gen = torch.Generator().manual_seed(self.seed + epoch)
        idx = torch.randperm(len(train_data), generator=gen)[:self.images]
        dev = next(model.parameters()).device
        was = model.training
        model.eval()
        with torch.no_grad():
            panels = model.qlayer.panels(model.encoder(train_data.x[idx].to(dev)))
        model.train(was)
        inactive = model.qlayer.update_inactive(panels, self.strategy, self.steps, self.lr)
        return {"inactive_concepts": inactive}


class EPath:
    """``craft_on`` for :func:`qutils.train.train`: FGSM adversarial training of a Q-Layer network
    crafts its examples on the E-path, the only path with an input gradient (on the Q-path FGSM
    would return the clean image and adversarial training would silently be clean training)."""

    cache_key = "qlayer E-path"

    def __call__(self, model: QLayerNet) -> QLayerNet:
        return model.view("e")


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

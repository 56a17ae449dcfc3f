"""GCLN ("Generative Cleaning Networks with Quantized Nonlinear Transform for Deep Neural Network
Defense", ICLR 2020 submission), section 3: a cleaner in front of an unchanged classifier.

**The quantized nonlinear transform** (section 3.2), :class:`QuantizedTransform`: the image is cut
into ``M x M`` blocks, each block goes through the 2-D DCT (equation 1), every coefficient is
rounded to a multiple of ``q`` (equation 2, ``RQ(X) = round(X / q) q``) and the block goes back
through the inverse DCT. We use the *orthonormal* DCT-II (``scipy.fft.dctn(..., norm="ortho")``,
JPEG's scaling for 8 x 8 blocks), so the inverse is the transpose and a coefficient step of ``q``
on pixels in [0, 1] is the paper's ``Qs = 255 q`` on pixels in [0, 255]. The paper gives no ``M``:
we take JPEG's 8 and pad 28 x 28 images by 2 pixels (edge values repeated) to 32 x 32, four blocks
a side; the padding is cropped after the inverse transform.

Rounding has a zero derivative almost everywhere, so the transform hands an attacker an input
gradient of exactly zero (``backward="auto"``); its BPDA view (``backward="identity"``) passes the
gradient straight through the rounding, and because the DCT is orthonormal and the padding is
cropped, straight through the whole transform.

**The generative cleaning network** :math:`G_\\theta` (:class:`CleaningNetwork`): the transform,
then a small convolutional encoder-decoder (the paper gives no architecture; ours: two 3 x 3
convolutions down to half resolution, one transposed convolution back, a sigmoid), whose output
is an image in [0, 1]. **The detector** :math:`D_\\phi` (:class:`Detector`): a small CNN with one
logit, clean or attacked.

**The losses** (section 3.3): :func:`generator_loss` is equation 3, ``L_G = lambda L_P + (1 -
lambda) L_A`` with ``lambda = 0.5``: the perceptual loss of equation 4 on a feature network
``F`` (the paper's pretrained VGG-19 cannot be downloaded here; we use the convolutional features
of a separately trained classifier, never the target, so the cleaner is not fitted to the very
network it protects) and the adversarial loss of equation 5 (cross-entropy of ``D(G(x*))`` against
the label "clean"). :func:`detector_loss` is the detector's side of the min-max game of equation
6. :func:`train_gcln` plays the game, and *recycles* every cleaned image the target classifies
correctly into the detector's clean set (section 3.3's last paragraph).

:class:`GCLN` is the defended model, ``C(G(x))``, with the defense protocol: deterministic at
test time; attack views: BPDA through the rounding (the cleaner's own gradient everywhere else)
and BPDA through the whole cleaner (``G(x)`` forward, the identity backward: Athalye et al.'s
attack on purifiers).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attacks.base import check_inputs
from ..attacks.bpda import bpda
from ..checks import check_int
from ..dct import block_dct, block_idct, dct_matrix
from .protocol import AttackView, Defense, check_backward, check_positive

__all__ = ["dct_matrix", "block_dct", "block_idct", "round_to_step", "QuantizedTransform", "CleaningNetwork",
           "Detector", "FeatureNet", "generator_loss", "detector_loss", "GCLNTrainConfig", "train_gcln", "GCLN",
           "qs_of", "q_of"]


def qs_of(q: float) -> float:
    """The paper's ``Qs`` (pixels in [0, 255]) of a step ``q`` on pixels in [0, 1]."""
    return 255.0 * float(q)


def q_of(qs: float) -> float:
    """The step ``q`` on pixels in [0, 1] of the paper's ``Qs`` (pixels in [0, 255])."""
    return float(qs) / 255.0


def round_to_step(coef: torch.Tensor, q: float) -> torch.Tensor:
    """Equation 2: ``round(coef / q) * q`` (ties to even, as ``torch.round``)."""
    q = check_positive(q, "the quantization step q")
    return torch.round(coef / q) * q


class QuantizedTransform(nn.Module):
    """Section 3.2: pad, blockwise DCT, rounding with step ``q``, inverse DCT, crop.

    ``block``: M; ``pad``: pixels added on every side (edge values repeated) before cutting into
    blocks, cropped at the end; ``backward``: ``"auto"`` (the exact gradient: zero through the
    rounding) or ``"identity"`` (straight-through BPDA)."""

    def __init__(self, q: float, block: int = 8, pad: int = 0, backward: str = "auto"):
        super().__init__()
        self.q = check_positive(q, "the quantization step q")
        self.block = check_int(block, "the block size M")
        self.pad = check_int(pad, "pad", minimum=0)
        self.backward = check_backward(backward, ("auto", "identity"))

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """The blockwise DCT coefficients of the padded image (before rounding)."""
        if x.dim() != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="replicate")
        return block_dct(x, self.block)

    def from_coefficients(self, coef: torch.Tensor) -> torch.Tensor:
        x = block_idct(coef, self.block)
        p = self.pad
        return x[..., p:x.shape[-2] - p, p:x.shape[-1] - p] if p else x

    def quantize(self, coef: torch.Tensor) -> torch.Tensor:
        if self.backward == "identity":
            return bpda(coef, lambda c: round_to_step(c, self.q))
        return round_to_step(coef, self.q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_coefficients(self.quantize(self.coefficients(x)))

    def with_backward(self, backward: str) -> "QuantizedTransform":
        return QuantizedTransform(self.q, self.block, self.pad, backward)

    def extra_repr(self) -> str:
        return f"q={self.q:.4g} (Qs={qs_of(self.q):.3g}), block={self.block}, pad={self.pad}, backward={self.backward}"


class CleaningNetwork(nn.Module):
    """:math:`G_\\theta`: the quantized transform, then a small encoder-decoder with a sigmoid output
    (our architecture; the paper gives none). Its output is an image in [0, 1]."""

    def __init__(self, transform: QuantizedTransform, channels: int = 1, width: int = 32):
        super().__init__()
        if not isinstance(transform, QuantizedTransform):
            raise ValueError(f"transform must be a QuantizedTransform, got {type(transform).__name__}")
        self.transform = transform
        w = int(width)
        self.encoder = nn.Sequential(nn.Conv2d(channels, w, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(w, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.transform(x)
        return torch.sigmoid(self.decoder(self.encoder(t)))

    def with_backward(self, backward: str) -> "CleaningNetwork":
        """The same network (shared weights) with the transform's backward rule replaced."""
        new = nn.Module.__new__(CleaningNetwork)
        nn.Module.__init__(new)
        new.transform = self.transform.with_backward(backward)
        new.encoder, new.decoder = self.encoder, self.decoder
        return new.train(self.training)


class Detector(nn.Module):
    """:math:`D_\\phi`: clean (logit > 0) or attacked. Two strided convolutions and a linear read-out."""

    def __init__(self, channels: int = 1, width: int = 32):
        super().__init__()
        w = int(width)
        self.net = nn.Sequential(nn.Conv2d(channels, w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class FeatureNet(nn.Module):
    """The perceptual loss's feature extractor :math:`F_\\beta`: the convolutional trunk of a trained
    classifier (its ``features`` module or method), frozen."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        feats = getattr(classifier, "features", None)
        if feats is None:
            raise ValueError(f"{type(classifier).__name__} has no `features` trunk to take perceptual features from")
        self.classifier = classifier.eval()
        for p in self.classifier.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(x)

    def train(self, mode: bool = True):  # always evaluated (dropout off), whatever the caller asks
        super().train(mode)
        self.classifier.eval()
        return self


def generator_loss(g: nn.Module, d: nn.Module, feat: nn.Module, x_attacked: torch.Tensor, x_original: torch.Tensor,
                   lam: float = 0.5) -> tuple[torch.Tensor, dict]:
    """Equations 3-5: ``lam * ||F(x_o) - F(G(x*))||^2 + (1 - lam) * CE(D(G(x*)), clean)`` (the squared
    feature distance averaged over features and images). Returns the loss and its two parts."""
    if not 0 <= lam <= 1:
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    if x_attacked.shape != x_original.shape:
        raise ValueError(f"attacked and original images must have one shape, got {tuple(x_attacked.shape)} and "
                         f"{tuple(x_original.shape)}")
    cleaned = g(x_attacked)
    with torch.no_grad():
        target = feat(x_original)
    lp = F.mse_loss(feat(cleaned), target)
    logits = d(cleaned)
    la = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    return lam * lp + (1 - lam) * la, {"perceptual": lp.item(), "adversarial": la.item()}


def detector_loss(d: nn.Module, x_clean: torch.Tensor, x_cleaned: torch.Tensor) -> torch.Tensor:
    """The detector's side of equation 6 (as a loss to minimise): ``-log D(x_o) - log(1 - D(G(x*)))``,
    averaged; ``x_cleaned`` is detached (the detector's step does not move G)."""
    real, fake = d(x_clean), d(x_cleaned.detach())
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


@dataclass
class GCLNTrainConfig:
    """The min-max game's settings (the paper gives only lambda)."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 2e-4  #: Adam for both networks (DCGAN's lr and betas; not stated)
    betas: tuple[float, float] = (0.5, 0.999)
    lam: float = 0.5  #: section 3.3: lambda = 0.5
    clean_inputs: float = 0.5  #: share of each batch of G's inputs that are clean images (ours; see train_gcln)
    pool: int = 2000  #: capacity of the recycled clean set (cleaned images the target gets right)
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size", "pool"):
            check_int(getattr(self, name), name, minimum=0 if name == "pool" else 1)
        check_positive(self.lr, "lr")
        if not 0 <= self.lam <= 1 or not 0 <= self.clean_inputs < 1:
            raise ValueError(f"lam must be in [0, 1] and clean_inputs in [0, 1), got {self.lam}, {self.clean_inputs}")
        self.betas = tuple(self.betas)


def train_gcln(g: CleaningNetwork, d: Detector, feat: nn.Module, target: nn.Module, x_clean: torch.Tensor,
               x_attacked: torch.Tensor, y: torch.Tensor, cfg: GCLNTrainConfig, device=None,
               progress: bool = False) -> list[dict]:
    """Section 3.3's training: ``x_attacked[i]`` is an attacked version of ``x_clean[i]`` (label
    ``y[i]``). Each step: (1) the detector learns clean (real clean images and recycled ones) against
    cleaned; (2) G minimises equation 3 on a batch of attacked images -- a share ``cfg.clean_inputs``
    of which are clean images instead, our addition: the deployed cleaner sees clean images too, and
    the paper reports its clean accuracy; (3) the cleaned images the target classifies correctly go
    into the recycled clean set. Returns one row per epoch (losses, recycled images, the detector's
    accuracy)."""
    from ..progress import progress as _progress
    from ..utils import seed_everything

    check_inputs(x_clean, y)
    check_inputs(x_attacked, y)
    if x_clean.shape != x_attacked.shape:
        raise ValueError("x_clean and x_attacked must have one shape (pairs of an image and its attacked version)")
    device = device or next(g.parameters()).device
    gen = seed_everything(cfg.seed)
    g.to(device).train()
    d.to(device).train()
    feat.to(device).eval()
    target.to(device).eval()
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr, betas=cfg.betas)
    n, bs = len(x_clean), cfg.batch_size
    pool = torch.empty((0,) + tuple(x_clean.shape[1:]))
    history = []
    for epoch in _progress(range(cfg.epochs), enabled=progress, desc="GCLN"):
        order = torch.randperm(n, generator=gen)
        sums = {"d_loss": 0.0, "g_loss": 0.0, "perceptual": 0.0, "adversarial": 0.0, "d_acc": 0.0}
        steps = recycled = 0
        for i in range(0, n - bs + 1, bs):
            j = order[i:i + bs]
            xo, xa, yb = x_clean[j], x_attacked[j].clone(), y[j]
            swap = torch.rand(len(j), generator=gen) < cfg.clean_inputs
            xa[swap] = xo[swap]
            xo, xa, yb = xo.to(device), xa.to(device), yb.to(device)
            real = xo
            if len(pool):
                k = torch.randint(len(pool), (bs // 2,), generator=gen)
                real = torch.cat([xo[: bs - bs // 2], pool[k].to(device)])
            with torch.no_grad():
                cleaned = g(xa)
            opt_d.zero_grad()
            ld = detector_loss(d, real, cleaned)
            ld.backward()
            opt_d.step()
            opt_g.zero_grad()
            lg, parts = generator_loss(g, d, feat, xa, xo, cfg.lam)
            lg.backward()
            opt_g.step()
            with torch.no_grad():
                cleaned = g(xa)
                ok = target(cleaned).argmax(1) == yb
                d_acc = 0.5 * ((d(real) > 0).float().mean() + (d(cleaned) <= 0).float().mean())
            if cfg.pool and ok.any():
                pool = torch.cat([cleaned[ok].cpu(), pool])[: cfg.pool]
                recycled += int(ok.sum())
            for k_, v in (("d_loss", ld.item()), ("g_loss", lg.item()), ("d_acc", d_acc.item()), *parts.items()):
                sums[k_] += v
            steps += 1
        history.append({"epoch": epoch + 1, **{k: v / max(steps, 1) for k, v in sums.items()},
                        "recycled": recycled, "pool": len(pool)})
    g.eval()
    d.eval()
    return history


class GCLN(nn.Module, Defense):
    """The defended model ``C(G(x))``: the cleaning network in front of the unchanged target."""

    reference = "GCLN (ICLR 2020 submission), section 3"
    random = False

    def __init__(self, cleaner: CleaningNetwork, target: nn.Module, check: bool = True):
        super().__init__()
        if not isinstance(cleaner, CleaningNetwork):
            raise ValueError(f"cleaner must be a CleaningNetwork, got {type(cleaner).__name__}")
        self.cleaner, self.target, self.check = cleaner, target, check

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.check:
            check_inputs(x)
        return self.target(self.cleaner(x))

    def clean(self, x: torch.Tensor) -> torch.Tensor:
        """``G(x)``: what the target sees."""
        return self.cleaner(x)

    def deployed(self) -> "GCLN":
        return self

    def attack_views(self) -> dict[str, AttackView]:
        through = GCLN(self.cleaner.with_backward("identity"), self.target, self.check).train(self.training)
        skip = _Purifier(self.cleaner, self.target, self.check).train(self.training)
        return {
            "straight-through": AttackView(through, "straight-through",
                                           "rounding forward, identity backward; the gradient of G's layers"),
            "identity through G": AttackView(skip, "straight-through",
                                             "G forward, the identity backward (BPDA of the whole cleaner)"),
        }


class _Purifier(nn.Module):
    """``C(G(x))`` with ``G``'s backward pass replaced by the identity."""

    def __init__(self, cleaner, target, check=True):
        super().__init__()
        self.cleaner, self.target, self.check = cleaner, target, check

    def forward(self, x):
        if self.check:
            check_inputs(x)
        return self.target(bpda(x, self.cleaner))

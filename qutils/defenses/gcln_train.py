"""Training GCLN's cleaner (section 3.3): the losses and the min-max game.

:func:`generator_loss` is equation 3, ``L_G = lambda L_P + (1 - lambda) L_A`` with ``lambda = 0.5``:
the perceptual loss of equation 4 on a feature network ``F`` (the paper's pretrained VGG-19 cannot
be downloaded here; we use the convolutional features of a separately trained classifier, never the
target, so the cleaner is not fitted to the very network it protects) and the adversarial loss of
equation 5 (cross-entropy of ``D(G(x*))`` against the label "clean"). :func:`detector_loss` is the
detector's side of the min-max game of equation 6. :func:`train_gcln` plays the game, and *recycles*
every cleaned image the target classifies correctly into the detector's clean set (section 3.3's last
paragraph). The networks and the defense itself are in :mod:`qutils.defenses.gcln`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_inputs, check_int, check_positive
from .gcln import CleaningNetwork, Detector

__all__ = ["generator_loss", "detector_loss", "GCLNTrainConfig", "train_gcln"]


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

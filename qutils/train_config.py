"""What a training run is: every setting (:class:`TrainConfig`), its optimizer and its learning-rate
schedule (``torch.optim``). The loop itself is :mod:`qutils.train`; every setting here is part of the
checkpoint cache's key (:func:`qutils.train.get_trained`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .checks import check_int, check_positive
from .profiles import Profile

__all__ = ["TrainConfig", "make_optimizer", "make_scheduler", "OPTIMIZERS", "SCHEDULES", "ADVERSARIAL", "SELECTION",
           "ITERATES", "PER_STEP_SCHEDULES"]

OPTIMIZERS = ("adam", "radam", "sgd")
SCHEDULES = ("none", "step", "multistep", "cosine", "onecycle")
PER_STEP_SCHEDULES = ("onecycle",)  #: stepped after every batch; the others after every epoch
ADVERSARIAL = ("none", "fgsm", "pgd", "fgsm_rs")
SELECTION = ("clean", "mixed", "last")
ITERATES = ("first", "last")  #: which PGD iterate adversarial training trains on (qutils.attacks.pgd.KEEP)

# Settings added after checkpoints were cached: at these values a run trains exactly as before they
# existed, so they are left out of the cache key there and the cached models stay valid.
_KEY_OMITS_AT = {"adv_iterate": "first", "adv_ramp_epochs": 0, "patience": None, "warmup_frac": 0.3}


@dataclass
class TrainConfig:
    """Every setting of a training run. ``epochs`` and ``batch_size`` default to the profile's."""

    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str = "adam"  #: adam | radam | sgd (torch.optim)
    lr: float = 1e-3
    momentum: float = 0.9  #: sgd only
    weight_decay: float = 0.0
    schedule: str = "none"  #: none | step | multistep | cosine (torch.optim.lr_scheduler, per epoch)
    step_size: int = 30  #: epochs between decays for ``step``
    milestones: tuple[int, ...] = ()  #: epochs of decay for ``multistep``
    gamma: float = 0.1  #: decay factor
    adv: str = "none"  #: none | fgsm | pgd | fgsm_rs adversarial training
    adv_eps: float = 0.3
    adv_steps: int = 10  #: PGD steps during adversarial training
    #: the PGD iterate trained on: "last" is Madry et al.'s (the loss maximiser); "first" (the first
    #: misclassified iterate, the book's training before issue 27) is kept for the cached models
    adv_iterate: str = "first"
    adv_ramp_epochs: int = 0  #: epsilon grows linearly from 0 to adv_eps over these epochs (per batch)
    adv_weight: float = 0.5  #: weight of the adversarial loss term
    select: str = "clean"  #: clean | mixed | last
    select_eps: float = 0.3  #: FGSM radius of the mixed validation set
    #: stop when the selection score has not improved for this many epochs (None: run every epoch)
    patience: int | None = None
    warmup_frac: float = 0.3  #: onecycle: the fraction of the steps spent rising to ``lr``
    seed: int = 0

    def __post_init__(self):
        for fld, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("adv", ADVERSARIAL),
                             ("select", SELECTION), ("adv_iterate", ITERATES)):
            v = getattr(self, fld)
            if not isinstance(v, str) or v.lower() not in allowed:
                raise ValueError(f"{fld} must be one of {allowed}, got {v!r}")
            setattr(self, fld, v.lower())
        check_positive(self.lr, "lr")
        if not 0 <= self.adv_weight <= 1:
            raise ValueError(f"adv_weight must be in [0, 1], got {self.adv_weight}")
        if self.adv_eps < 0 or self.select_eps < 0:
            raise ValueError("adv_eps and select_eps must be >= 0")
        for fld in ("epochs", "batch_size", "patience"):
            if getattr(self, fld) is not None:
                check_int(getattr(self, fld), fld)
        check_int(self.adv_ramp_epochs, "adv_ramp_epochs", minimum=0)
        if self.patience is not None and self.select == "last":
            raise ValueError("patience stops on the validation score: use select='clean' or 'mixed'")
        if not 0 < self.warmup_frac < 1:
            raise ValueError(f"warmup_frac must be in (0, 1), got {self.warmup_frac}")
        self.milestones = tuple(self.milestones)

    def cache_key(self) -> dict:
        """Every setting, as the checkpoint cache keys it (settings added later omitted at the value
        that trains as before they existed)."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if not (k in _KEY_OMITS_AT and v == _KEY_OMITS_AT[k])}

    def eps_at(self, step: int, steps_per_epoch: int) -> float:
        """The adversarial radius at optimizer step ``step`` (0-based): ``adv_eps``, ramped linearly
        from 0 over the first ``adv_ramp_epochs`` epochs."""
        if self.adv_ramp_epochs == 0:
            return self.adv_eps
        return self.adv_eps * min(1.0, (step + 1) / (self.adv_ramp_epochs * steps_per_epoch))

    def resolved(self, profile: Profile) -> "TrainConfig":
        """A copy with ``epochs`` / ``batch_size`` taken from the profile where unset."""
        return dataclasses.replace(self, epochs=self.epochs or profile.epochs,
                                   batch_size=self.batch_size or profile.batch_size)


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "radam":
        return torch.optim.RAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int = 1):
    """The learning-rate schedule; ``onecycle`` (Smith & Topin 2019; the cyclic rate of Wong et al.
    2020's FGSM-RS training) rises linearly to ``lr`` over ``warmup_frac`` of the steps and falls
    linearly to nearly 0, stepped after every batch (``steps_per_epoch`` batches an epoch)."""
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                   pct_start=cfg.warmup_frac, anneal_strategy="linear",
                                                   cycle_momentum=cfg.optimizer == "sgd")
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return None

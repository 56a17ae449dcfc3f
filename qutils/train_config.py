"""What a training run is: every setting (:class:`TrainConfig`), its optimizer and its learning-rate
schedule (``torch.optim``). The loop itself is :mod:`qutils.train`; every setting here is part of the
checkpoint cache's key (:func:`qutils.train.get_trained`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .checks import check_int, check_positive
from .profiles import Profile

__all__ = ["TrainConfig", "make_optimizer", "make_scheduler", "OPTIMIZERS", "SCHEDULES", "ADVERSARIAL", "SELECTION"]

OPTIMIZERS = ("adam", "radam", "sgd")
SCHEDULES = ("none", "step", "multistep", "cosine")
ADVERSARIAL = ("none", "fgsm", "pgd", "fgsm_rs")
SELECTION = ("clean", "mixed", "last")


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
    adv_weight: float = 0.5  #: weight of the adversarial loss term
    select: str = "clean"  #: clean | mixed | last
    select_eps: float = 0.3  #: FGSM radius of the mixed validation set
    seed: int = 0

    def __post_init__(self):
        for fld, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("adv", ADVERSARIAL),
                             ("select", SELECTION)):
            v = getattr(self, fld)
            if not isinstance(v, str) or v.lower() not in allowed:
                raise ValueError(f"{fld} must be one of {allowed}, got {v!r}")
            setattr(self, fld, v.lower())
        check_positive(self.lr, "lr")
        if not 0 <= self.adv_weight <= 1:
            raise ValueError(f"adv_weight must be in [0, 1], got {self.adv_weight}")
        if self.adv_eps < 0 or self.select_eps < 0:
            raise ValueError("adv_eps and select_eps must be >= 0")
        for fld in ("epochs", "batch_size"):
            if getattr(self, fld) is not None:
                check_int(getattr(self, fld), fld)
        self.milestones = tuple(self.milestones)

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


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer):
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return None

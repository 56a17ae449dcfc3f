"""The SQA chapter's models (section 4.1): the vanilla CNNs SMALL and LARGE, full precision or
with SQA after the first two convolutions, trained with SGD and a step schedule -- with FGSM
adversarial training (the paper's), PGD adversarial training (Madry et al., the slow reference),
FGSM from a random start (Wong et al. 2020, beyond the paper) or clean (the undefended baseline
and figure 1's deterministic quantization). On CIFAR-10 (``full``) SMALL and LARGE become the
paper's ResNet-34 and ResNet-101."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn as nn

from ... import data as qdata
from ... import models
from ...defenses.protocol import as_defense
from ...defenses.sqa import sqa_resnet, sqa_vanilla
from ...profiles import Profile
from ...progress import progress as _progress
from ...train import TrainConfig, TrainResult, get_trained
from .config import BASELINES, FIGURE1, SPECS, TABLE1, SQAConfig

__all__ = ["book_zoo", "Zoo", "build_model", "train_config", "train_model", "train_zoo", "test_images", "reseeded"]

_RESNETS = {"small": 34, "large": 101}  #: CIFAR-10: table 2's RES34 and RES101


@dataclass
class Zoo:
    runs: dict  #: (name, seed) -> TrainResult

    def __getitem__(self, name) -> nn.Module:
        return self.seeds_of(name)[min(self.seeds_of(name))]

    def models(self, names=None) -> dict:
        """``{name: model}`` of the first seed of each model."""
        names = names or list(dict.fromkeys(n for n, _ in self.runs))
        return {n: self[n] for n in names}

    def seeds_of(self, name) -> dict:
        """``{seed: model}``: every training run of ``name``."""
        out = {s: r.model for (n, s), r in self.runs.items() if n == name}
        if not out:
            raise ValueError(f"no model {name!r} in the zoo; it has {sorted({n for n, _ in self.runs})}")
        return out

    def frame(self) -> pd.DataFrame:
        """One row per training run: model, seed, last epoch's training loss, whether it came from the cache."""
        return pd.DataFrame([{"model": n, "seed": s, "training loss (last epoch)": r.history[-1]["train_loss"]
                              if r.history else float("nan"), "from cache": "yes" if r.from_cache else "no"}
                             for (n, s), r in self.runs.items()])


def build_model(name: str, cfg: SQAConfig, seed: int = 0) -> tuple[nn.Module, dict]:
    """A fresh model called ``name`` (a key of :data:`~.config.SPECS`) and the dict that describes
    it for the checkpoint cache."""
    if name not in SPECS:
        raise ValueError(f"unknown SQA model {name!r}; expected one of {list(SPECS)}")
    spec = SPECS[name]
    info = qdata.DATASETS[qdata.canonical_name(cfg.dataset)]
    shape = dict(in_channels=info.channels, num_classes=info.num_classes, input_size=info.size)
    resnet = cfg.dataset == "cifar10"
    arch = f"resnet{_RESNETS[spec.arch]}" if resnet else spec.arch
    if not spec.sqa:
        return models.build(arch, **shape), {"arch": arch, "activation": "relu"}
    lams = dict(spec.sqa)
    key = {"arch": f"sqa-{arch}", "lams": {str(k): v for k, v in lams.items()}, "scope": cfg.scope,
           "mode": spec.mode}
    if resnet:
        return sqa_resnet(_RESNETS[spec.arch], tuple(lams.values()), cfg.scope, seed=seed, **shape), key
    return sqa_vanilla(spec.arch, lams, spec.mode, cfg.scope, seed=seed, **shape), key


def train_config(name: str, cfg: SQAConfig, seed: int) -> TrainConfig:
    """Section 4.1's SGD with ``name``'s training method (FGSM: half clean, half FGSM; PGD and
    FGSM-RS: the same objective as the methods' authors use; see :class:`~.config.SQAConfig`)."""
    training = SPECS[name].training
    adv = {"adv": training, "adv_eps": cfg.train_eps}
    if training == "pgd":
        adv.update(adv_steps=cfg.pgd_train_steps, adv_weight=1.0)  # Madry et al.: adversarial examples only
    elif training in ("fgsm", "fgsm_rs"):
        adv.update(adv_weight=cfg.fgsm_weight)
    else:
        adv = {}
    return TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer="sgd", lr=cfg.lr,
                       momentum=cfg.momentum, weight_decay=cfg.weight_decay, schedule="step",
                       step_size=cfg.step_size, gamma=0.1, select="last", seed=seed, **adv)


def train_model(name: str, cfg: SQAConfig, profile: Profile, seed: int, device=None,
                progress: bool = False) -> TrainResult:
    """``name`` trained with ``seed`` (cached under its whole configuration)."""
    _, key = build_model(name, cfg, seed)
    limits = [n for n in (profile.train_subset, cfg.train_subset) if n is not None]
    prof = profile.replace(train_subset=min(limits) if limits else None)
    res = get_trained(lambda: build_model(name, cfg, seed)[0], cfg.dataset, train_config(name, cfg, seed),
                      profile=prof, key=key, device=device, progress=progress)
    as_defense(res.model).reseed(cfg.seed)
    return res


def train_zoo(cfg: SQAConfig, profile: Profile, names=None, device=None, progress: bool = True,
              all_seeds: bool = True) -> Zoo:
    """Every model of ``names`` (default: all of :data:`~.config.SPECS`), each for its seeds
    (``cfg.sqa_seeds`` for the SQA models, ``cfg.seeds`` for the others; ``all_seeds=False``: the
    first only)."""
    names = list(names or SPECS)
    plan = [(n, s) for n in names for s in (cfg.seeds_of(n) if all_seeds else cfg.seeds_of(n)[:1])]
    runs = {}
    for name, seed in _progress(plan, enabled=progress, desc="models"):
        runs[(name, seed)] = train_model(name, cfg, profile, seed, device=device)
    return Zoo(runs)


def book_zoo(cfg: SQAConfig, profile: Profile, device=None, progress: bool = True) -> None:
    """Train (or find cached) every model the chapter's pages use for ``cfg.dataset`` (``make models``):
    table 1, the baselines and the undefended LARGE for every seed, and on MNIST figure 1's models."""
    names = [*TABLE1, *BASELINES, "LARGE no defense", "SMALL full"]
    if cfg.dataset == "mnist":
        names += list(FIGURE1)
    train_zoo(cfg, profile, names=list(dict.fromkeys(names)), device=device, progress=progress)


def reseeded(model: nn.Module, seed: int) -> nn.Module:
    """``model`` with its SQA draws restarted from ``seed`` (a model without SQA as it is): call it
    before each measurement so that every number is reproducible on its own."""
    as_defense(model).reseed(seed)
    return model


def test_images(cfg: SQAConfig, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The chapter's fixed test subset (seed 1)."""
    n = n or max(cfg.eval_images, cfg.adaptive_images, cfg.tsne_images * 3)
    test = qdata.load(cfg.dataset, "test").subset(n, seed=1)
    return test.x, test.y

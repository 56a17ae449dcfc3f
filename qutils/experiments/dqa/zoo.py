"""The DQA chapter's models: LeNet with each activation (section 4), trained as the paper says --
clean warm-up epochs, then PGD adversarial training (Madry et al. 2018) -- and the substitutes of
the black-box attacks (table 6)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn as nn

from ... import data as qdata
from ... import models
from ...defenses.dqa import dqa_lenet, dqa_resnet18
from ...profiles import Profile
from ...progress import progress as _progress
from ...train import TrainConfig, TrainResult, get_trained
from .config import SOURCES, DQAConfig, parse_name

__all__ = ["book_zoo", "Zoo", "build_model", "train_model", "train_zoo", "train_substitutes", "test_images"]


@dataclass
class Zoo:
    adversarial: dict  #: name -> TrainResult of the PGD-trained model (seed cfg.seeds[0])
    clean: dict  #: name -> TrainResult of its clean warm-up (the "without adversarial training" models)
    runs: dict  #: (name, seed) -> TrainResult: every adversarially trained run, headline seeds included

    def __getitem__(self, name) -> nn.Module:
        return self.adversarial[name].model

    def models(self, names=None) -> dict:
        """``{name: trained model}`` (a :class:`~qutils.defenses.dqa.DQANet` for the quantized ones)."""
        return {k: self.adversarial[k].model for k in (names or self.adversarial)}

    def seeds_of(self, name) -> dict:
        """``{seed: model}``: every training run of ``name``."""
        return {s: r.model for (n, s), r in self.runs.items() if n == name}

    def frame(self) -> pd.DataFrame:
        """One row per training run: model, seed, whether it came from the cache, train loss."""
        return pd.DataFrame([{"model": n, "seed": s, "PGD-training loss (last epoch)": r.history[-1]["train_loss"]
                              if r.history else float("nan"), "from cache": "yes" if r.from_cache else "no"}
                             for (n, s), r in self.runs.items()])

    def from_cache(self) -> tuple[int, int]:
        rs = list(self.runs.values()) + list(self.clean.values())
        return sum(r.from_cache for r in rs), len(rs)


def build_model(name: str, cfg: DQAConfig) -> tuple[nn.Module, dict]:
    """A fresh model called ``name`` and the dict that describes it for the checkpoint cache."""
    info = qdata.DATASETS[qdata.canonical_name(cfg.dataset)]
    shape = dict(in_channels=info.channels, num_classes=info.num_classes, input_size=info.size)
    parsed = parse_name(name)
    if parsed is None:
        return models.build(cfg.arch, **shape), {"arch": cfg.arch, "activation": "relu"}
    kind, bits = parsed
    opts = {"scope": cfg.scope} if kind == "fixed" else {"levels": cfg.levels, "z": cfg.ste_z}
    make = {"lenet": dqa_lenet, "resnet18": dqa_resnet18}.get(cfg.arch)
    if make is None:
        raise ValueError(f"no DQA version of {cfg.arch!r}; expected lenet or resnet18")
    key = {"arch": f"dqa-{cfg.arch}", "kind": kind, "bits": bits, **opts, "ste": "identity"}
    return make(kind, bits, **shape, **opts), key


def _clean_cfg(cfg: DQAConfig, seed: int) -> TrainConfig:
    return TrainConfig(epochs=cfg.warmup_epochs, batch_size=cfg.batch_size, optimizer="adam", lr=cfg.lr,
                       select="last", seed=seed)


def _adv_cfg(cfg: DQAConfig, seed: int) -> TrainConfig:
    return TrainConfig(epochs=cfg.adv_epochs, batch_size=cfg.batch_size, optimizer="adam", lr=cfg.lr, adv="pgd",
                       adv_eps=cfg.adv_eps, adv_steps=cfg.adv_steps, adv_weight=cfg.adv_weight, select="last",
                       seed=seed)


def train_model(name: str, cfg: DQAConfig, profile: Profile, seed: int, device=None,
                progress: bool = False) -> tuple[TrainResult, TrainResult]:
    """The clean warm-up of ``name`` and, starting from it, its PGD adversarial training:
    ``(clean, adversarial)`` results, each cached under its whole configuration (the adversarial
    run's key includes the warm-up's)."""
    _, key = build_model(name, cfg)
    clean = get_trained(lambda: build_model(name, cfg)[0], cfg.dataset, _clean_cfg(cfg, seed), profile=profile,
                        key=key, device=device, progress=progress)
    warm = {"warm_start": {**_clean_cfg(cfg, seed).cache_key(), "train_subset": profile.train_subset}}
    limits = [n for n in (profile.train_subset, cfg.adv_train_subset) if n is not None]
    adv_profile = profile.replace(train_subset=min(limits) if limits else None)
    adv = get_trained(lambda: copy.deepcopy(clean.model).train(), cfg.dataset, _adv_cfg(cfg, seed),
                      profile=adv_profile, key={**key, **warm}, device=device, progress=progress)
    return clean, adv


def train_zoo(cfg: DQAConfig, profile: Profile, names=None, device=None, progress: bool = True) -> Zoo:
    """Every model of table 1 (``cfg.names()``) for every seed of ``cfg.seeds``, and the headline
    pair (dynamic 2-bit, full precision) for ``cfg.headline_seeds`` too."""
    names = list(names or cfg.names())
    plan = [(n, s) for n in names for s in cfg.seeds]
    plan += [(n, s) for n in cfg.headline if n in names for s in cfg.headline_seeds if (n, s) not in plan]
    adversarial, clean, runs = {}, {}, {}
    for name, seed in _progress(plan, enabled=progress, desc="models"):
        c, a = train_model(name, cfg, profile, seed, device=device)
        runs[(name, seed)] = a
        if seed == cfg.seeds[0]:
            adversarial[name], clean[name] = a, c
    return Zoo(adversarial, clean, runs)


def train_substitutes(cfg: DQAConfig, profile: Profile, device=None) -> dict:
    """Table 6's substitutes, full-precision and clean-trained (seed 7: not any target's seed):
    ``{name: model}``."""
    tcfg = TrainConfig(epochs=cfg.substitute_epochs, batch_size=cfg.batch_size, optimizer="adam", lr=cfg.lr,
                       select="clean", seed=7)
    return {name: get_trained(arch, cfg.dataset, tcfg, profile=profile, device=device, progress=False).model
            for name, arch in SOURCES.items()}


def book_zoo(cfg: DQAConfig, profile: Profile, device=None, progress: bool = True) -> None:
    """Train (or find cached) every model the chapter's pages use for ``cfg.dataset`` (``make models``):
    table 1's zoo and table 6's substitutes."""
    train_zoo(cfg, profile, device=device, progress=progress)
    train_substitutes(cfg, profile, device=device)


def test_images(cfg: DQAConfig, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The chapter's fixed test subset (seed 1)."""
    n = n or max(cfg.eval_images, cfg.adaptive_images, cfg.tsne_images)
    test = qdata.load(cfg.dataset, "test").subset(n, seed=1)
    return test.x, test.y

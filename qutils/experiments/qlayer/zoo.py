"""The Q-Layer chapter's models: how each is built and trained (appendix B), and the test images.

Model names are the paper's: ``CNN``, ``Q-base``, ``Q-large``, ``Q-inner``, ``Q-large, shared``
(appendix G) and ``K=<heads>, nc=<concepts>`` (table 8), each optionally followed by ``" + adv"``
(FGSM adversarial training). :func:`spec` turns a name into an architecture and a training recipe.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn as nn

from ... import data as qdata
from ...defenses.qlayer import EPath, InactiveConceptUpdate, QLayerLoss, qlayer_cnn
from ...profiles import Profile
from ...progress import progress as _progress
from ...train import TrainConfig, best_of_seeds, get_trained
from .config import MAIN, SOURCE_A, SOURCE_B, VAL_SOURCE, QLayerConfig, grid_names

__all__ = ["book_zoo", "Zoo", "spec", "build_model", "train_zoo", "seed_runs", "test_images", "SOURCES"]

#: the source models, none of which is ever evaluated: (name, architecture, config field of its seed)
SOURCES = ((VAL_SOURCE, "cnn_a", "val_source_seed"), (SOURCE_A, "cnn_a", "source_seed"), (SOURCE_B, "cnn_b", "cnn_b_seed"))


@dataclass
class Zoo:
    models: dict  #: name -> trained model (eval mode)
    seeds: pd.DataFrame  #: one row per (model, seed): validation scores and which seed was kept
    results: dict  #: name -> TrainResult of the kept seed (history)

    def __getitem__(self, name):
        return self.models[name]

    def targets(self, names) -> dict:
        """``{name: model}`` for ``names``, in that order."""
        return {k: self.models[k] for k in names}

    def sources(self) -> dict:
        """The two black-box sources, ``{name: model}`` (CNN_A of another seed, CNN_B)."""
        return {SOURCE_A: self.models[SOURCE_A], SOURCE_B: self.models[SOURCE_B]}

    def frame(self) -> pd.DataFrame:
        """The training runs for the page: model, seed, validation accuracies (%), whether kept."""
        df = self.seeds.copy()
        out = pd.DataFrame({"model": df["model"], "seed": df["seed"]})
        for col, label in (("val_mixed", "val. mixed (%)"), ("val_clean", "val. clean (%)")):
            if col in df:
                out[label] = 100 * df[col]
        out["kept"] = df["kept"].map({True: "yes", False: "", 1: "yes", 0: ""}).fillna("")
        return out

    def from_cache(self) -> tuple[int, int]:
        """(training runs loaded from the checkpoint cache, all training runs)."""
        return int(self.seeds["from_cache"].astype(bool).sum()), len(self.seeds)


def _tcfg(cfg: QLayerConfig, adv: bool, select: str = "mixed", seed: int | None = None) -> TrainConfig:
    kw = dict(adv="fgsm", adv_eps=cfg.adv_eps, adv_weight=0.5) if adv else {}
    return TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer="radam", lr=cfg.lr, select=select,
                       select_eps=cfg.select_eps, seed=cfg.seed if seed is None else seed, **kw)


def spec(name: str, cfg: QLayerConfig) -> dict:
    """How to build and train the model called ``name``: ``{"arch": ...}`` for the plain CNN, else the
    Q-Layer variant and its keyword arguments, whether it is adversarially trained, its loss (eq. 7)
    and its inactive-concept hook (section 3.5)."""
    adv = name.endswith(" + adv")
    base = name[:-len(" + adv")] if adv else name
    kw = {}
    if base == "CNN":
        return {"arch": "cnn_a", "kwargs": {}, "adv": adv, "loss": None, "hook": None}
    alpha, beta, strategy = cfg.alpha, cfg.beta, cfg.inactive_strategy
    if base in ("Q-base", "Q-large", "Q-inner"):
        variant = base[2:]
    elif base == "Q-large, shared":
        variant, kw = "large", {"shared": True}
    elif base.startswith("K=") and ", nc=" in base:
        k, nc = base[2:].split(", nc=")
        variant, kw = "base", {"heads": int(k), "concepts": int(nc)}
    else:
        raise ValueError(f"unknown model {name!r}; expected CNN, Q-base, Q-large, Q-inner, 'Q-large, shared' or "
                         f"'K=<heads>, nc=<concepts>', optionally followed by ' + adv'")
    if base == "Q-inner" and cfg.dataset == "mnist":  # appendix B: otherwise it "could not converge"
        alpha, beta, strategy = alpha / 10, beta / 10, 2
    loss = QLayerLoss(1.0, 1.0, alpha, beta)
    hook = InactiveConceptUpdate(strategy, seed=cfg.seed)
    return {"variant": variant, "kwargs": kw, "adv": adv, "loss": loss, "hook": hook}


def build_model(name: str, cfg: QLayerConfig) -> nn.Module:
    """An untrained model called ``name`` (see :func:`spec`)."""
    from ... import models

    info = qdata.DATASETS[cfg.dataset]
    s = spec(name, cfg)
    dims = dict(in_channels=info.channels, num_classes=info.num_classes, input_size=info.size)
    if "arch" in s:
        return models.build(s["arch"], **dims)
    return qlayer_cnn(s["variant"], **s["kwargs"], **dims)


def train_zoo(cfg: QLayerConfig, profile: Profile, names=MAIN, device=None, progress: bool = True) -> Zoo:
    """Train (or load from the cache) the three source models and the target models ``names``.

    Sources are selected on clean validation accuracy. Every target is trained once per seed of
    ``cfg.seeds`` (``cfg.adv_seeds`` when adversarially trained) with RAdam and kept at its best epoch
    and seed on the mixed validation set, whose adversarial half is FGSM at ``cfg.select_eps`` crafted
    on the validation source (section 4.1.1). Q-Layer models use the eq.-7 loss and the
    inactive-concept update; their adversarial training crafts FGSM on the E-path.
    """
    kw = dict(profile=profile, device=device, progress=progress)
    ds = cfg.dataset
    models_, rows, results = {}, [], {}
    for name, arch, seed_field in SOURCES:
        seed = getattr(cfg, seed_field)
        r = get_trained(arch, ds, _tcfg(cfg, adv=False, select="clean", seed=seed), **kw)
        models_[name], results[name] = r.model, r
        rows.append({"model": name, "seed": seed, "val_clean": max(h["val_clean"] for h in r.history),
                     "best_epoch": r.best_epoch, "from_cache": r.from_cache, "kept": True})
    for name in _progress(list(names), enabled=progress, desc="target models"):
        fn, tcfg, seeds, tkw = _target_training(name, cfg, models_[VAL_SOURCE])
        best, table = best_of_seeds(fn, ds, tcfg, seeds, **tkw, **kw)
        models_[name], results[name] = best.model, best
        rows += [{"model": name, **r} for r in table.to_dict("records")]
    return Zoo(models_, pd.DataFrame(rows), results)


def book_zoo(cfg: QLayerConfig, profile: Profile, device=None, progress: bool = True) -> None:
    """Train (or find cached) every model the chapter's pages use for ``cfg.dataset`` (``make models``):
    the main models, and on MNIST Q-inner (page 09) and table 8's grid (page 10; its adversarially
    trained half in the full profile only, as the page)."""
    names = list(MAIN)
    if cfg.dataset == "mnist":
        names += ["Q-inner", "Q-large, shared", *grid_names(cfg).values()]
        if profile.name == "full":
            names += list(grid_names(cfg, adv=True).values())
    train_zoo(cfg, profile, names=list(dict.fromkeys(names)), device=device, progress=progress)


def _target_training(name: str, cfg: QLayerConfig, val_source: nn.Module):
    """How :func:`train_zoo` trains target ``name``: (model_fn, TrainConfig, seeds, get_trained kwargs)."""
    s = spec(name, cfg)
    if "arch" in s:
        fn, key = s["arch"], None
    else:
        fn = lambda: build_model(name, cfg)  # noqa: E731
        key = {"arch": "qlayer_cnn", "variant": s["variant"], **s["kwargs"]}
    seeds = cfg.adv_seeds if s["adv"] else cfg.seeds
    return fn, _tcfg(cfg, adv=s["adv"]), seeds, dict(
        key=key, select_source=val_source, loss_fn=s["loss"], on_epoch_end=s["hook"],
        craft_on=EPath() if s["adv"] and "arch" not in s else None)


def seed_runs(zoo: Zoo, name: str, cfg: QLayerConfig, profile: Profile, device=None, progress: bool = False) -> dict:
    """Every training run behind ``zoo[name]``, one per seed of ``cfg.seeds`` (``cfg.adv_seeds`` for
    "+ adv"): {seed: model}, loaded from the checkpoint cache that :func:`train_zoo` filled (trained
    if missing). ``train_zoo`` keeps the best of them on the validation set; scoring all of them
    shows how much a table cell owes to the initialisation rather than to the method."""
    fn, tcfg, seeds, tkw = _target_training(name, cfg, zoo[VAL_SOURCE])
    return {s: get_trained(fn, cfg.dataset, dataclasses.replace(tcfg, seed=s), profile=profile, device=device,
                           progress=progress, **tkw).model for s in seeds}


def test_images(cfg: QLayerConfig, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The chapter's fixed test subset (seed 1): enough images for every table of ``cfg``."""
    n = n or max(cfg.eval_images, cfg.white_images, cfg.fig2_images, cfg.adaptive_images)
    test = qdata.load(cfg.dataset, "test").subset(n, seed=1)
    return test.x, test.y

"""One training loop for standard and adversarial training, with model selection and caching.

* standard training: minimise cross-entropy on clean images;
* FGSM adversarial training (Goodfellow et al. 2015): ``(1 - w) * CE(clean) + w * CE(FGSM)``;
* PGD adversarial training (Madry et al. 2018): the same with PGD examples (``w = 1`` is
  Madry's pure min-max objective);
* FGSM with a random start (Wong, Rice & Kolter 2020, ``adv="fgsm_rs"``): the same with FGSM-RS
  examples (step ``1.25 eps`` from a uniform start), at FGSM's cost.

One iteration of any of them is :func:`training_step`; :func:`qutils.bench.step_seconds` times it
(the cost of each training method, measured on the same batches). The checkpoint cache and its keys
are :mod:`qutils.cache`.

After every epoch the model is scored on the validation set and the best epoch is kept:
``select="clean"`` (clean accuracy), ``"mixed"`` (clean + FGSM images, half and half; the Q-Layer
paper's section 4.1.1, where the adversarial half is crafted on a separately trained source
model, given as ``select_source``) or ``"last"`` (no selection).

:func:`get_trained` wraps it in the checkpoint cache: the key is a hash of everything that
determines the weights (architecture, dataset, subset sizes, every training setting, seed).
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as qdata
from .attacks import FGSM, FGSMRS, PGD
from .cache import cache_key_of, cached_state, entry_path, state_fingerprint
from .metrics import accuracy, robust_accuracy
from .profiles import Profile, get_device, get_profile
from .progress import progress as _progress
from .train_config import PER_STEP_SCHEDULES, TrainConfig, make_optimizer, make_scheduler
from .train_state import load_progress, save_progress
from .utils import seed_everything

__all__ = ["TrainConfig", "TrainResult", "make_optimizer", "make_scheduler", "train", "get_trained", "best_of_seeds",
           "training_step"]

@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict] = field(default_factory=list)  #: one row per epoch
    best_epoch: int = 0
    from_cache: bool = False

    def history_frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)


def _adversarial_batch(cfg: TrainConfig, model, x, y, step_seed: int, eps: float | None = None):
    eps = cfg.adv_eps if eps is None else eps
    if cfg.adv == "fgsm":
        return FGSM(eps)(model, x, y)
    if cfg.adv == "fgsm_rs":
        return FGSMRS(eps, seed=step_seed)(model, x, y)
    return PGD(eps, steps=cfg.adv_steps, seed=step_seed, keep=cfg.adv_iterate)(model, x, y)


def training_step(model: nn.Module, opt: torch.optim.Optimizer, cfg: TrainConfig, xb: torch.Tensor,
                  yb: torch.Tensor, step_seed: int = 0, loss_fn: Callable | None = None,
                  craft_on: Callable | None = None, eps: float | None = None) -> float:
    """One iteration of ``cfg``'s training method on the batch ``xb, yb``: craft the adversarial
    half (``cfg.adv`` at radius ``eps``, default ``cfg.adv_eps``), ``(1 - w) loss(clean) + w
    loss(adversarial)``, one optimizer step. Returns the loss."""
    loss_fn = loss_fn or (lambda m, x_, y_: F.cross_entropy(m(x_), y_))
    if cfg.adv == "none":
        loss = loss_fn(model, xb, yb)
    else:
        xa = _adversarial_batch(cfg, craft_on(model) if craft_on else model, xb, yb, step_seed, eps)
        w = cfg.adv_weight
        loss = (1 - w) * loss_fn(model, xb, yb) + w * loss_fn(model, xa, yb) if w < 1 else loss_fn(model, xa, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def train(model: nn.Module, train_data: qdata.TensorData, val_data: qdata.TensorData | None,
          cfg: TrainConfig, device: torch.device | None = None, select_source: nn.Module | None = None,
          progress: bool = True, loss_fn: Callable | None = None,
          on_epoch_end: Callable | None = None, craft_on: Callable | None = None,
          resume: str | Path | None = None) -> TrainResult:
    """Train ``model`` in place and return it with its per-epoch history.

    ``resume``: a file where the run's state (weights, optimizer, schedule, random generators,
    history, best epoch so far) is saved after every epoch; a run that finds it there, saved by
    the same configuration, continues after its last finished epoch and ends with the weights of
    an uninterrupted run. It is removed when the run ends. :func:`get_trained` uses it.
    ``cfg.patience``: stop once the selection score has not improved for that many epochs.

    ``loss_fn(model, x, y) -> loss`` replaces the default cross-entropy on logits, for defenses
    with their own objective; adversarial training then applies it to both halves.
    ``on_epoch_end(model, train_data, epoch) -> dict | None`` runs after each epoch's updates,
    before validation (e.g. the Q-Layer's inactive-concept update); a returned dict is added to
    the epoch's history row.
    ``craft_on(model) -> nn.Module`` gives the network that adversarial training (and the mixed
    validation set, when no ``select_source`` is given) crafts its examples on, when the trained
    model's own gradient is useless -- e.g. the Q-Layer's E-path (its Q-path has a zero gradient,
    so FGSM on it would return the clean image).
    """
    if cfg.epochs is None or cfg.batch_size is None:
        cfg = cfg.resolved(get_profile())
    if cfg.select != "last" and val_data is None:
        raise ValueError(f"select={cfg.select!r} needs validation data")
    device = device or get_device()
    gen = seed_everything(cfg.seed)
    model.to(device)
    n_batches = math.ceil(len(train_data) / cfg.batch_size)
    opt = make_optimizer(cfg, model.parameters())
    sched = make_scheduler(cfg, opt, n_batches)
    per_step = cfg.schedule in PER_STEP_SCHEDULES

    # the mixed validation set's adversarial half, when crafted on a fixed source model, is fixed
    val_adv = None
    if cfg.select == "mixed" and select_source is not None:
        _, val_adv = robust_accuracy(select_source.to(device), FGSM(cfg.select_eps), val_data.x, val_data.y,
                                     return_adv=True)

    history, best_score, best_state, best_epoch = [], -math.inf, None, 0
    step, first = 0, 1
    resume = Path(resume) if resume is not None else None
    run_key = f"{cfg.cache_key()}|{len(train_data)}|{None if val_data is None else len(val_data)}"
    saved = load_progress(resume, run_key, model, opt, sched, gen)
    if saved is not None:
        loop = saved["loop"]
        history, best_score, best_state, best_epoch = (loop[k] for k in ("history", "best_score", "best_state",
                                                                          "best_epoch"))
        step, first = saved["step"], saved["epoch"] + 1
    for epoch in range(first, cfg.epochs + 1):
        if cfg.patience is not None and epoch - best_epoch > cfg.patience:
            break
        model.train()
        perm = torch.randperm(len(train_data), generator=gen)
        total, count = 0.0, 0
        bar = _progress(range(n_batches), enabled=progress, desc=f"epoch {epoch}/{cfg.epochs}", leave=False)
        for b in bar:
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            xb, yb = train_data.x[idx].to(device), train_data.y[idx].to(device)
            lr = opt.param_groups[0]["lr"]
            loss = training_step(model, opt, cfg, xb, yb, cfg.seed * 1_000_003 + step, loss_fn, craft_on,
                                 eps=cfg.eps_at(step, n_batches))
            total += loss * len(idx)
            count += len(idx)
            step += 1
            if per_step:
                sched.step()
        if sched is not None and not per_step:
            sched.step()
        # per-step schedules: the rate of the epoch's last step; per-epoch ones: the next epoch's (as before)
        row = {"epoch": epoch, "train_loss": total / count, "lr": lr if per_step else opt.param_groups[0]["lr"]}
        if on_epoch_end is not None:
            row.update(on_epoch_end(model, train_data, epoch) or {})
        if val_data is not None:
            row["val_clean"] = accuracy(model, val_data.x, val_data.y).value
            if cfg.select == "mixed":
                if val_adv is None:
                    adv_acc = robust_accuracy(model, FGSM(cfg.select_eps), val_data.x, val_data.y,
                                              source=craft_on(model) if craft_on else None).value
                else:
                    adv_acc = accuracy(model, val_adv, val_data.y).value
                row["val_fgsm"] = adv_acc
                row["val_mixed"] = (row["val_clean"] + adv_acc) / 2
        history.append(row)
        score = {"clean": row.get("val_clean"), "mixed": row.get("val_mixed"), "last": epoch}[cfg.select]
        if score > best_score:
            best_score, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        if resume is not None and epoch < cfg.epochs:
            save_progress(resume, run_key, epoch, step, model, opt, sched, gen,
                          {"history": history, "best_score": best_score, "best_state": best_state,
                           "best_epoch": best_epoch})
    if best_state is not None:
        model.load_state_dict(best_state)
    if resume is not None and resume.exists():
        resume.unlink()
    model.eval()
    return TrainResult(model, history, best_epoch)


def get_trained(model_fn: str | Callable[[], nn.Module], dataset: str, cfg: TrainConfig | None = None,
                profile: Profile | None = None, key: dict | None = None,
                select_source: nn.Module | None = None, device: torch.device | None = None,
                use_cache: bool = True, progress: bool = True, loss_fn: Callable | None = None,
                model_kwargs: dict | None = None, on_epoch_end: Callable | None = None,
                craft_on: Callable | None = None) -> TrainResult:
    """Train (or load from the checkpoint cache) a model on a dataset's seed-000 training split.

    ``model_fn`` is a registry name (``"cnn_a"``) or a function building the model; with a
    function, ``key`` must describe the model (a JSON-able dict) so the cache can tell models apart.
    The training split is subset to ``profile.train_subset`` images and the validation split to
    ``profile.val_subset``.
    """
    from . import models

    profile = profile or get_profile()
    cfg = (cfg or TrainConfig()).resolved(profile)
    name = qdata.canonical_name(dataset)
    info = qdata.DATASETS[name]
    model_kwargs = dict(model_kwargs or {})
    if isinstance(model_fn, str):
        arch = model_fn
        model_key = {"arch": arch.lower(), "kwargs": model_kwargs}

        def model_fn():
            return models.build(arch, in_channels=info.channels, num_classes=info.num_classes,
                                input_size=info.size, **model_kwargs)
    else:
        if key is None:
            raise ValueError("a model built by a function needs a `key` dict that describes it for the cache")
        model_key = key
    config = {
        "model": model_key,
        "dataset": name,
        "train_subset": profile.train_subset,
        "val_subset": profile.val_subset,
        "train": cfg.cache_key(),
        "select_source": state_fingerprint(select_source) if select_source is not None else None,
        # a loss with settings (e.g. a noise level) names them in `cache_key`
        "loss": cache_key_of(loss_fn, "loss_fn") if loss_fn else None,
    }
    if on_epoch_end is not None:  # only in the key when used, so existing checkpoints stay valid
        config["on_epoch_end"] = cache_key_of(on_epoch_end, "on_epoch_end")
    if craft_on is not None and (cfg.adv != "none" or (cfg.select == "mixed" and select_source is None)):
        config["craft_on"] = cache_key_of(craft_on, "craft_on")
    device = device or get_device()
    seed_everything(cfg.seed)  # the initial weights follow the training seed
    model = model_fn()

    tag = f"{model_key.get('arch', 'model')}-{name}" if isinstance(model_key, dict) else "model"
    entry = entry_path(config, tag)

    def build(m):
        tr = qdata.load(name, "train").subset(profile.train_subset, seed=cfg.seed)
        va = qdata.load(name, "val").subset(profile.val_subset, seed=cfg.seed) if cfg.select != "last" else None
        res = train(m, tr, va, cfg, device=device, select_source=select_source, progress=progress, loss_fn=loss_fn,
                    on_epoch_end=on_epoch_end, craft_on=craft_on,
                    resume=entry.with_name(entry.stem + ".partial") if use_cache else None)
        return {"history": res.history, "best_epoch": res.best_epoch}

    model, extra, hit = cached_state(config, model, build, tag=tag, use_cache=use_cache)
    model.to(device).eval()
    return TrainResult(model, extra.get("history", []), extra.get("best_epoch", 0), from_cache=hit)


def best_of_seeds(model_fn, dataset: str, cfg: TrainConfig, seeds, **kwargs):
    """Train one model per seed (``cfg.seed`` replaced; each cached on its own) and keep the one with
    the best validation score of ``cfg.select`` -- the Q-Layer paper's protocol (appendix B: three
    random initialisations, the best kept on the mixed clean + FGSM validation set).

    Returns ``(best TrainResult, pandas DataFrame with one row per seed)``. ``kwargs`` go to
    :func:`get_trained` (e.g. ``select_source=`` for the mixed set's adversarial half).
    """
    import pandas as pd

    if cfg.select == "last":
        raise ValueError("best_of_seeds needs a validation score: use select='clean' or 'mixed'")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    metric = {"clean": "val_clean", "mixed": "val_mixed"}[cfg.select]
    rows, results = [], []
    for s in seeds:
        res = get_trained(model_fn, dataset, dataclasses.replace(cfg, seed=s), **kwargs)
        score = max(h[metric] for h in res.history)
        rows.append({"seed": s, metric: score, "best_epoch": res.best_epoch, "from_cache": res.from_cache})
        results.append(res)
    best = max(range(len(seeds)), key=lambda i: rows[i][metric])
    table = pd.DataFrame(rows).assign(kept=lambda d: d.index == best)
    return results[best], table

"""One training loop for standard and adversarial training, with model selection and caching.

* standard training: minimise cross-entropy on clean images;
* FGSM adversarial training (Goodfellow et al. 2015): ``(1 - w) * CE(clean) + w * CE(FGSM)``;
* PGD adversarial training (Madry et al. 2018): the same with PGD examples (``w = 1`` is
  Madry's pure min-max objective);
* FGSM with a random start (Wong, Rice & Kolter 2020, ``adv="fgsm_rs"``): the same with FGSM-RS
  examples (step ``1.25 eps`` from a uniform start), at FGSM's cost.

One iteration of any of them is :func:`training_step`; :func:`step_seconds` times it (the cost
of each training method, measured on the same batches).

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
import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as qdata
from .attacks import FGSM, FGSMRS, PGD
from .cache import cached_state
from .checks import check_int
from .metrics import accuracy, robust_accuracy
from .profiles import Profile, get_device, get_profile
from .progress import progress as _progress
from .utils import seed_everything

__all__ = ["TrainConfig", "TrainResult", "make_optimizer", "make_scheduler", "train", "get_trained", "cache_key_of",
           "best_of_seeds", "state_fingerprint", "training_step", "step_seconds"]

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
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
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


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict] = field(default_factory=list)  #: one row per epoch
    best_epoch: int = 0
    from_cache: bool = False

    def history_frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)


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


def _adversarial_batch(cfg: TrainConfig, model, x, y, step_seed: int):
    if cfg.adv == "fgsm":
        return FGSM(cfg.adv_eps)(model, x, y)
    if cfg.adv == "fgsm_rs":
        return FGSMRS(cfg.adv_eps, seed=step_seed)(model, x, y)
    return PGD(cfg.adv_eps, steps=cfg.adv_steps, seed=step_seed)(model, x, y)


def training_step(model: nn.Module, opt: torch.optim.Optimizer, cfg: TrainConfig, xb: torch.Tensor,
                  yb: torch.Tensor, step_seed: int = 0, loss_fn: Callable | None = None,
                  craft_on: Callable | None = None) -> float:
    """One iteration of ``cfg``'s training method on the batch ``xb, yb``: craft the adversarial
    half (``cfg.adv``), ``(1 - w) loss(clean) + w loss(adversarial)``, one optimizer step. Returns the loss."""
    loss_fn = loss_fn or (lambda m, x_, y_: F.cross_entropy(m(x_), y_))
    if cfg.adv == "none":
        loss = loss_fn(model, xb, yb)
    else:
        xa = _adversarial_batch(cfg, craft_on(model) if craft_on else model, xb, yb, step_seed)
        w = cfg.adv_weight
        loss = (1 - w) * loss_fn(model, xb, yb) + w * loss_fn(model, xa, yb) if w < 1 else loss_fn(model, xa, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def step_seconds(methods: dict, batches, device: torch.device | None = None, warmup: int = 1) -> "pd.DataFrame":
    """Seconds per training iteration of each method, measured on the same ``batches``.

    ``methods``: ``{label: (model_fn, TrainConfig)}``, a fresh model per method (``model_fn()``).
    ``batches``: a list of ``(x, y)``; each method runs ``warmup`` untimed iterations on the first
    batch, then one timed iteration per batch, in the same order. Returns one row per method: the
    median and mean seconds per iteration, the number of timed iterations, and the forward passes
    per iteration (counted with a hook: 1 + the attack's gradient steps, + 1 for a clean half)."""
    import statistics
    import time

    import pandas as pd

    batches = list(batches)
    if not batches:
        raise ValueError("step_seconds needs at least one batch")
    device = device or get_device()
    rows = []
    for label, (model_fn, cfg) in methods.items():
        seed_everything(cfg.seed)
        model = model_fn().to(device).train()
        opt = make_optimizer(cfg, model.parameters())
        calls = [0]
        hook = model.register_forward_pre_hook(lambda m, i: calls.__setitem__(0, calls[0] + 1))
        try:
            for _ in range(warmup):
                training_step(model, opt, cfg, batches[0][0].to(device), batches[0][1].to(device))
            calls[0] = 0
            times = []
            for i, (xb, yb) in enumerate(batches):
                xb, yb = xb.to(device), yb.to(device)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                training_step(model, opt, cfg, xb, yb, step_seed=i)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        finally:
            hook.remove()
        rows.append({"method": label, "seconds per iteration": statistics.median(times),
                     "mean seconds": statistics.fmean(times), "iterations": len(times),
                     "forward passes per iteration": calls[0] / len(times), "batch size": len(batches[0][0])})
    return pd.DataFrame(rows)


def train(model: nn.Module, train_data: qdata.TensorData, val_data: qdata.TensorData | None,
          cfg: TrainConfig, device: torch.device | None = None, select_source: nn.Module | None = None,
          progress: bool = True, loss_fn: Callable | None = None,
          on_epoch_end: Callable | None = None, craft_on: Callable | None = None) -> TrainResult:
    """Train ``model`` in place and return it with its per-epoch history.

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
    opt = make_optimizer(cfg, model.parameters())
    sched = make_scheduler(cfg, opt)

    # the mixed validation set's adversarial half, when crafted on a fixed source model, is fixed
    val_adv = None
    if cfg.select == "mixed" and select_source is not None:
        _, val_adv = robust_accuracy(select_source.to(device), FGSM(cfg.select_eps), val_data.x, val_data.y,
                                     return_adv=True)

    history, best_score, best_state, best_epoch = [], -math.inf, None, 0
    n_batches = math.ceil(len(train_data) / cfg.batch_size)
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(len(train_data), generator=gen)
        total, count = 0.0, 0
        bar = _progress(range(n_batches), enabled=progress, desc=f"epoch {epoch}/{cfg.epochs}", leave=False)
        for b in bar:
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            xb, yb = train_data.x[idx].to(device), train_data.y[idx].to(device)
            loss = training_step(model, opt, cfg, xb, yb, cfg.seed * 1_000_003 + step, loss_fn, craft_on)
            total += loss * len(idx)
            count += len(idx)
            step += 1
        if sched is not None:
            sched.step()
        row = {"epoch": epoch, "train_loss": total / count, "lr": opt.param_groups[0]["lr"]}
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
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, history, best_epoch)


def state_fingerprint(model: nn.Module) -> str:
    """A short hash of a model's weights (to key caches of models trained against it)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_key_of(fn: Callable, what: str = "callable") -> str:
    """The explicit ``cache_key`` string of a loss or hook, which names it and its settings in the
    checkpoint cache's key. There is no fallback on names: a lambda is ``"<lambda>"``, a
    ``functools.partial`` or a callable instance has no name, and two of them with other settings
    would share one checkpoint. Set ``fn.cache_key = "my_loss(sigma=0.3)"`` (or an attribute in
    ``__init__``) instead."""
    key = getattr(fn, "cache_key", None)
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"{what} {fn!r} has no `cache_key` string: give it one that names it and its settings, "
                         "e.g. fn.cache_key = 'my_loss(sigma=0.3)', so the checkpoint cache cannot mix it up with "
                         "another loss or hook")
    return key


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
        "train": dataclasses.asdict(cfg),
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

    def build(m):
        tr = qdata.load(name, "train").subset(profile.train_subset, seed=cfg.seed)
        va = qdata.load(name, "val").subset(profile.val_subset, seed=cfg.seed) if cfg.select != "last" else None
        res = train(m, tr, va, cfg, device=device, select_source=select_source, progress=progress, loss_fn=loss_fn,
                    on_epoch_end=on_epoch_end, craft_on=craft_on)
        return {"history": res.history, "best_epoch": res.best_epoch}

    tag = f"{model_key.get('arch', 'model')}-{name}" if isinstance(model_key, dict) else "model"
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

"""Every model of the QuSecNets chapter: trained (or loaded from the checkpoint cache) by one
function, and deployed as the paper deploys them."""
from __future__ import annotations

from ... import data as qdata
from ... import models
from ...defenses import (BitDepthReduction, GaussianAugmentation, InputTransformModel, MedianSmoothing,
                         QuSecNet, brelu_cnn, constant_quantization, qusecnets_loss, variable_quantization)
from ...profiles import Profile
from ...progress import progress as _progress
from ...train import TrainConfig, get_trained
from .config import NO_DEFENSE, SUBSTITUTE, QuSecNetsConfig

__all__ = ["book_zoo", "train_zoo", "defenses", "test_images", "BRELU"]

BRELU = "BReLU+GDA"


def _info(cfg):
    return qdata.DATASETS[qdata.canonical_name(cfg.dataset)]


def _classifier(cfg):
    info = _info(cfg)
    return models.build(cfg.arch, in_channels=info.channels, num_classes=info.num_classes, input_size=info.size)


def _train_cfg(cfg, adv=False, seed=None):
    if adv:
        return TrainConfig(epochs=cfg.adv_epochs, batch_size=cfg.batch_size, optimizer="adam", lr=cfg.lr, adv="fgsm",
                           adv_eps=cfg.adv_eps, adv_weight=cfg.adv_weight, select="mixed", select_eps=cfg.adv_eps,
                           seed=cfg.seed if seed is None else seed)
    return TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer="adam", lr=cfg.lr,
                       select="clean", seed=cfg.seed if seed is None else seed)


def _qusecnet(cfg, kind: str, levels: int):
    info = _info(cfg)
    if kind == "cq":
        q = lambda: constant_quantization(levels, cfg.cq_z)  # noqa: E731
        key = {"levels": levels, "z": cfg.cq_z, "trainable": False}
    else:
        shape = (info.channels, info.size, info.size) if cfg.vq_per_pixel else None
        q = lambda: variable_quantization(levels, cfg.vq_z, shape=shape)  # noqa: E731
        key = {"levels": levels, "z": cfg.vq_z, "trainable": True, "per_pixel": cfg.vq_per_pixel}
    return (lambda: QuSecNet(q(), _classifier(cfg))), {"arch": "qusecnet", "classifier": cfg.arch, "quantizer": key}


def train_zoo(cfg: QuSecNetsConfig, profile: Profile, names=None, device=None, progress: bool = True) -> dict:
    """Train (or load from the cache) every model of the chapter (``names``: these only):
    ``{name: TrainResult}``."""
    info = _info(cfg)
    vq, vq_key = _qusecnet(cfg, "vq", cfg.vq_levels)

    def brelu():
        return brelu_cnn(cfg.arch, cfg.brelu_t, in_channels=info.channels, num_classes=info.num_classes,
                         input_size=info.size)

    # (name, model: registry name or builder, training config, cache key of a builder, loss)
    plan = [(NO_DEFENSE, cfg.arch, _train_cfg(cfg), None, None),
            (SUBSTITUTE, cfg.arch, _train_cfg(cfg, seed=cfg.substitute_seed), None, None)]
    for n in cfg.cq_levels:
        cq, cq_key = _qusecnet(cfg, "cq", n)
        plan.append((f"CQ n={n}", cq, _train_cfg(cfg), cq_key, None))
    plan += [
        ("VQ (eq. 2 cost)", vq, _train_cfg(cfg), vq_key, qusecnets_loss),
        ("VQ (cross-entropy)", vq, _train_cfg(cfg), vq_key, None),
        ("No defense + adv. training", cfg.arch, _train_cfg(cfg, adv=True), None, None),
        ("VQ + adv. training", vq, _train_cfg(cfg, adv=True), vq_key, qusecnets_loss),
        (BRELU, brelu, _train_cfg(cfg), {"arch": cfg.arch, "activation": f"brelu(t={cfg.brelu_t:g})"},
         GaussianAugmentation(cfg.gda_sigma)),
    ]
    if names is not None:
        known = [p[0] for p in plan]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"no models {unknown} in the QuSecNets zoo; it has {known}")
        plan = [p for p in plan if p[0] in names]
    return {name: get_trained(fn, cfg.dataset, tcfg, profile=profile, key=key, device=device, progress=progress,
                              loss_fn=loss)
            for name, fn, tcfg, key, loss in _progress(plan, enabled=progress, desc="models")}


def defenses(zoo: dict, cfg: QuSecNetsConfig) -> dict:
    """The defended models as the paper deploys them: ``{name: model}`` (the substitute excluded).

    QuSecNets keep their soft quantizer (the paper's layer); feature squeezing puts bit-depth
    reduction or median smoothing in front of the undefended CNN (no retraining, as in Xu et al.).
    """
    plain = zoo[NO_DEFENSE].model
    out = {name: r.model for name, r in zoo.items() if name != SUBSTITUTE}
    out[f"FS: bit depth {cfg.fs_bits}"] = InputTransformModel(BitDepthReduction(cfg.fs_bits), plain).eval()
    out[f"FS: median {cfg.fs_median}x{cfg.fs_median}"] = InputTransformModel(MedianSmoothing(cfg.fs_median), plain).eval()
    order = [NO_DEFENSE] + [f"CQ n={n}" for n in cfg.cq_levels] + ["VQ (eq. 2 cost)", "VQ (cross-entropy)",
             "VQ + adv. training", "No defense + adv. training", f"FS: bit depth {cfg.fs_bits}",
             f"FS: median {cfg.fs_median}x{cfg.fs_median}", BRELU]
    return {k: out[k] for k in order if k in out}


def book_zoo(cfg: QuSecNetsConfig, profile: Profile, device=None, progress: bool = True) -> None:
    """Train (or find cached) every model the chapter's pages use for ``cfg.dataset`` (``make models``)."""
    train_zoo(cfg, profile, device=device, progress=progress)


def test_images(cfg: QuSecNetsConfig, n: int | None = None):
    """The chapter's fixed test images (seed 1): ``n``, by default enough for the reproduction and the
    adaptive test."""
    test = qdata.load(cfg.dataset, "test").subset(n or max(cfg.eval_images, cfg.adaptive_images), seed=1)
    return test.x, test.y

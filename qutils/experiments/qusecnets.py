"""The QuSecNets chapter's experiments: every model it trains and every table it measures.

The notebooks call these functions and show their results, so the MNIST and Fashion-MNIST
notebooks (and a reader's CIFAR-10 run in the ``full`` profile) run the same experiment.

* :class:`QuSecNetsConfig` -- every setting, per dataset (:func:`config_for`); where the paper is
  silent the choice is ours, and its field says so.
* :func:`train_zoo` -- the undefended Cleverhans CNN, a separately trained substitute (the
  black-box adversary's model), CQ for several ``n``, VQ trained with the paper's cost and with
  cross-entropy, FGSM adversarial training with and without VQ, and BReLU+GDA.
* :func:`defenses` -- the models as deployed (QuSecNets in the paper's soft mode, feature
  squeezing in front of the undefended CNN).
* :func:`reproduce` -- the paper's experiments (figures 5, 7, 9, 10, 11).
* :func:`honest` -- the adaptive evaluation: PGD through the soft layer, through the exact
  quantizer (zero gradient), with BPDA (straight-through and sigmoid backward), and Square.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn as nn

from .. import data as qdata
from .. import models
from ..attacks import CWL2, FGSM, JSMA, PGD, Square, all_targets
from ..defenses import (BitDepthReduction, GaussianAugmentation, InputTransformModel, MedianSmoothing, QuSecNet,
                        brelu_cnn, constant_quantization, qusecnets_loss, variable_quantization)
from ..evaluate import Accuracy, accuracy, defense_table, predict, robust_accuracy, worst_case
from ..profiles import Profile
from ..progress import progress as _progress
from ..train import TrainConfig, get_trained

__all__ = ["QuSecNetsConfig", "config_for", "train_zoo", "defenses", "reproduce", "honest",
           "threshold_crossable", "paper_vs_ours", "NO_DEFENSE", "SUBSTITUTE", "PAPER"]

NO_DEFENSE = "No defense"
SUBSTITUTE = "Substitute (black-box adversary)"


@dataclass
class QuSecNetsConfig:
    dataset: str
    arch: str = "cleverhans_cnn"  #: paper, section IV
    cq_levels: tuple[int, ...] = (2, 3, 4)  #: CQ's n (figure 7 sweeps n; the paper does not list its values)
    cq_z: float = 50.0  #: paper: z = 50 for CQ
    vq_levels: int = 2  #: our choice: VQ with as many levels as the best CQ
    vq_z: float = 5.0  #: paper: z = 5 for VQ
    vq_per_pixel: bool = True  #: paper: "for each input pixel there is one quantization function"
    lr: float = 1e-3  #: paper, table 2
    batch_size: int = 128  #: paper, table 2
    epochs: int = 2  #: paper: 6-10 (table 2); the book profile trains fewer to fit its time budget
    adv_epochs: int = 3  #: epochs of the adversarially trained models (figure 5's curves)
    adv_eps: float = 0.3  #: FGSM radius of adversarial training (our choice: the evaluation radius)
    adv_weight: float = 0.5  #: Goodfellow et al.'s 0.5 clean + 0.5 FGSM
    eps: float = 0.3  #: the headline FGSM radius (paper, figure 9: 0.3 on MNIST, 0.1 on CIFAR-10)
    fgsm_epsilons: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  #: figure 7's axis
    fs_bits: int = 1  #: feature squeezing: bit depth (Xu et al. use 1 bit on MNIST)
    fs_median: int = 2  #: feature squeezing: median window (Xu et al. use 2x2 on MNIST)
    brelu_t: float = 1.0  #: BReLU bound (our choice)
    gda_sigma: float = 0.3  #: GDA noise level (our choice)
    eval_images: int = 1000  #: test images for clean and FGSM accuracy
    cw_images: int = 100  #: untargeted C&W images
    cw_sources: int = 10  #: targeted C&W / JSMA: source images, each attacked towards all 9 other classes
    cw_steps: int = 100  #: cleverhans tutorial / paper figure 10: 100 iterations
    cw_binary_steps: int = 1  #: cleverhans tutorial: 1 binary search step, initial constant 10, step 0.2
    cw_const: float = 10.0
    cw_stepsize: float = 0.2
    jsma_gamma: float = 0.1  #: cleverhans tutorial: gamma 0.1, theta 1
    honest_images: int = 500  #: images for the adaptive evaluation
    pgd_steps: int = 40
    bpda_z: float = 10.0  #: steepness of the sigmoid used as BPDA backward pass
    square_queries: int = 1000
    square_images: int = 100
    seed: int = 0
    substitute_seed: int = 1


def config_for(dataset: str, profile: Profile) -> QuSecNetsConfig:
    """The chapter's settings for ``dataset`` scaled to ``profile`` (smoke: tiny; full: the paper's epochs)."""
    name = qdata.canonical_name(dataset)
    cfg = QuSecNetsConfig(dataset=name)
    if name == "fashion_mnist":
        # no paper numbers: the radius of the Q-Layer paper's Fashion-MNIST experiments
        cfg = dataclasses.replace(cfg, eps=0.1, adv_eps=0.1, fgsm_epsilons=(0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2))
    elif name in ("cifar10", "svhn"):
        cfg = dataclasses.replace(cfg, eps=0.1, adv_eps=0.1, fs_bits=5, fs_median=2, gda_sigma=0.05,
                                  fgsm_epsilons=(0.0, 0.01, 0.02, 0.05, 0.1), vq_levels=2)
    if profile.name == "smoke":
        cfg = dataclasses.replace(cfg, epochs=1, adv_epochs=1, eval_images=profile.eval_images, cw_images=10,
                                  cw_sources=2, cw_steps=10, honest_images=50, pgd_steps=profile.attack_steps,
                                  square_queries=50, square_images=20, cq_levels=(2, 4))
    elif profile.name == "full":
        cfg = dataclasses.replace(cfg, epochs=10, adv_epochs=10, eval_images=profile.eval_images, cw_images=1000,
                                  cw_sources=100, honest_images=1000, pgd_steps=100, square_queries=5000,
                                  square_images=1000, cq_levels=(2, 3, 4, 8, 16))
    return cfg


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
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


def train_zoo(cfg: QuSecNetsConfig, profile: Profile, device=None, progress: bool = True) -> dict:
    """Train (or load from the cache) every model of the chapter: ``{name: TrainResult}``."""
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
        ("BReLU+GDA", brelu, _train_cfg(cfg), {"arch": cfg.arch, "activation": f"brelu(t={cfg.brelu_t:g})"},
         GaussianAugmentation(cfg.gda_sigma)),
    ]
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
             f"FS: median {cfg.fs_median}x{cfg.fs_median}", "BReLU+GDA"]
    return {k: out[k] for k in order if k in out}


# ---------------------------------------------------------------------------------------------
# the paper's experiments
# ---------------------------------------------------------------------------------------------
def _row(acc: Accuracy, **labels) -> dict:
    d = acc.as_dict()
    d.pop("params", None)
    return {**labels, **d}


def reproduce(defs: dict, substitute: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: QuSecNetsConfig,
              strategies=None, progress: bool = True) -> dict:
    """The paper's measurements on test images ``x, y``. Returns DataFrames:

    * ``clean``: clean accuracy of every defense (QuSecNets in soft and hard mode);
    * ``fgsm``: FGSM accuracy for every defense and ``cfg.fgsm_epsilons``, white-box (gradient of the
      deployed model, as the paper) and black-box (transferred from the substitute): figures 7 and 9;
    * ``cw``: C&W L2 (cleverhans tutorial settings), untargeted and targeted, white- and black-box,
      for ``strategies`` (default: no defense, CQ, VQ, VQ + adversarial training: figure 10);
    * ``jsma``: targeted JSMA (gamma 0.1), white- and black-box, same strategies (figure 11).
    """
    n = min(cfg.eval_images, len(x))
    xe, ye = x[:n], y[:n]
    clean = []
    for name, m in defs.items():
        clean.append(_row(accuracy(m, xe, ye), defense=name, mode="as deployed (soft)" if isinstance(m, QuSecNet) else "-"))
        if isinstance(m, QuSecNet):
            clean.append(_row(accuracy(m.view("hard"), xe, ye), defense=name, mode="hard"))
    fg = FGSM(cfg.eps)
    eps = list(cfg.fgsm_epsilons)
    white = defense_table(defs, [fg], eps, xe, ye, progress=progress).assign(setting="white-box")
    black = defense_table(defs, [fg], eps, xe, ye, source=substitute, progress=progress).assign(setting="black-box")
    fgsm = pd.concat([white, black], ignore_index=True)

    if strategies is None:
        strategies = [k for k in defs if k == NO_DEFENSE or k.startswith("CQ n=2") or k.startswith("VQ")]
    nc = _info(cfg).num_classes
    cw_kw = dict(binary_search_steps=cfg.cw_binary_steps, steps=cfg.cw_steps, stepsize=cfg.cw_stepsize,
                 initial_const=cfg.cw_const)
    xu, yu = x[:cfg.cw_images], y[:cfg.cw_images]
    xs, ys, ts = all_targets(x[:cfg.cw_sources], y[:cfg.cw_sources], nc)
    cw_u, cw_t, js = CWL2(**cw_kw), CWL2(targeted=True, **cw_kw), JSMA(cfg.jsma_gamma)
    # black-box: craft once on the substitute, evaluate on every defense
    adv_u = robust_accuracy(substitute, cw_u, xu, yu, return_adv=True)[1]
    adv_t = robust_accuracy(substitute, cw_t, xs, ts, return_adv=True)[1]
    adv_j = robust_accuracy(substitute, js, xs, ts, return_adv=True)[1]
    def transferred(m, attack, x_adv, labels):
        """Accuracy of ``m`` on examples crafted once on the substitute (what ``source=`` would re-craft per model)."""
        return Accuracy(int((predict(m, x_adv) == labels).sum()), len(labels), f"{attack.name} transfer",
                        "black-box (transfer)", str(attack.norm), attack.eps, attack.steps)

    cw_rows, js_rows = [], []
    for name in _progress(strategies, enabled=progress, desc="C&W and JSMA"):
        m = defs[name]
        cw_rows += [
            _row(robust_accuracy(m, cw_u, xu, yu), defense=name, setting="white-box", targeted=False),
            _row(transferred(m, cw_u, adv_u, yu), defense=name, setting="black-box", targeted=False),
            _row(robust_accuracy(m, cw_t, xs, ts, true_labels=ys), defense=name, setting="white-box", targeted=True),
            _row(transferred(m, cw_t, adv_t, ys), defense=name, setting="black-box", targeted=True),
        ]
        js_rows += [
            _row(robust_accuracy(m, js, xs, ts, true_labels=ys), defense=name, setting="white-box", targeted=True),
            _row(transferred(m, js, adv_j, ys), defense=name, setting="black-box", targeted=True),
        ]
    return {"clean": pd.DataFrame(clean), "fgsm": fgsm, "cw": pd.DataFrame(cw_rows), "jsma": pd.DataFrame(js_rows)}


#: Every number the paper states in its text (its figures carry no printed values), in percent.
#: ``ours`` names the row of :func:`reproduce`'s tables that measures the same thing.
PAPER = [
    dict(dataset="mnist", claim="white-box FGSM, eps 0.3, no defense", paper=1.48, source="section V (figure 9)",
         ours=("fgsm", NO_DEFENSE, "white-box")),
    dict(dataset="mnist", claim="white-box FGSM, eps 0.3, constant quantization", paper=97.51,
         source="section V (figure 9)", ours=("fgsm", "CQ n=2", "white-box")),
    dict(dataset="mnist", claim="white-box FGSM, eps 0.3, BReLU (as reported by Zantedeschi et al.)", paper=94.0,
         source="section V, quoting [14]", ours=("fgsm", "BReLU+GDA", "white-box")),
    dict(dataset="mnist", claim="white-box C&W L2, QuSecNets", paper=88.0, source="section V (figure 10)",
         ours=("cw", "CQ n=2", "white-box")),
    dict(dataset="mnist", claim="black-box C&W L2, QuSecNets", paper=90.0, source="section V (figure 10)",
         ours=("cw", "CQ n=2", "black-box")),
    dict(dataset="mnist", claim="C&W L2, no defense", paper=0.0, source="section V (figure 10)",
         ours=("cw", NO_DEFENSE, "white-box")),
    dict(dataset="cifar10", claim="white-box C&W L2, QuSecNets", paper=54.0, source="section V (figure 10)",
         ours=("cw", "CQ n=2", "white-box")),
    dict(dataset="cifar10", claim="black-box C&W L2, QuSecNets", paper=50.0, source="section V (figure 10)",
         ours=("cw", "CQ n=2", "black-box")),
    dict(dataset="cifar10", claim="adversarial images classified after quantization (figure 1)", paper=24.66,
         source="section I.A (figure 1; 8.87% without quantization)", ours=None),
]


def paper_vs_ours(tables: dict, cfg: QuSecNetsConfig) -> pd.DataFrame:
    """Every number of :data:`PAPER` for ``cfg.dataset`` next to ours (untargeted C&W; FGSM at the
    paper's radius), with our 95% interval and number of images."""
    rows = []
    for p in PAPER:
        if p["dataset"] != cfg.dataset:
            continue
        row = {"claim": p["claim"], "source": p["source"], "paper (%)": f"{p['paper']:g}", "ours (%)": None,
               "95% CI": "", "n": None, "our setting": "not measured here"}
        if p["ours"] is not None and p["ours"][0] in tables:
            table, defense, setting = p["ours"]
            df = tables[table]
            df = df[(df["defense"] == defense) & (df["setting"] == setting)]
            if table == "fgsm":
                df = df[(df["eps"] - cfg.eps).abs() < 1e-9]
            else:
                df = df[~df["targeted"]]
            if len(df):
                r = df.iloc[0]
                row.update({"ours (%)": f"{100 * r['accuracy']:.1f}",
                            "95% CI": f"{100 * r['ci_low']:.1f}-{100 * r['ci_high']:.1f}", "n": int(r["n"]),
                            "our setting": f"{defense}: {r['attack']} ({r['threat_model']}, {r['norm']}, "
                                           f"eps={r['eps']:g}, {int(r['steps'])} steps)"})
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# the honest test
# ---------------------------------------------------------------------------------------------
def threshold_crossable(x: torch.Tensor, thresholds, eps: float) -> float:
    """Share of pixels within ``eps`` of a threshold: the only pixels an L-infinity attack of radius
    ``eps`` can move to another quantization level."""
    t = torch.as_tensor(thresholds, dtype=x.dtype).flatten()
    return float(((x.unsqueeze(-1) - t).abs() <= eps).any(-1).float().mean())


def honest(defs: dict, x: torch.Tensor, y: torch.Tensor, cfg: QuSecNetsConfig, eps: float | None = None,
           names=None, progress: bool = True):
    """The adaptive evaluation at L-infinity ``eps`` (default ``cfg.eps``) on ``cfg.honest_images`` images.

    Every QuSecNet (and the bit-depth squeezer) is deployed **exactly quantized** (hard mode) and
    attacked with PGD through (a) the soft layer the paper trains (its gradient), (b) the hard
    layer with plain autograd (zero gradient), (c) BPDA with the straight-through estimator and
    (d) BPDA with the derivative of a sigmoid of steepness ``cfg.bpda_z``, and with (e) Square
    (no gradients; fewer images). A robust image must survive every attack that ran on it
    (``worst case``, per image). Returns ``(table, per_image)``.
    """
    from ..attacks import Adaptive
    from ..attacks.bpda import BPDA

    eps = cfg.eps if eps is None else eps
    n = min(cfg.honest_images, len(x))
    xh, yh = x[:n], y[:n]
    ns = min(cfg.square_images, n)
    pgd = PGD(eps, steps=cfg.pgd_steps, early_stop=True, seed=cfg.seed)
    rows, per_image = [], {}
    names = names or list(defs)
    for name in _progress(names, enabled=progress, desc="adaptive attacks"):
        m = defs[name]
        if isinstance(m, QuSecNet):
            target = m.view("hard")
            views = {"PGD, soft-layer gradient (paper's model)": m,
                     "PGD, autograd through hard layer": target,
                     "PGD+BPDA, straight-through": m.view("hard", "identity"),
                     f"PGD+BPDA, sigmoid z={cfg.bpda_z:g}": m.view("hard", "sigmoid", cfg.bpda_z)}
        elif isinstance(m, InputTransformModel) and isinstance(m.transform, BitDepthReduction):
            target = m
            views = {"PGD, autograd through hard layer": m,
                     "PGD+BPDA, straight-through": InputTransformModel(BPDA(m.transform), m.model).eval()}
        else:
            target = m
            views = {"PGD (autograd)": m}
        attacks = {label: pgd if view is target else Adaptive(pgd, view) for label, view in views.items()}
        square = Square(eps, queries=cfg.square_queries, seed=cfg.seed)
        accs, worst = worst_case(target, attacks, xh, yh, extra=square, extra_images=ns)
        labels = {"clean": "clean (deployed: hard)" if isinstance(m, QuSecNet) else "clean",
                  square.name: f"Square, {cfg.square_queries} queries (no gradient)"}
        for label, acc in accs.items():
            rows.append(_row(acc, defense=name, attack_view=labels.get(label, label)))
        per_image[name] = worst
    return pd.DataFrame(rows), per_image

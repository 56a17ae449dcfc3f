"""What the SQA chapter measures: the paper's experiments (table 1, figure 1, table 4, figures 2
and 3) and the adaptive evaluation of a classifier that is random at test time, as functions both
datasets' notebooks call.

**Robust accuracy of a random classifier.** An SQA network answers differently each time it is
asked. The book counts **one fresh draw per evaluation** (the deployed network, as a user would
meet it; the cascade's rule: an image is robust only if every check it went through classified it
correctly) and reports the **majority vote over** ``cfg.vote_draws`` **draws** beside it where the
two could differ (:func:`vote_accuracy`). Every measurement restarts the SQA draws from
``cfg.seed`` (:func:`~.zoo.reseeded`), so each number can be reproduced on its own.

**The paper's attacks** see what its PyTorch code gives them: one draw per forward pass and the
straight-through gradient of algorithm 1 (the SQA layer's own backward pass).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from ... import data as qdata
from ...attacks import EOTPGD, FGSM, PGD, Adaptive, CWLinf
from ...cascade import (Stage, chapter_stages, compare_table, curve_rows, run_cascades,
                        gain_table as _gain_table, summary_table)
from ...defenses.protocol import as_defense
from ...defenses.sqa import SQANet, StochasticQuantizedActivation, sqa_layers
from ...evaluate import Accuracy, accuracy, accuracy_row as _row, pick, predict, robust_accuracy
from ...features import hooked, penultimate, tsne_2d
from ...progress import progress as _progress
from ...bench import step_seconds
from .config import HEADLINE, SQAConfig
from .zoo import Zoo, build_model, reseeded, train_config

__all__ = ["paper_attacks", "table1", "table1_summary", "seed_range", "overfitting", "figure1", "timing",
           "algorithm_steps", "activation_values", "tsne_embedding", "activation_maps", "vote_accuracy",
           "gradient_variance", "convergence", "paper_attack", "cascade_stages", "adaptive", "adaptive_table", "gain_table", "surviving_gains",
           "adaptive_curves", "exercise_reference"]


def paper_attacks(cfg: SQAConfig) -> dict:
    """Table 1's columns: ``{label: attack}`` (FGSM and C&W-Linf at ``cfg.fgsm_eps``, PGD at ``cfg.pgd_eps``)."""
    out = {f"FGSM {e:g}": FGSM(e) for e in cfg.fgsm_eps}
    out.update({f"C&W {e:g}": CWLinf(e, cfg.cw_steps, abs_stepsize=cfg.cw_stepsize, seed=cfg.seed, early_stop=True)
                for e in cfg.fgsm_eps})
    out[f"PGD {cfg.pgd_eps:g}"] = PGD(cfg.pgd_eps, cfg.pgd_steps, abs_stepsize=cfg.pgd_stepsize, seed=cfg.seed,
                                      early_stop=True)
    return out


def _measure(net, attack, x, y, cfg, **labels) -> dict:
    m = reseeded(net, cfg.seed)
    acc = accuracy(m, x, y) if attack is None else robust_accuracy(m, attack, x, y)
    return _row(acc, **labels)


def table1(zoo: Zoo, names, x: torch.Tensor, y: torch.Tensor, cfg: SQAConfig, progress: bool = True,
           only: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Table 1 on ``cfg.eval_images`` images, for every training run of ``names``: clean, FGSM and
    C&W-Linf at both radii, PGD; the paper's protocol (one draw, the layer's own gradient). One
    row per (model, seed, measurement). ``only``: the attacks to run, by the start of their label
    (e.g. ``("PGD",)``); clean accuracy is always measured."""
    n = min(cfg.eval_images, len(x))
    xe, ye = x[:n], y[:n]
    attacks = {k: a for k, a in paper_attacks(cfg).items() if only is None or k.startswith(tuple(only))}
    rows = []
    plan = [(name, s, m) for name in names for s, m in zoo.seeds_of(name).items()]
    for name, seed, m in _progress(plan, enabled=progress, desc="table 1"):
        rows.append({**_measure(m, None, xe, ye, cfg, model=name, seed=seed), "measurement": "clean"})
        for label, attack in attacks.items():
            rows.append({**_measure(m, attack, xe, ye, cfg, model=name, seed=seed), "measurement": label})
    return pd.DataFrame(rows)


def table1_summary(t1: pd.DataFrame) -> pd.DataFrame:
    """Per (model, measurement): runs, mean and standard deviation over seeds (percent, as the paper
    reports), and the first seed's accuracy with its 95% interval."""
    rows = []
    for (model, what), d in t1.groupby(["model", "measurement"], sort=False):
        first = d.sort_values("seed").iloc[0]
        rows.append({"model": model, "measurement": what, "runs": len(d), "mean": 100 * d.accuracy.mean(),
                     "std": 100 * d.accuracy.std(ddof=1) if len(d) > 1 else float("nan"),
                     "first run": Accuracy(int(first.correct), int(first.n))})
    return pd.DataFrame(rows)


def seed_range(t1: pd.DataFrame, model: str, measurement: str) -> tuple[float, float] | None:
    """(min, max) in percent over the seeds of ``model`` for one measurement, ``None`` if one run."""
    d = t1[(t1.model == model) & (t1.measurement == measurement)]
    return (100 * d.accuracy.min(), 100 * d.accuracy.max()) if len(d) > 1 else None


def overfitting(models: dict, x: torch.Tensor, y: torch.Tensor, cfg: SQAConfig) -> pd.DataFrame:
    """What FGSM training learns: clean accuracy, FGSM with the true label (what training saw), FGSM
    with the predicted label (no label leaking, Kurakin et al. 2017), FGSM-RS and PGD, all at the
    training radius, for each model. One row per (model, measurement)."""
    n = min(cfg.eval_images, len(x))
    xe, ye = x[:n], y[:n]
    eps = cfg.train_eps
    rows = []
    for name, m in models.items():
        rows.append({**_measure(m, None, xe, ye, cfg, model=name), "measurement": "clean"})
        rows.append({**_measure(m, FGSM(eps), xe, ye, cfg, model=name), "measurement": "FGSM, true label"})
        pred = predict(reseeded(m, cfg.seed), xe)  # Kurakin et al.'s label: the model's own prediction
        x_adv = FGSM(eps)(reseeded(m, cfg.seed), xe, pred)
        a = dataclasses.replace(accuracy(reseeded(m, cfg.seed), x_adv, ye), attack="FGSM (predicted label)",
                                threat_model="white-box", norm="Linf", eps=eps, steps=1)
        rows.append({**_row(a, model=name), "measurement": "FGSM, predicted label"})
        pgd = PGD(eps, cfg.pgd_steps, abs_stepsize=cfg.pgd_stepsize, seed=cfg.seed, early_stop=True)
        rows.append({**_measure(m, pgd, xe, ye, cfg, model=name), "measurement": "PGD"})
    return pd.DataFrame(rows)


def figure1(zoo: Zoo, names, x: torch.Tensor, y: torch.Tensor, cfg: SQAConfig) -> pd.DataFrame:
    """Figure 1: FGSM accuracy against epsilon (``cfg.figure1_eps``) for the networks with
    deterministic quantization on one layer, and the same network without (``names``)."""
    n = min(cfg.eval_images, len(x))
    rows = []
    for name in names:
        m = zoo[name]
        for eps in cfg.figure1_eps:
            a = accuracy(m, x[:n], y[:n]) if eps == 0 else robust_accuracy(m, FGSM(eps), x[:n], y[:n])
            rows.append({**_row(a, model=name), "eps": float(eps), "norm": "Linf"})
    return pd.DataFrame(rows)


#: table 4 (ResNet-34, CIFAR-10): seconds per training iteration in the paper
PAPER_SECONDS = {"FGSM": 0.43, "SQA + FGSM": 0.57, "PGD-10": 1.23, "PGD-20": 2.34, "PGD-100": 10.17}


def timing(cfg: SQAConfig, device=None, arch: str = "LARGE") -> pd.DataFrame:
    """Table 4, measured here: seconds per training iteration of FGSM, SQA + FGSM, FGSM-RS and PGD
    with ``cfg.timing_pgd`` steps, for the ``arch`` network, each method on the same
    ``cfg.timing_batches`` training batches; with the ratio to FGSM and the paper's seconds."""
    tr = qdata.load(cfg.dataset, "train").subset(cfg.timing_batches * cfg.batch_size, seed=cfg.seed)
    batches = [(tr.x[i:i + cfg.batch_size], tr.y[i:i + cfg.batch_size])
               for i in range(0, len(tr), cfg.batch_size)]
    full, sqa = f"{arch} full", f"{arch} SQA"
    methods = {"FGSM": (lambda: build_model(full, cfg)[0], train_config(full, cfg, 0)),
               "SQA + FGSM": (lambda: build_model(sqa, cfg)[0], train_config(sqa, cfg, 0)),
               "FGSM-RS": (lambda: build_model(full, cfg)[0],
                           dataclasses.replace(train_config(full, cfg, 0), adv="fgsm_rs"))}
    for k in cfg.timing_pgd:
        methods[f"PGD-{k}"] = (lambda: build_model(full, cfg)[0],
                               dataclasses.replace(train_config(f"{arch} PGD", cfg, 0), adv_steps=k))
    df = step_seconds(methods, batches, device=device)
    base = float(df.loc[df.method == "FGSM", "seconds per iteration"].iloc[0])
    df["ratio to FGSM"] = df["seconds per iteration"] / base
    df["paper (s)"] = df.method.map(PAPER_SECONDS)
    df["paper ratio to FGSM"] = df["paper (s)"] / PAPER_SECONDS["FGSM"]
    return df


@torch.no_grad()
def algorithm_steps(model: SQANet, x: torch.Tensor, layer: int = 0, seed: int = 0) -> dict:
    """Algorithm 1 step by step on a real feature map: the ReLU output ``h`` that SQA layer ``layer``
    of ``model`` receives for the image ``x`` (one image), its normalised and scaled ``g``, the
    Bernoulli probabilities ``g - floor(g)``, one stochastic draw, the rescaled output, the
    nearest rounding and the mean of 200 draws."""
    sqa = sqa_layers(model)[layer]
    h = hooked(model.view("mean"), sqa_layers(model.view("mean"))[layer], x[:1], lambda i, o: i[0])
    lo, hi = h.amin(), h.amax()
    g = (h - lo) / (hi - lo) * sqa.lam
    gen = torch.Generator().manual_seed(seed)
    one = StochasticQuantizedActivation(sqa.lam, sqa.scope, "stochastic", gen)
    draws = torch.stack([one(h) for _ in range(200)])
    return {"h": h[0], "g": g[0], "p": (g - g.floor())[0], "draw": draws[0, 0], "lam": sqa.lam,
            "nearest": StochasticQuantizedActivation(sqa.lam, sqa.scope, "nearest")(h)[0], "mean of draws": draws.mean(0)[0]}


def activation_values(model: nn.Module, x: torch.Tensor, layer: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input, output)`` of SQA layer ``layer`` of ``model`` on ``x``, one row per image (one draw)."""
    sqa = sqa_layers(model)[layer]
    return hooked(reseeded(model, 0), sqa, x, lambda i, o: torch.stack([i[0], o])).flatten(2).unbind(0)


def _cw(cfg: SQAConfig, eps: float) -> CWLinf:
    return CWLinf(eps, cfg.cw_steps, abs_stepsize=cfg.cw_stepsize, seed=cfg.seed, early_stop=True)


def tsne_embedding(models: dict, x: torch.Tensor, y: torch.Tensor, cfg: SQAConfig) -> pd.DataFrame:
    """Figure 2: t-SNE (scikit-learn) of the penultimate layer of each model on the test images of
    ``cfg.tsne_classes`` (``cfg.tsne_images`` of them) and their C&W-Linf examples at the largest
    table 1 radius, clean and attacked embedded together. One row per point."""
    keep = torch.isin(y, torch.tensor(cfg.tsne_classes))
    xs, ys = x[keep][:cfg.tsne_images], y[keep][:cfg.tsne_images]
    n = len(xs)
    frames = []
    for name, m in models.items():
        m = reseeded(m, cfg.seed)
        x_adv = _cw(cfg, max(cfg.fgsm_eps))(m, xs, ys)
        feats = torch.cat([penultimate(m, xs), penultimate(m, x_adv)]).numpy()
        emb = tsne_2d(feats, cfg.seed)
        pred = torch.cat([predict(m, xs), predict(m, x_adv)]).numpy()
        frames.append(pd.DataFrame({"model": name, "input": ["clean"] * n + ["attacked"] * n, "x": emb[:, 0],
                                    "y": emb[:, 1], "label": np.tile(ys.numpy(), 2), "predicted": pred}))
    return pd.concat(frames, ignore_index=True)


def activation_maps(models: dict, x: torch.Tensor, y: torch.Tensor, cfg: SQAConfig) -> dict:
    """Figure 3: per model, the mean penultimate activation per class (``cfg.map_images`` test
    images of each class) on clean images and on their C&W-Linf examples at the largest table 1
    radius: ``{model: {"clean": (classes, units), "attacked": (classes, units)}}``."""
    out = {}
    classes = sorted(set(y.tolist()))
    for name, m in models.items():
        m = reseeded(m, cfg.seed)
        maps = {"clean": [], "attacked": []}
        for c in classes:
            xc = x[y == c][:cfg.map_images]
            yc = torch.full((len(xc),), c, dtype=y.dtype)
            maps["clean"].append(penultimate(m, xc).mean(0))
            maps["attacked"].append(penultimate(m, _cw(cfg, max(cfg.fgsm_eps))(m, xc, yc)).mean(0))
        out[name] = {k: torch.stack(v).numpy() for k, v in maps.items()}
    return out


@torch.no_grad()
def vote_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int = 21, seed: int = 0) -> Accuracy:
    """Accuracy of the majority vote over ``draws`` forward passes (ties: the lowest class)."""
    m = reseeded(model, seed)
    votes = torch.stack([predict(m, x) for _ in range(draws)])
    counts = torch.nn.functional.one_hot(votes, int(votes.max()) + 1).sum(0)
    return Accuracy(int((counts.argmax(1) == y).sum()), len(y), params={"evaluation": f"majority vote of {draws} draws"})


def gradient_variance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eot: int, repeats: int = 8,
                      seed: int = 0) -> float:
    """Mean over images of the variance (summed over pixels) of the EOT gradient estimate with
    ``eot`` samples, across ``repeats`` estimates, relative to the squared norm of their mean: how
    noisy the direction an EOT attack follows is."""
    m = reseeded(model, seed)
    grads = []
    for _ in range(repeats):
        xs = x.detach().repeat(eot, 1, 1, 1).requires_grad_(True)
        loss = nn.functional.cross_entropy(m(xs), y.repeat(eot), reduction="sum")
        (g,) = torch.autograd.grad(loss, xs)
        grads.append(g.view(eot, *x.shape).mean(0).flatten(1))
    g = torch.stack(grads)  # (repeats, n, d)
    var = g.var(0, unbiased=True).sum(1)
    return float((var / g.mean(0).pow(2).sum(1).clamp_min(1e-20)).mean())


def convergence(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: SQAConfig, eps: float | None = None) -> pd.DataFrame:
    """Does the EOT attack converge? :class:`~qutils.attacks.EOTPGD` accuracy (one fresh draw, and
    the majority vote) against the number of EOT samples (``cfg.convergence_eot``, steps
    ``cfg.apgd_steps``) and against the steps (``cfg.convergence_steps``, ``cfg.eot`` samples), on
    ``cfg.convergence_images`` images."""
    eps = cfg.eps if eps is None else eps
    n = min(cfg.convergence_images, len(x))
    xc, yc = x[:n], y[:n]
    rows = []
    plan = [("EOT samples", e, cfg.apgd_steps, e) for e in cfg.convergence_eot]
    plan += [("steps", s, s, cfg.eot) for s in cfg.convergence_steps]
    for axis, value, steps, eot in plan:
        attack = EOTPGD(eps, steps, eot, confidence=cfg.confidence, seed=cfg.seed)
        x_adv = attack(reseeded(model, cfg.seed), xc, yc)
        rows.append({**_row(accuracy(reseeded(model, cfg.seed + 1), x_adv, yc)), "axis": axis, "value": value,
                     "evaluation": "one draw"})
        rows.append({**_row(vote_accuracy(model, x_adv, yc, cfg.vote_draws, cfg.seed + 1)), "axis": axis,
                     "value": value, "evaluation": "majority vote"})
    return pd.DataFrame(rows)


def paper_attack(m: nn.Module, cfg: SQAConfig, eps: float) -> Stage:
    """The paper's attack as the cascade's first stage: its PGD (table 1's steps and step size)."""
    return Stage("PGD, the paper's attack", PGD(eps, cfg.pgd_steps, abs_stepsize=cfg.pgd_stepsize, seed=cfg.seed,
                                                early_stop=True), "paper's attack")


def cascade_stages(m: nn.Module, cfg: SQAConfig, eps: float | None = None, source: nn.Module | None = None,
                   light: bool = False) -> list[Stage]:
    """The book's cascade for one model (:func:`qutils.cascade.adaptive_stages`): the paper's PGD,
    APGD-CE through every attack view (EOT over ``cfg.eot`` draws on the straight-through view of an
    SQA network, which draws; none on its expectation view, which does not), APGD-T through the first
    view that does not draw, the designed attack (:meth:`~qutils.defenses.SQANet.designed_attacks`:
    EOT-PGD), transfer from ``source`` (the undefended LARGE), and Square. ``light``: the curves'
    cheaper cascade (APGD-CE through the first view, the designed attack, a quarter of the EOT draws)."""
    eps = cfg.eps if eps is None else eps
    eot = max(1, cfg.eot // 4) if light else cfg.eot
    return chapter_stages(m, cfg, eps, paper_attack(m, cfg, eps), source, light,
                          ("the undefended LARGE", "the undefended LARGE"), eot=eot,
                          designed={**cfg.designed_options, "eot": eot}, label_single_view=False)


def adaptive(models: dict, x: torch.Tensor, y: torch.Tensor, cfg: SQAConfig, eps: float | None = None,
             n: int | None = None, names=None, source: nn.Module | None = None, light: bool = False,
             progress: bool = True) -> dict:
    """The book's cascade (:func:`cascade_stages`) for every model at L-infinity ``eps`` (default
    ``cfg.eps``): ``n`` images, default ``cfg.random_images`` for a model that draws at test time
    (its gradients averaged over ``cfg.eot`` draws) and ``cfg.adaptive_images`` for a deterministic
    one; every SQA model is reseeded with ``cfg.seed`` and every prediction is one fresh draw.
    Returns ``{name: CascadeResult}``."""
    def images(m):
        return n or (cfg.random_images if as_defense(m).random else cfg.adaptive_images)

    return run_cascades(models, x, y, lambda m: cascade_stages(m, cfg, eps, source, light), images, names,
                        seed=cfg.seed, progress=progress)


def adaptive_table(results: dict) -> pd.DataFrame:
    """One row per model: clean, the paper's attack, the worst case, the stage that broke the most."""
    return summary_table(results, "model")


def gain_table(results: dict) -> pd.DataFrame:
    """Per model: the paper's attack and the adaptive worst case on the same images, and the drop."""
    return _gain_table(results, "model")


def surviving_gains(results: dict, sqa: str = HEADLINE[0], against=("LARGE full", "LARGE PGD", "LARGE FGSM-RS")) -> pd.DataFrame:
    """Is ``sqa`` more robust than each of ``against``, under the paper's PGD and under the adaptive
    worst case? (95% intervals; the images differ in number when one model is random.)"""
    return compare_table(results, sqa, against, "SQA against", "paper's PGD")


def adaptive_curves(models: dict, x: torch.Tensor, y: torch.Tensor, cfg: SQAConfig) -> pd.DataFrame:
    """Accuracy against epsilon (``cfg.epsilons``) on ``cfg.curve_images`` images: the paper's PGD
    and the light adaptive cascade's worst case (:func:`adaptive` with ``light=True``). One row
    per (model, attack, eps)."""
    n = min(cfg.curve_images, len(x))
    xc, yc = x[:n], y[:n]
    rows = []
    for eps in cfg.epsilons:
        if eps == 0:
            for name, m in models.items():
                a = accuracy(reseeded(m, cfg.seed), xc, yc)
                for what in ("paper's PGD", "adaptive worst case"):
                    rows.append({**_row(a), "model": name, "attack": what, "eps": 0.0, "norm": "Linf"})
            continue
        res = adaptive(models, xc, yc, cfg, eps=eps, n=n, light=True, progress=False)
        rows += curve_rows(res, eps)
    return pd.DataFrame(rows)


def exercise_reference(which: str, models: dict, x: torch.Tensor, y: torch.Tensor, cfg: SQAConfig):
    """The reference answers of the chapter's exercises (the self-checks compare with these and never print them)."""
    if which == "levels":
        from ...defenses.sqa import levels_of

        return levels_of(torch.tensor([[0.0, 0.3, 0.9, 1.2]]), 3)[0].tolist()
    if which == "variance":
        g = torch.tensor([0.5, 1.25, 2.9])
        f = g - g.floor()
        return (f * (1 - f)).tolist()
    if which == "eot-ratio":
        m = models["LARGE SQA"]
        return (gradient_variance(m, x[:20], y[:20], eot=1, repeats=4)
                / gradient_variance(m, x[:20], y[:20], eot=8, repeats=4))
    if which == "mean-view":
        m = reseeded(models["LARGE SQA"], 0)
        attack = Adaptive(PGD(0.2, 40, abs_stepsize=0.01, seed=0), m.view("mean"), how="expectation")
        return robust_accuracy(m, attack, x[:100], y[:100]).value
    if which == "fgsm-pgd-gap":
        t = overfitting({"LARGE full": models["LARGE full"]}, x[:200], y[:200], cfg)
        return 100 * float(pick(t, measurement="FGSM, true label").value - pick(t, measurement="PGD").value)
    raise ValueError(f"no exercise {which!r}")

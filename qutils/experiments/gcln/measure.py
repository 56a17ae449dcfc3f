"""What the GCLN chapter measures: the method's figures, the paper's tables 1-4 and figures 3-4
ported to MNIST and Fashion-MNIST, and the adaptive evaluation, as functions both datasets'
notebooks call.

**What the paper's white-box attack had access to.** The paper does not say whether its attacks
were crafted on the classifier alone or end to end through the cleaner. Its table 1 answers for
it: PGD (86%) does *worse* than the one-step FGS (75%) against GCLN, which an attack that saw the
cleaner would not allow. The chapter calls "the paper's protocol" the attack crafted on the target
classifier alone and then fed through the cleaner (:func:`paper_access`), and measures every other
access beside it (:func:`access_table`): end to end with the exact gradient (zero through the
rounding), BPDA through the rounding, BPDA through the whole cleaner.
"""
from __future__ import annotations

import dataclasses

import pandas as pd
import torch
import torch.nn as nn

from ...attacks import BIM, FGSM, PGD, Adaptive, CWLinf, Transfer
from ...cascade import (Stage, chapter_stages, compare_table, convergence_check, curve_rows, gain_table as _gain_table, run_cascades,
                        summary_table)
from ...defenses.protocol import as_defense
from ...defenses.gcln import GCLN
from ...defenses.squeeze import BitDepthReduction, InputTransformModel
from ...evaluate import accuracy, accuracy_row as _row, robust_accuracy
from ...features import hooked
from ...progress import progress as _progress
from .config import GCLNConfig
from .zoo import Zoo

__all__ = ["binarization_bounds", "convergence", "paper_attacks", "models_of", "paper_access", "table1", "table2", "table3", "table4", "bpda_attack", "figure3_qs",
           "figure3_steps", "figure4_steps", "figure4_eps", "access_table", "paper_attack", "cascade_stages", "adaptive", "adaptive_table",
           "gain_table", "surviving_gains", "access_rows", "PAPER_ACCESS", "BPDA_ACCESS", "adaptive_curves", "frequency_energy", "figure2_maps",
           "detector_scores"]


def paper_attacks(cfg: GCLNConfig, steps: int | None = None) -> dict:
    """Table 1's attacks at ``cfg.eps``: FGS, PGD, BIM and C&W (PGD on the C&W margin), 10 steps of
    ``eps / 8`` as section 4.2 (``steps`` to change the count, the step size kept)."""
    k = steps or cfg.attack_steps
    rel = cfg.rel_stepsize
    return {"FGS": FGSM(cfg.eps), "PGD": PGD(cfg.eps, k, rel_stepsize=rel, seed=cfg.seed, early_stop=True),
            "BIM": BIM(cfg.eps, k, rel_stepsize=rel, early_stop=True),
            "C&W": CWLinf(cfg.eps, k, rel_stepsize=rel, seed=cfg.seed, early_stop=True, confidence=0.0)}


def models_of(zoo: Zoo, cfg: GCLNConfig, gcln: bool = True) -> dict:
    """The chapter's defended models by name: no defense (the target), PGD-trained, feature squeezing
    (1-bit depth reduction, Xu et al.'s MNIST squeezer) and one GCLN per step of the zoo."""
    out = {"No defense": zoo.target, "PGD-trained": zoo.pgd_trained,
           "Feature squeezing": InputTransformModel(BitDepthReduction(1), zoo.target).eval()}
    if gcln:
        out.update({cfg.model_name(q): d for q, d in sorted(zoo.defenses.items())})
    return out


def paper_access(attack, model: nn.Module):
    """The paper's white-box attack on ``model``: crafted on the classifier alone when ``model`` is a
    classifier behind an input defense (:meth:`~qutils.defenses.protocol.Defense.classifier`: GCLN's
    target, feature squeezing's model; then fed through the defense), on the model itself otherwise."""
    clf = as_defense(model).classifier()
    return attack if clf is None else Transfer(attack, clf, "the target classifier alone")


def _table(models: dict, attacks: dict, x, y, table: str, wrap=None, progress=False) -> pd.DataFrame:
    rows = []
    for name, m in _progress(list(models.items()), enabled=progress, desc=table):
        rows.append({**_row(accuracy(m, x, y)), "model": name, "column": "clean", "table": table})
        for col, a in attacks.items():
            att = wrap(a, m) if wrap else a
            rows.append({**_row(robust_accuracy(m, att, x, y)), "model": name, "column": col, "table": table})
    return pd.DataFrame(rows)


def table1(models: dict, x, y, cfg: GCLNConfig, progress: bool = True) -> pd.DataFrame:
    """Table 1, ported: every model under FGS, PGD, BIM and C&W with the paper's access
    (:func:`paper_access`), on ``cfg.eval_images`` images. One row per (model, column)."""
    n = min(cfg.eval_images, len(x))
    return _table(models, paper_attacks(cfg), x[:n], y[:n], "table 1", paper_access, progress)


def bpda_attack(model: nn.Module, cfg: GCLNConfig, steps: int | None = None):
    """The paper's BPDA (table 2, figure 3): PGD through the straight-through view of a GCLN model
    (the rounding's gradient replaced by the identity; G's own gradient elsewhere), or of feature
    squeezing's bit-depth reduction; a model without a quantizer is attacked through its own gradient."""
    pgd = PGD(cfg.eps, steps or cfg.attack_steps, rel_stepsize=cfg.rel_stepsize, seed=cfg.seed, early_stop=True)
    through = as_defense(model).attack_views().get("straight-through")
    return pgd if through is None else Adaptive(pgd, through.model, how="BPDA")


def table2(models: dict, x, y, cfg: GCLNConfig) -> pd.DataFrame:
    """Table 2, ported: BPDA-PGD (:func:`bpda_attack`) on ``cfg.eval_images`` images."""
    n = min(cfg.eval_images, len(x))
    rows = [{**_row(robust_accuracy(m, bpda_attack(m, cfg), x[:n], y[:n])), "model": name, "column": "BPDA",
             "table": "table 2"} for name, m in models.items()]
    return pd.DataFrame(rows)


def table3(models: dict, substitute: nn.Module, x, y, cfg: GCLNConfig, name: str = "the substitute",
           table: str = "table 3") -> pd.DataFrame:
    """Table 3, ported: FGS and PGD crafted on the substitute (black-box transfer) on every model."""
    n = min(cfg.eval_images, len(x))
    atts = paper_attacks(cfg)
    attacks = {"FGS": Transfer(atts["FGS"], substitute, name), "PGD": Transfer(atts["PGD"], substitute, name)}
    return _table(models, attacks, x[:n], y[:n], table)


def table4(models: dict, substitute: nn.Module, x, y, cfg: GCLNConfig) -> pd.DataFrame:
    """Table 4's protocol (SVHN in the paper): clean, white-box PGD (the paper's access) and black-box PGD
    (crafted on the substitute), on ``cfg.eval_images`` images."""
    n = min(cfg.eval_images, len(x))
    pgd = paper_attacks(cfg)["PGD"]
    attacks = {"PGD": pgd, "black-box PGD": Transfer(pgd, substitute, "the substitute")}
    return _table(models, attacks, x[:n], y[:n], "table 4",
                  lambda a, m: a if isinstance(a, Transfer) else paper_access(a, m))


def figure3_qs(zoo: Zoo, x, y, cfg: GCLNConfig) -> pd.DataFrame:
    """Figure 3 (left), ported: accuracy against the quantization step under BPDA (and clean), one GCLN
    per step of ``cfg.sweep_qs()``, on ``cfg.curve_images`` images."""
    n = min(cfg.curve_images, len(x))
    rows = []
    for q in cfg.sweep_qs():
        m = zoo.gcln(q)
        for what, a in (("clean", accuracy(m, x[:n], y[:n])),
                        ("BPDA", robust_accuracy(m, bpda_attack(m, cfg), x[:n], y[:n])),
                        ("paper's PGD", robust_accuracy(m, paper_access(paper_attacks(cfg)["PGD"], m), x[:n], y[:n]))):
            rows.append({**_row(a), "q": q, "Qs": 255 * q, "Qs / eps": q / cfg.eps, "attack": what})
    return pd.DataFrame(rows)


def figure3_steps(models: dict, x, y, cfg: GCLNConfig) -> pd.DataFrame:
    """Figure 3 (right), ported: accuracy against the number of BPDA iterations (``cfg.bpda_steps``)."""
    n = min(cfg.curve_images, len(x))
    return pd.DataFrame([{**_row(robust_accuracy(m, bpda_attack(m, cfg, k), x[:n], y[:n])), "model": name,
                          "iterations": k} for name, m in models.items() for k in cfg.bpda_steps])


def figure4_steps(models: dict, x, y, cfg: GCLNConfig) -> pd.DataFrame:
    """Figure 4 (left), ported: the paper's PGD (its access) against its number of iterations."""
    n = min(cfg.curve_images, len(x))
    return pd.DataFrame([{**_row(robust_accuracy(m, paper_access(paper_attacks(cfg, k)["PGD"], m), x[:n], y[:n])),
                          "model": name, "iterations": k} for name, m in models.items() for k in cfg.pgd_iterations])


def figure4_eps(models: dict, x, y, cfg: GCLNConfig) -> pd.DataFrame:
    """Figure 4 (right), ported: the paper's PGD (its access, 10 steps of eps / 8) against epsilon."""
    n = min(cfg.curve_images, len(x))
    rows = []
    for name, m in models.items():
        for eps in cfg.epsilons:
            a = PGD(eps, cfg.attack_steps, rel_stepsize=cfg.rel_stepsize, seed=cfg.seed, early_stop=True)
            rows.append({**_row(robust_accuracy(m, paper_access(a, m), x[:n], y[:n])), "model": name, "eps": eps})
    return pd.DataFrame(rows)


def access_table(models: dict, x, y, cfg: GCLNConfig) -> pd.DataFrame:
    """The same PGD (the paper's: 10 steps of eps / 8) with each access to a GCLN model: the classifier
    alone (the paper's protocol), end to end with the exact gradient, BPDA through the rounding, BPDA
    through the whole cleaner. One row per (model, access), on ``cfg.eval_images`` images."""
    n = min(cfg.eval_images, len(x))
    rows = []
    for name, m in models.items():
        pgd = paper_attacks(cfg)["PGD"]
        views = m.attack_views()
        for access, att in ((PAPER_ACCESS, paper_access(pgd, m)),
                            ("end to end, exact gradient", pgd),
                            (BPDA_ACCESS,
                             Adaptive(pgd, views["straight-through"].model, how="BPDA")),
                            ("end to end, BPDA through all of G",
                             Adaptive(pgd, views["identity through G"].model, how="BPDA"))):
            rows.append({**_row(robust_accuracy(m, att, x[:n], y[:n])), "model": name, "access": access})
    return pd.DataFrame(rows)


#: the access of the paper's table 1 and of its table 2's BPDA, as :func:`access_table` labels them
PAPER_ACCESS = "the classifier alone (the paper's)"
BPDA_ACCESS = "end to end, BPDA through the rounding"


def access_rows(access: pd.DataFrame) -> pd.DataFrame:
    """The access table's rows that measure the paper's table 1 PGD (the classifier alone) and its table
    2 BPDA (through the rounding), labelled with ``table`` and ``column`` as tables 1-3 are."""
    a = access[access.access == PAPER_ACCESS].assign(table="table 1", column="PGD")
    b = access[access.access == BPDA_ACCESS].assign(table="table 2", column="BPDA")
    return pd.concat([a, b], ignore_index=True)


def paper_attack(m: nn.Module, cfg: GCLNConfig, eps: float) -> Stage:
    """The paper's attack as the cascade's first stage: its PGD with the paper's access
    (:func:`paper_access`: crafted on the classifier alone behind an input defense)."""
    c = cfg if eps == cfg.eps else dataclasses.replace(cfg, eps=eps)
    return Stage("PGD, the paper's access", paper_access(paper_attacks(c)["PGD"], m), "paper's attack")


def cascade_stages(m: nn.Module, cfg: GCLNConfig, eps: float | None = None, source: nn.Module | None = None,
                   light: bool = False) -> list[Stage]:
    """The book's cascade for one model (:func:`qutils.cascade.adaptive_stages`): the paper's PGD (its
    access), APGD-CE through every view, APGD-T through the first, the designed attack
    (:meth:`~qutils.defenses.gcln.GCLN.designed_attacks`: low-frequency PGD, GCLN only), transfer from
    ``source`` (the substitute) and Square. ``light``, the curves' cascade: no APGD-T, transfer or Square."""
    eps = cfg.eps if eps is None else eps
    return chapter_stages(m, cfg, eps, paper_attack(m, cfg, eps), source, light, light_views="all")


def adaptive(models: dict, x, y, cfg: GCLNConfig, eps: float | None = None, n: int | None = None, names=None,
             source: nn.Module | None = None, light: bool = False, progress: bool = True) -> dict:
    """The book's cascade (:func:`cascade_stages`) for every model at L-infinity ``eps`` (default
    ``cfg.eps``) on ``n`` (default ``cfg.adaptive_images``) images. Returns ``{name: CascadeResult}``."""
    return run_cascades(models, x, y, lambda m: cascade_stages(m, cfg, eps, source, light), n or cfg.adaptive_images,
                        names, progress=progress)


def binarization_bounds(models: dict, x, y, cfg: GCLNConfig, results: dict | None = None, epsilons=None,
                        progress: bool = False) -> pd.DataFrame:
    """Feature squeezing's 1-bit input (the chapter's only binarizing model) bounded from both sides
    within ``cfg.certify`` (:func:`qutils.certify.cascade_bounds`): at ``cfg.eps`` the attacks are the
    chapter's cascade (``results``, on the same first images), at the other radii its light version
    (the paper's attack, APGD-CE and the threshold flip)."""
    from ...certify import cascade_bounds

    def light(name, m, xs, ys, eps):
        return adaptive({name: m}, xs, ys, cfg, eps=eps, light=True, progress=False)[name].robust

    return cascade_bounds(models, x, y, cfg.eps, cfg.certify, results, light, "the light cascade", epsilons, progress)


def convergence(models: dict, x, y, cfg: GCLNConfig, results: dict, source: nn.Module | None = None,
                factor: int = 2) -> pd.DataFrame:
    """The convergence check of the cascade (:func:`qutils.cascade.convergence_check`): the same
    cascade with ``factor`` times every attack's budget on the first ``cfg.convergence_images`` images,
    against ``results`` on those images."""
    return convergence_check(adaptive, models, x, y, cfg, results, factor, source=source)


def adaptive_table(results: dict) -> pd.DataFrame:
    return summary_table(results, "model")


def gain_table(results: dict) -> pd.DataFrame:
    """Per model: the paper's attack and the adaptive worst case on the same images, and the drop."""
    return _gain_table(results, "model")


def surviving_gains(results: dict, gcln: str, against=("No defense", "PGD-trained", "Feature squeezing")) -> pd.DataFrame:
    """Is ``gcln`` more robust than each of ``against``, under the paper's attack and under the adaptive
    worst case? (95% intervals.)"""
    return compare_table(results, gcln, against)


def adaptive_curves(models: dict, x, y, cfg: GCLNConfig) -> pd.DataFrame:
    """Accuracy against epsilon (``cfg.epsilons``) on ``cfg.curve_images`` images: the paper's PGD (its
    access) and the light cascade's worst case. One row per (model, attack, eps)."""
    n = min(cfg.curve_images, len(x))
    rows = []
    for eps in cfg.epsilons:
        res = adaptive(models, x, y, cfg, n=n, eps=eps, light=True, progress=False)
        rows += curve_rows(res, eps)
    return pd.DataFrame(rows)


@torch.no_grad()
def frequency_energy(gcln: GCLN, x: torch.Tensor, x_adv: torch.Tensor) -> pd.DataFrame:
    """The perturbation's energy per DCT frequency ``(u, v)`` (mean squared coefficient over blocks and
    images), before the rounding (``x_adv - x``), after it (``R(x_adv) - R(x)``, R the quantized
    transform) and after the whole cleaner (``G(x_adv) - G(x)``); and the clean image's own energy."""
    t = gcln.cleaner.transform
    m = t.block

    def per_freq(img):
        c = t.coefficients(img)
        b, ch, h, w = c.shape
        c = c.reshape(b, ch, h // m, m, w // m, m)
        return (c ** 2).mean(dim=(0, 1, 2, 4)).cpu().numpy()

    cases = {"image": x, "perturbation": x_adv - x, "after the rounding": t(x_adv) - t(x),
             "after the cleaner": gcln.cleaner(x_adv) - gcln.cleaner(x)}
    rows = []
    for what, v in cases.items():
        e = per_freq(v)
        for u in range(m):
            for w_ in range(m):
                rows.append({"signal": what, "u": u, "v": w_, "energy": float(e[u, w_])})
    return pd.DataFrame(rows)


def figure2_maps(gcln: GCLN, x: torch.Tensor, y: torch.Tensor, cfg: GCLNConfig) -> dict:
    """Figure 2's rows for each image: original, attacked (the paper's PGD on the classifier alone) and
    cleaned, with the target's prediction, its mean activation map after its last convolution (and
    ReLU) and a Grad-CAM heatmap (captum's ``LayerGradCam`` on that layer, for the true class), signed:
    Grad-CAM without its final ReLU, so that evidence against the true class shows too."""
    from captum.attr import LayerAttribution, LayerGradCam

    target = gcln.target
    x_adv = paper_access(paper_attacks(cfg)["PGD"], gcln)(gcln, x, y)
    layer = _feature_layer(target)
    cam = LayerGradCam(target, layer)
    out = {"label": y.tolist()}
    for what, img in (("original", x), ("attacked", x_adv), ("cleaned", gcln.clean(x_adv).detach())):
        with torch.no_grad():
            pred = target(img).argmax(1)
        fmap = hooked(target, layer, img, lambda i, o: o).relu().mean(1)
        heat = LayerAttribution.interpolate(cam.attribute(img, target=y, relu_attributions=False),
                                            tuple(img.shape[-2:]))
        out[what] = {"image": img[:, 0].cpu().numpy(), "pred": pred.tolist(), "features": fmap.cpu().numpy(),
                     "heatmap": heat[:, 0].detach().cpu().numpy()}
    return out


def _feature_layer(model: nn.Module) -> nn.Module:
    """Grad-CAM's layer: the activation after the last convolution (the last ReLU before the first
    fully connected layer), or the last convolution if no ReLU module follows it."""
    last_conv = last_relu = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            break
        if isinstance(m, nn.Conv2d):
            last_conv, last_relu = m, None
        elif isinstance(m, nn.ReLU) and last_conv is not None:
            last_relu = m
    if last_conv is None:
        raise ValueError("the classifier has no convolution to take a heatmap of")
    return last_relu or last_conv


@torch.no_grad()
def detector_scores(zoo: Zoo, q: float, x: torch.Tensor, y: torch.Tensor, cfg: GCLNConfig) -> pd.DataFrame:
    """What D sees: its probability of "clean" on clean images, on attacked ones (the paper's PGD on the
    classifier alone) and on both after the cleaner."""
    gcln, d = zoo.gcln(q), zoo.detectors[q]
    with torch.enable_grad():
        x_adv = paper_access(paper_attacks(cfg)["PGD"], gcln)(gcln, x, y)
    rows = []
    for what, img in (("clean", x), ("attacked", x_adv), ("clean, cleaned", gcln.clean(x)),
                      ("attacked, cleaned", gcln.clean(x_adv))):
        p = torch.sigmoid(d(img))
        rows.append({"input": what, "P(clean) mean": float(p.mean()), "judged clean": float((p > 0.5).float().mean())})
    return pd.DataFrame(rows)

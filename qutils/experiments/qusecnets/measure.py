"""What the QuSecNets chapter measures: the paper's experiments (figures 5, 7, 9, 10, 11) and the
adaptive evaluation, as functions both notebooks (MNIST and Fashion-MNIST) call."""
from __future__ import annotations

import pandas as pd
import torch
import torch.nn as nn

from ...attacks import CWL2, FGSM, JSMA, PGD, Adaptive, all_targets
from ...cascade import Stage, chapter_stages, convergence_check, run_cascades, summary_table
from ...defenses import QuSecNet
from ...defenses.protocol import as_defense
from ...evaluate import (Accuracy, accuracy, accuracy_row as _row, attack_table, compare_accuracies, defense_table, pick,
                         predict, robust_accuracy)
from ...progress import progress as _progress
from .config import NO_DEFENSE, QuSecNetsConfig
from .zoo import _info

__all__ = ["reproduce", "zoo_frame", "pick", "headline", "fgsm_pivot", "transfer_beats_white_box", "threshold_crossable", "crossable_table",
           "paper_protocol", "paper_attack", "cascade_stages", "adaptive", "adaptive_table", "convergence", "adaptive_curves", "sign_masking", "vq_cost_comparison", "exercise_reference",
           "binarization_bounds"]


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


def paper_protocol(defs: dict, x: torch.Tensor, y: torch.Tensor, cfg: QuSecNetsConfig) -> dict:
    """The part of :func:`reproduce` the adaptive page's claims need: white-box FGSM at ``cfg.eps``
    through every defense as deployed, on the same ``cfg.eval_images`` images, as ``{"fgsm": frame}``
    (the same numbers as ``reproduce``'s rows, in seconds instead of minutes)."""
    n = min(cfg.eval_images, len(x))
    white = defense_table(defs, [FGSM(cfg.eps)], [cfg.eps], x[:n], y[:n], progress=False)
    return {"fgsm": white.assign(setting="white-box")}


def headline(tabs: dict, cfg: QuSecNetsConfig) -> pd.DataFrame:
    """FGSM at the headline radius, white- and black-box, one row per defense (figure 9's bars)."""
    f = tabs["fgsm"]
    return f[(f["eps"] - cfg.eps).abs() < 1e-9].reset_index(drop=True)


def fgsm_pivot(head: pd.DataFrame, order) -> pd.DataFrame:
    """Figure 9's numbers as a table: one row per defense, white-box and transferred FGSM with intervals."""
    from ...report import acc

    return pd.DataFrame([{"defense": name, **{f"{s} (%)": acc(pick(head, defense=name, setting=s))
                                              for s in ("white-box", "black-box")}} for name in order])


def zoo_frame(zoo: dict) -> pd.DataFrame:
    """One row per trained model: epochs trained, the epoch kept and its validation clean accuracy."""
    return pd.DataFrame([{"model": k, "epochs trained": len(r.history), "kept epoch": r.best_epoch,
                          "val. clean accuracy (%)": max([h.get("val_clean", float("nan")) for h in r.history]
                                                         or [float("nan")])} for k, r in zoo.items()])


def transfer_beats_white_box(tabs: dict, cfg: QuSecNetsConfig) -> list[str]:
    """Defenses where FGSM transferred from the substitute does significantly *more* damage than
    white-box FGSM: the white-box gradient is not doing its job (gradient masking's first sign)."""
    h = headline(tabs, cfg)
    out = []
    for name in h["defense"].unique():
        wb, bb = pick(h, defense=name, setting="white-box"), pick(h, defense=name, setting="black-box")
        if compare_accuracies(bb, wb) == "lower":
            out.append(name)
    return out


def threshold_crossable(x: torch.Tensor, thresholds, eps: float) -> float:
    """Share of pixels within ``eps`` of a threshold: the only pixels an L-infinity attack of radius
    ``eps`` can move to another quantization level."""
    t = torch.as_tensor(thresholds, dtype=x.dtype).flatten()
    return float(((x.unsqueeze(-1) - t).abs() <= eps).any(-1).float().mean())


def crossable_table(x: torch.Tensor, cfg: QuSecNetsConfig) -> pd.DataFrame:
    """Share of test pixels (%) within eps of a CQ threshold, for each epsilon and number of levels."""
    from ...defenses import constant_thresholds

    return pd.DataFrame([{"eps": e, **{f"n = {n}": 100 * threshold_crossable(x, constant_thresholds(n), e)
                                       for n in cfg.cq_levels}}
                         for e in sorted(set(cfg.fgsm_epsilons) - {0.0})])


def paper_attack(m: nn.Module, cfg: QuSecNetsConfig, eps: float) -> Stage:
    """The paper's attack as the cascade's first stage: white-box FGSM with the gradient of the model
    as the paper published it (a QuSecNet's soft layer), scored on the deployed model."""
    published = as_defense(m).as_published()
    attack = FGSM(eps) if published is None else Adaptive(FGSM(eps), published, how="gradient as deployed by the paper")
    return Stage("FGSM, the paper's attack", attack, "paper's attack")


def cascade_stages(m: nn.Module, cfg: QuSecNetsConfig, eps: float | None = None, source: nn.Module | None = None,
                   light: bool = False) -> list[Stage]:
    """The book's cascade for one model (:func:`qutils.cascade.adaptive_stages`): the paper's attack
    (:func:`paper_attack`), APGD-CE and APGD-T through every attack view of the defense protocol, the
    attack designed for input quantization (:class:`~qutils.attacks.ThresholdFlip`, for QuSecNets and
    bit-depth reduction), transfer from ``source`` if given, and Square on every survivor. ``light``:
    APGD-CE through the first view and the designed attack only."""
    eps = cfg.eps if eps is None else eps
    return chapter_stages(m, cfg, eps, paper_attack(m, cfg, eps), source, light)


def adaptive(models: dict, x: torch.Tensor, y: torch.Tensor, cfg: QuSecNetsConfig, eps: float | None = None,
             n: int | None = None, names=None, source: nn.Module | None = None, light: bool = False,
             progress: bool = True) -> dict:
    """The book's adaptive cascade (:func:`cascade_stages`) for every model at L-infinity ``eps``
    (default ``cfg.eps``) on ``n`` (default ``cfg.adaptive_images``) images, each deployed as the book
    deploys it (QuSecNets exactly quantized). Returns ``{name: CascadeResult}``."""
    return run_cascades(models, x, y, lambda m: cascade_stages(m, cfg, eps, source, light), n or cfg.adaptive_images,
                        names, progress=progress)


def convergence(models: dict, x: torch.Tensor, y: torch.Tensor, cfg: QuSecNetsConfig, results: dict,
                factor: int = 2) -> pd.DataFrame:
    """The convergence check of the cascade (:func:`qutils.cascade.convergence_check`): the same
    cascade with ``factor`` times every attack's budget on the first ``cfg.convergence_images`` images,
    against ``results`` on those images."""
    return convergence_check(adaptive, models, x, y, cfg, results, factor)


def adaptive_table(results: dict) -> pd.DataFrame:
    """One row per defense: clean, the paper's attack, the worst case and the stage that broke the most
    images (:func:`qutils.cascade.summary_table`)."""
    return summary_table(results, "model")


def adaptive_curves(defs: dict, x: torch.Tensor, y: torch.Tensor, cfg: QuSecNetsConfig, name: str = "CQ n=2"):
    """Accuracy against epsilon on ``cfg.curve_images`` images for the exactly quantized ``name``:
    PGD with autograd (zero gradient), PGD+BPDA (straight-through) and, for reference, PGD on the
    undefended CNN. Returns the attack-table rows of :func:`qutils.evaluate.attack_table`."""
    n = min(cfg.curve_images, len(x))
    xc, yc = x[:n], y[:n]
    net = defs[name]
    hard = net.view("hard")
    pgd = PGD(cfg.eps, steps=cfg.pgd_steps, early_stop=True, seed=cfg.seed)
    eps_grid = list(cfg.fgsm_epsilons)
    return pd.concat([
        attack_table(hard, [pgd], eps_grid, xc, yc, progress=False).assign(attack=f"{name} (hard): PGD, autograd"),
        attack_table(hard, [Adaptive(pgd, net.view("hard", "identity"))], eps_grid, xc, yc, progress=False
                     ).assign(attack=f"{name} (hard): PGD+BPDA"),
        attack_table(defs[NO_DEFENSE], [pgd], eps_grid, xc, yc, progress=False).assign(attack="no defense: PGD"),
    ], ignore_index=True)


def binarization_bounds(defs: dict, x: torch.Tensor, y: torch.Tensor, cfg: QuSecNetsConfig, results: dict | None = None,
                        epsilons=None, progress: bool = False) -> pd.DataFrame:
    """Robust accuracy of every binarizing model (two-level CQ and VQ, 1-bit feature squeezing)
    bounded from both sides within ``cfg.certify`` (:func:`qutils.certify.cascade_bounds`): at
    ``cfg.eps`` the attacks are the chapter's adaptive cascade (``results``, run on the same first
    images), at the other radii its light version (APGD-CE through the first view and the threshold flip)."""
    from ...certify import cascade_bounds

    def light(name, m, xs, ys, eps):
        return adaptive({name: m}, xs, ys, cfg, eps=eps, light=True, progress=False)[name].robust

    return cascade_bounds(defs, x, y, cfg.eps, cfg.certify, results, light, "APGD-CE + threshold flip", epsilons,
                          progress)


def sign_masking(net: QuSecNet, x: torch.Tensor, y: torch.Tensor, eps: float) -> dict:
    """The paper's critique of DQA's ``sign``, tested on QuSecNets' own exact quantizer: FGSM with
    autograd (a zero gradient) against FGSM with straight-through BPDA. Returns both accuracies and
    the share of "adversarial" images autograd left unchanged."""
    hard = net.view("hard")
    acc_auto, adv_auto = robust_accuracy(hard, FGSM(eps), x, y, return_adv=True)
    acc_bpda, adv_bpda = robust_accuracy(hard, Adaptive(FGSM(eps), net.view("hard", "identity")), x, y,
                                         return_adv=True)
    return {"autograd": acc_auto, "bpda": acc_bpda,
            "unchanged": float((adv_auto == x).flatten(1).all(1).float().mean()),
            "bpda_mean_perturbation": float((adv_bpda - x).abs().mean())}


def vq_cost_comparison(tabs: dict, cfg: QuSecNetsConfig, results: dict | None = None) -> pd.DataFrame:
    """VQ trained with the paper's eq.-2 cost against cross-entropy: clean (soft and hard), FGSM
    white- and black-box, C&W and, given the adaptive ``results``, the adaptive worst case, each an
    Accuracy."""
    names = ["VQ (eq. 2 cost)", "VQ (cross-entropy)"]
    rows = []
    for name in names:
        c, f, cw = tabs["clean"], tabs["fgsm"], tabs["cw"]
        row = {"model": name,
               "clean (soft)": pick(c, defense=name, mode="as deployed (soft)"),
               "clean (hard)": pick(c, defense=name, mode="hard"),
               "FGSM white-box": pick(f, defense=name, setting="white-box", eps=cfg.eps),
               "FGSM black-box": pick(f, defense=name, setting="black-box", eps=cfg.eps),
               "C&W L2 white-box": pick(cw[~cw.targeted], defense=name, setting="white-box")}
        if results is not None:
            row["adaptive worst case"] = results[name].worst
        rows.append(row)
    return pd.DataFrame(rows)


def exercise_reference(which: str, defs: dict, x: torch.Tensor, y: torch.Tensor):
    """The reference answers of the chapter's exercises (the self-checks compare with these, and
    never print them)."""
    from ...defenses import constant_thresholds

    if which == "thresholds":
        return constant_thresholds(5).tolist()
    if which == "crossable":
        return threshold_crossable(x, [0.5], 0.2)
    if which == "vq-bpda":
        net, pgd = defs["VQ + adv. training"], PGD(0.3, steps=10, early_stop=True)
        return (robust_accuracy(net.view("hard"), pgd, x[:100], y[:100]).value,
                robust_accuracy(net.view("hard"), Adaptive(pgd, net.view("hard", "identity")), x[:100], y[:100]).value)
    if which == "masked-fgsm":
        hard = defs["CQ n=2"].view("hard")
        return float((FGSM(0.3)(hard, x[:200], y[:200]) == x[:200]).flatten(1).all(1).float().mean())
    if which == "binarization":
        from ...defenses import BitDepthReduction, InputTransformModel

        fs = InputTransformModel(BitDepthReduction(1), defs[NO_DEFENSE]).eval()
        return (accuracy(fs, x[:500], y[:500]).value, accuracy(defs["CQ n=2"].view("hard"), x[:500], y[:500]).value)
    if which == "crossable-n4":
        return threshold_crossable(x, constant_thresholds(4), 0.1)
    if which == "grey-levels":
        return float(((x > 0) & (x < 1)).float().mean())
    raise ValueError(f"no exercise {which!r}")

"""What the Q-Layer chapter measures: the paper's attacks (tables 1-3, 6-11, the grid of table 8),
where the gradient is, and the adaptive cascade. Every notebook of the chapter (MNIST, Fashion-MNIST,
Q-inner, ablations) calls these functions; :mod:`.analysis` asks what a cell owes to the seed and
figure 2's question, :mod:`.paper_comparisons` sets our numbers against the paper's claims."""
from __future__ import annotations

import dataclasses

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...attacks import BIM, FGSM, Adaptive, CWLinf
from ...cascade import Stage, chapter_stages, convergence_check, run_cascades, summary_table
from ...defenses.protocol import as_defense
from ...defenses.qlayer import QLayerNet
from ...evaluate import Accuracy, accuracy, accuracy_row as _row, predict, robust_accuracy
from ...progress import progress as _progress
from .config import RAW, SOURCE_A, QLayerConfig
from .zoo import Zoo

__all__ = ["paths", "clean_rows", "black_box", "white_box", "headline_protocol", "paper_attack", "cascade_stages",
           "stage_table", "gradient_table", "adaptive", "adaptive_table", "convergence", "ablation_grid"]


def paths(model: nn.Module) -> dict:
    """The outputs a target is scored on: the Q-path (what the paper reports) and the E-path."""
    if isinstance(model, QLayerNet):
        return {"Q-path": model.view("q"), "E-path": model.view("e")}
    return {"-": model}


def _scored(model_paths: dict, x_adv: torch.Tensor, y: torch.Tensor, atk, threat: str, **labels) -> list[dict]:
    """Rows for examples ``x_adv`` (crafted once with ``atk``) scored on every path of every target."""
    rows = []
    for target, ps in model_paths.items():
        for path, m in ps.items():
            ok = int((predict(m, x_adv) == y).sum())
            acc = Accuracy(ok, len(y), atk.name, threat, str(atk.norm), atk.eps, atk.steps)
            rows.append(_row(acc, model=target, path=path, **labels))
    return rows


def _attacks(cfg: QLayerConfig, white: bool) -> list:
    out = []
    for eps in cfg.epsilons:
        out.append(FGSM(eps))
        out.append(BIM(eps, steps=cfg.bim_steps, abs_stepsize=min(cfg.bim_stepsize, eps)))
        if white:
            out.append(CWLinf(eps, steps=cfg.cw_steps, confidence=cfg.cw_confidence, seed=cfg.seed))
    return out


def clean_rows(targets: dict, x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    return [_row(accuracy(v, x, y), model=name, path=path, source="-")
            for name, m in targets.items() for path, v in paths(m).items()]


def black_box(targets: dict, sources: dict, x: torch.Tensor, y: torch.Tensor, cfg: QLayerConfig,
              progress: bool = True, crafted: dict | None = None) -> pd.DataFrame:
    """Tables 1, 3a, 7 and 9 (and 6a): FGSM and BIM at ``cfg.epsilons`` crafted on each of ``sources``
    ({name: model}) and scored on the Q-path and E-path of every target. One row per
    (target, path, source, attack, eps), plus clean accuracy, on the first ``cfg.eval_images`` images.

    ``crafted``: a dict that keeps the adversarial examples by (source name, attack, images);
    pass the same dict to a later call to score more targets on the same examples without
    crafting them again."""
    x, y = x[:cfg.eval_images], y[:cfg.eval_images]
    crafted = {} if crafted is None else crafted
    model_paths = {name: paths(m) for name, m in targets.items()}
    rows = clean_rows(targets, x, y)
    jobs = [(s, a) for s in sources for a in _attacks(cfg, white=False)]
    for sname, attack in _progress(jobs, enabled=progress, desc="black-box"):
        key = (sname, repr(attack), len(x))
        if key not in crafted:
            crafted[key] = (x, y, robust_accuracy(sources[sname], attack, x, y, return_adv=True)[1])
        cx, cy, x_adv = crafted[key]
        if not (torch.equal(cx, x) and torch.equal(cy, y)):
            raise ValueError(f"`crafted` holds {sname}'s {attack.name} examples of other images")
        rows += _scored(model_paths, x_adv, y, attack, "black-box (transfer)", source=sname)
    return pd.DataFrame(rows)


def white_box(targets: dict, x: torch.Tensor, y: torch.Tensor, cfg: QLayerConfig, via: str = "e",
              progress: bool = True) -> pd.DataFrame:
    """Tables 2, 3b, 6b and 10 (``via="e"``: the paper's E-path white-box attack) and table 11
    (``via="shortcut"``: eq. 9, the Q-path with the quantizer skipped): FGSM, BIM and C&W-Linf crafted
    on that view of each target and scored on its Q-path and E-path, on the first ``cfg.white_images``
    images. Plain CNNs are attacked directly."""
    if via not in ("e", "shortcut"):
        raise ValueError(f"via must be 'e' (E-path) or 'shortcut' (eq. 9), got {via!r}")
    x, y = x[:cfg.white_images], y[:cfg.white_images]
    rows = clean_rows(targets, x, y)
    label = {"e": "E-path", "shortcut": "Q-path shortcut (eq. 9)"}[via]
    jobs = [(n, a) for n in targets for a in _attacks(cfg, white=True)]
    for name, attack in _progress(jobs, enabled=progress, desc=f"white-box via {label}"):
        m = targets[name]
        q = isinstance(m, QLayerNet)
        _, x_adv = robust_accuracy(m.view(via) if q else m, attack, x, y, return_adv=True)
        rows += _scored({name: paths(m)}, x_adv, y, attack, f"white-box via {label}" if q else "white-box",
                        source=label if q else "itself")
    return pd.DataFrame(rows)


def headline_protocol(zoo: Zoo, targets: dict, x: torch.Tensor, y: torch.Tensor, cfg: QLayerConfig,
                      progress: bool = False) -> dict:
    """The paper's attacks at the headline radius only (``cfg.eps``): black-box from both sources,
    white-box via the E-path and via the shortcut. The adaptive notebooks join these with the
    adaptive worst case in the claims ledger (the same functions and images as the reproduction
    notebooks, so the same numbers)."""
    one = dataclasses.replace(cfg, epsilons=(cfg.eps,))
    qnets = {k: m for k, m in targets.items() if isinstance(m, QLayerNet)}
    return {"black_box": black_box(targets, zoo.sources(), x, y, one, progress=progress),
            "white_box_e": white_box(targets, x, y, one, via="e", progress=progress),
            "white_box_shortcut": white_box(qnets, x, y, one, via="shortcut", progress=progress)}



# ---------------------------------------------------------------------------------------------
# the adaptive test
# ---------------------------------------------------------------------------------------------
def _input_grad(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dev = next(m.parameters()).device
    x = x.clone().to(dev).requires_grad_(True)
    F.cross_entropy(m(x), y.to(dev), reduction="sum").backward()
    return x.grad.detach().cpu().flatten(1)


def gradient_table(targets: dict, x: torch.Tensor, y: torch.Tensor) -> pd.DataFrame:
    """For every Q-Layer network of ``targets``: the L1 norm of the input gradient of the loss through
    the deployed Q-path (autograd) and through each attack view, and the mean cosine (per image) of
    each with the straight-through (BPDA) gradient. Zero where the gradient is exactly zero."""
    rows = []
    for name, m in targets.items():
        if not isinstance(m, QLayerNet):
            continue
        ref = _input_grad(m.view("q", "identity"), x, y)
        views = {"Q-path, autograd": m.deployed(), **{k: v.model for k, v in m.attack_views().items()},
                 "soft assignment (designed)": m.view("q", "soft")}
        for label, view in views.items():
            g = _input_grad(view, x, y)
            norm = float(g.abs().sum())
            cos = float(F.cosine_similarity(g, ref, dim=1).mean()) if norm > 0 else 0.0
            rows.append({"model": name, "view": label, "gradient L1 norm": norm, "cosine with straight-through": cos})
    return pd.DataFrame(rows)


def paper_attack(m: nn.Module, cfg: QLayerConfig, eps: float) -> Stage:
    """The paper's white-box attack as the cascade's first stage: FGSM on the E-path for a model whose
    protocol offers one (a Q-Layer network; its examples scored on the deployed Q-path), plain FGSM
    otherwise."""
    e_path = as_defense(m).attack_views().get("E-path")
    if e_path is not None:
        return Stage("FGSM on the E-path, the paper's attack", Adaptive(FGSM(eps), e_path.model, how="E-path"),
                     "paper's attack")
    return Stage("FGSM, the paper's attack", FGSM(eps), "paper's attack")


def cascade_stages(m: nn.Module, cfg: QLayerConfig, eps: float | None = None, source: nn.Module | None = None,
                   light: bool = False) -> list[Stage]:
    """The book's cascade for one model (:func:`qutils.cascade.adaptive_stages`), deployed as the paper
    reports it (the Q-path): the paper's attack (FGSM on the E-path), APGD-CE through every attack view
    (straight-through, E-path, shortcut), APGD-T through the straight-through view, the designed
    attack (:meth:`~qutils.defenses.QLayerNet.designed_attacks`: APGD-DLR through a soft
    nearest-concept assignment), transfer from ``source`` (the undefended CNN) unless the model is
    the source, and Square on every survivor. Nothing is random at test time, so no EOT. ``light``:
    APGD-CE through the first view and the designed attack only."""
    eps = cfg.eps if eps is None else eps
    return chapter_stages(m, cfg, eps, paper_attack(m, cfg, eps), source, light,
                          ("the undefended CNN", "the undefended CNN"))


def adaptive(models: dict, x: torch.Tensor, y: torch.Tensor, cfg: QLayerConfig, eps: float | None = None,
             n: int | None = None, names=None, source: nn.Module | None = None, light: bool = False,
             progress: bool = True) -> dict:
    """The book's adaptive cascade (:func:`cascade_stages`) for every model at L-infinity ``eps``
    (default ``cfg.eps``) on the first ``n`` (default ``cfg.adaptive_images``) images; ``source``
    (the transfer stage's network) defaults to the undefended ``"CNN"`` of ``models`` where it is
    one of them. Returns ``{name: CascadeResult}``."""
    source = models.get(RAW[0]) if source is None else source
    return run_cascades(models, x, y, lambda m: cascade_stages(m, cfg, eps, source, light), n or cfg.adaptive_images,
                        names, progress=progress)


def convergence(models: dict, x: torch.Tensor, y: torch.Tensor, cfg: QLayerConfig, results: dict,
                factor: int = 2) -> pd.DataFrame:
    """The convergence check of the cascade (:func:`qutils.cascade.convergence_check`): the same
    cascade with ``factor`` times every attack's budget on the first ``cfg.convergence_images`` images,
    against ``results`` on those images."""
    return convergence_check(adaptive, models, x, y, cfg, results, factor)


def adaptive_table(results: dict) -> pd.DataFrame:
    """One row per model: clean, the paper's attack, the worst case and the stage that broke the most."""
    return summary_table(results, "model")


def stage_table(results: dict) -> pd.DataFrame:
    """Every stage of every model's cascade: images attacked, broken, accuracy after it (fractions,
    with 95% intervals) and seconds."""
    return pd.concat([r.table().assign(model=name) for name, r in results.items()], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# table 8
# ---------------------------------------------------------------------------------------------
def ablation_grid(zoo: Zoo, names: dict, cfg: QLayerConfig, x: torch.Tensor, y: torch.Tensor,
                  eps: float | None = None) -> pd.DataFrame:
    """Table 8: Q-path accuracy of every (K, nc) model of ``names`` (``{(K, nc): zoo name}``, see
    :func:`.config.grid_names`) under FGSM at ``eps`` (default ``cfg.eps``) crafted once on CNN_A
    (black-box), on the first ``cfg.eval_images`` images, with each model's clean accuracy."""
    eps = cfg.eps if eps is None else eps
    x, y = x[:cfg.eval_images], y[:cfg.eval_images]
    attack = FGSM(eps)
    _, x_adv = robust_accuracy(zoo[SOURCE_A], attack, x, y, return_adv=True)
    rows = []
    for (k, nc), name in names.items():
        m = zoo[name]
        rows += _scored({name: {"Q-path": m.view("q")}}, x_adv, y, attack, "black-box (transfer)", K=k, nc=nc)
        c = accuracy(m.view("q"), x, y)
        rows[-1].update(clean=c.value, clean_lo=c.ci[0], clean_hi=c.ci[1])
    return pd.DataFrame(rows)

"""What the Q-Layer chapter measures: the paper's attacks (tables 1-3, 6-11), how much a cell owes to
the training seed, figure 2's question, where the gradient is, and the adaptive cascade. Every
notebook of the chapter (MNIST, Fashion-MNIST, Q-inner, ablations) calls these functions."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...attacks import BIM, FGSM, Adaptive, CWLinf
from ...cascade import Stage, chapter_stages, convergence_check, run_cascades, summary_table
from ...defenses.protocol import as_defense
from ...defenses.qlayer import QLayerNet
from ...evaluate import Accuracy, accuracy, compare_accuracies, accuracy_row as _row, pick, predict, robust_accuracy
from ...profiles import Profile
from ...progress import progress as _progress
from .config import PAIRS, RAW, SOURCE_A, QLayerConfig
from .zoo import Zoo, seed_runs

__all__ = ["paths", "clean_rows", "black_box", "white_box", "headline_protocol", "seed_spread", "shortcut_vs_e", "paper_attack", "cascade_stages", "stage_table",
           "kl_divergence", "concept_usage", "usage_table", "distribution_shift", "shift_table", "gradient_table",
           "adaptive", "adaptive_table", "comparison", "comparisons", "surviving_gains", "inner_comparisons",
           "ablation_comparisons", "ablation_grid",
           "exercise_reference"]


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
# how much does one training run decide?
# ---------------------------------------------------------------------------------------------
def seed_spread(zoo: Zoo, names, x: torch.Tensor, y: torch.Tensor, cfg: QLayerConfig, profile: Profile,
                crafted: dict | None = None, device=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every training run (seed) of each of ``names`` scored on the examples of table 1 (crafted on
    CNN_A, Q-path). Returns ``(runs, spread)``: one row per (run, attack), and one row per (method,
    attack) with the spread between runs, the widest 95% interval and whether the best and worst run
    differ significantly."""
    runs = {f"{name}, seed {s}": m for name in names
            for s, m in seed_runs(zoo, name, cfg, profile, device=device).items()}
    df = black_box(runs, {SOURCE_A: zoo[SOURCE_A]}, x, y, cfg, progress=False, crafted=crafted)
    df = df[(df.path == "Q-path") & (df.attack != "none")].reset_index(drop=True)
    rows = []
    for name in names:
        sub = df[df.model.str.startswith(name + ", seed")]
        for (atk, eps), g in sub.groupby(["attack", "eps"], sort=False):
            lo = pick(sub, model=g.loc[g.accuracy.idxmin(), "model"], attack=atk, eps=eps)
            hi = pick(sub, model=g.loc[g.accuracy.idxmax(), "model"], attack=atk, eps=eps)
            rows.append({"method": name, "attack": f"{atk} {eps:g}", "runs": len(g),
                         "spread between runs (points)": 100 * (hi.value - lo.value),
                         "widest 95% CI (points)": 100 * (g.ci_high - g.ci_low).max(),
                         "runs differ significantly": "yes" if compare_accuracies(hi, lo) == "higher" else "no"})
    return df, pd.DataFrame(rows)


def shortcut_vs_e(shortcut: pd.DataFrame, e_path: pd.DataFrame, cfg: QLayerConfig) -> pd.DataFrame:
    """Cell by cell (Q-Layer network, attack, radius): Q-path accuracy under the eq.-9 shortcut attack
    against under the E-path attack, and which left less (95% intervals)."""
    rows = []
    for name in shortcut.model.unique():
        for eps in cfg.epsilons:
            for atk in ("FGSM", "BIM", "CW-Linf"):
                a = pick(shortcut, model=name, path="Q-path", attack=atk, eps=eps)
                b = pick(e_path, model=name, path="Q-path", attack=atk, eps=eps)
                rows.append({"model": name, "attack": atk, "eps": eps, "shortcut": a, "E-path": b,
                             "shortcut against E-path": compare_accuracies(a, b)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# concepts, figure 2
# ---------------------------------------------------------------------------------------------
def kl_divergence(p: np.ndarray, q: np.ndarray, smoothing: float = 1.0) -> float:
    """KL(p || q) in nats between two histograms of counts, with ``smoothing`` added to every bin
    (Laplace) so that an empty bin does not make it infinite."""
    p, q = np.asarray(p, dtype=float) + smoothing, np.asarray(q, dtype=float) + smoothing
    if p.shape != q.shape:
        raise ValueError(f"histograms of different shapes: {p.shape} and {q.shape}")
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


@torch.no_grad()
def concept_usage(model: QLayerNet, x: torch.Tensor, batch_size: int = 500):
    """How often each concept of each head is chosen on ``x``: (K, nc) counts; and the indices
    (K, n, positions) of every panel's concept."""
    if not isinstance(model, QLayerNet):
        raise ValueError("concept_usage needs a Q-Layer network")
    dev = next(model.parameters()).device
    model.eval()
    idx = []
    for i in range(0, len(x), batch_size):
        out = model.qlayer(model.encoder(x[i:i + batch_size].to(dev)))
        idx.append(out.index.view(model.qlayer.heads, min(batch_size, len(x) - i), -1).cpu())
    index = torch.cat(idx, 1)
    counts = torch.stack([torch.bincount(index[k].flatten(), minlength=model.qlayer.nc)
                          for k in range(model.qlayer.heads)])
    return counts, index


def usage_table(models: dict, x: torch.Tensor) -> tuple[pd.DataFrame, dict]:
    """One row per (Q-Layer network, head): concepts used on ``x``, the top concept's share, how many
    concepts cover 90% of the panels and the panels per image. Also ``{name: (K, nc) counts}``."""
    rows, counts = [], {}
    for name, m in models.items():
        c, idx = concept_usage(m, x)
        counts[name] = c
        for h in range(c.shape[0]):
            share = c[h].sort(descending=True).values.float() / c[h].sum()
            rows.append({"model": name, "head": h + 1, "concepts used": f"{int((c[h] > 0).sum())} of {c.shape[1]}",
                         "top concept's share (%)": float(100 * share[0]),
                         "concepts covering 90% of panels": int((share.cumsum(0) < 0.9).sum()) + 1,
                         "panels per image": idx.shape[-1]})
    return pd.DataFrame(rows), counts


def distribution_shift(model: QLayerNet, source: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                       bins: int = 32) -> dict:
    """Figure 2's question -- does FGSM (crafted on ``source``, radius ``eps``) move the distribution
    of concepts less than the distribution of pixels? -- answered with histograms instead of a
    PixelCNN: the KL divergence (clean || adversarial) of the pixel-intensity histogram (``bins``
    bins on [0, 1]) and of the concept-usage histogram (nc bins per head, averaged over heads), and
    the share of pixels / panels whose value / concept the attack changed."""
    _, x_adv = robust_accuracy(source, FGSM(eps), x, y, return_adv=True)
    ph = np.histogram(x.numpy().ravel(), bins=bins, range=(0, 1))[0]
    pa = np.histogram(x_adv.numpy().ravel(), bins=bins, range=(0, 1))[0]
    ch, ci = concept_usage(model, x)
    ca, cia = concept_usage(model, x_adv)
    return {"eps": eps, "pixel_hist_clean": ph, "pixel_hist_adv": pa, "concept_hist_clean": ch.numpy(),
            "concept_hist_adv": ca.numpy(), "kl_pixels": kl_divergence(ph, pa),
            "kl_concepts": float(np.mean([kl_divergence(ch[k].numpy(), ca[k].numpy()) for k in range(len(ch))])),
            "pixels_changed": float((x_adv != x).float().mean()), "concepts_changed": float((ci != cia).float().mean())}


def shift_table(zoo: Zoo, names, x: torch.Tensor, y: torch.Tensor, cfg: QLayerConfig) -> tuple[pd.DataFrame, dict]:
    """:func:`distribution_shift` for each of ``names`` (FGSM at ``cfg.fig2_eps`` crafted on CNN_A, the
    first ``cfg.fig2_images`` images): one row per network, and the full results by name."""
    n = cfg.fig2_images
    shifts = {name: distribution_shift(zoo[name], zoo[SOURCE_A], x[:n], y[:n], cfg.fig2_eps) for name in names}
    rows = [{"model": name, "FGSM eps": d["eps"], "KL pixels": d["kl_pixels"], "KL concepts": d["kl_concepts"],
             "pixels changed (%)": 100 * d["pixels_changed"], "panels whose concept changed (%)": 100 * d["concepts_changed"]}
            for name, d in shifts.items()]
    return pd.DataFrame(rows), shifts


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
# the paper's comparisons
# ---------------------------------------------------------------------------------------------
def comparison(text: str, a: Accuracy, b: Accuracy, expected: str = "higher") -> dict:
    """One row of a comparisons table: the paper says ``a`` is ``expected`` ("higher", "lower" or
    "no significant difference") against ``b``; ours says which, with 95% intervals."""
    ours = compare_accuracies(a, b)
    return {"the paper's comparison": text, "A": a, "B": b, "ours": ours, "supported": "yes" if ours == expected else "no"}


def comparisons(bb: pd.DataFrame, wb: pd.DataFrame, cfg: QLayerConfig, table: dict, shortcut: pd.DataFrame | None = None):
    """The comparisons of sections 4.2-4.3 on our numbers at the headline radius: each Q-Layer network
    against the CNN trained alike (black-box FGSM and BIM from CNN_A, the E-path FGSM), the raw Q-large
    against the adversarially trained CNN, the clean cost, the Q-path against the E-path (table 6a)
    and, given ``shortcut``, the shortcut against the E-path attack (table 11). ``table``: the paper's
    table names for this dataset, ``{"black": "1a", "white": "2a"}``."""
    e = cfg.eps
    bba = bb[bb.source.isin([SOURCE_A, "-"])]
    A = lambda df, model, **kw: pick(df, model=model, path="-" if model.startswith("CNN") else "Q-path", **kw)  # noqa: E731
    rows = []
    for q, ref in PAIRS:
        atks = ("BIM",) if q.endswith("+ adv") else ("FGSM", "BIM")
        for atk in atks:
            rows.append(comparison(f"black-box {atk} {e:g}: {q} above {ref} (table {table['black']})",
                                   A(bba, q, attack=atk, eps=e), A(bba, ref, attack=atk, eps=e)))
        if not q.endswith("+ adv"):
            rows.append(comparison(f"white-box FGSM {e:g}: {q} (E-path attack) above {ref} (table {table['white']})",
                                   A(wb, q, attack="FGSM", eps=e), A(wb, ref, attack="FGSM", eps=e)))
    rows.append(comparison(f"black-box BIM {e:g}: raw Q-large above the adversarially trained CNN (section 4.2)",
                           A(bba, "Q-large", attack="BIM", eps=e), A(bba, "CNN + adv", attack="BIM", eps=e)))
    rows.append(comparison(f"clean: Q-base below the CNN (table {table['black']})", A(bba, "Q-base", attack="none"),
                           A(bba, "CNN", attack="none"), expected="lower"))
    for q in ("Q-base", "Q-large"):
        rows.append(comparison(f"black-box FGSM {e:g}: {q}'s Q-path above its E-path (table 6a)",
                               pick(bba, model=q, path="Q-path", attack="FGSM", eps=e),
                               pick(bba, model=q, path="E-path", attack="FGSM", eps=e)))
        if shortcut is not None:
            rows.append(comparison(f"white-box BIM {e:g}: the shortcut attack weaker than the E-path attack on {q} "
                                   "(table 11)", pick(shortcut, model=q, path="Q-path", attack="BIM", eps=e),
                                   pick(wb, model=q, path="Q-path", attack="BIM", eps=e)))
    return pd.DataFrame(rows)


def surviving_gains(results: dict, wb: pd.DataFrame, cfg: QLayerConfig) -> pd.DataFrame:
    """The paper's comparisons re-asked with the adaptive worst case: does each Q-Layer network keep
    more than the CNN trained alike? And is the paper's white-box attack (FGSM on the E-path, scored on
    the Q-path) as strong as the worst case (``"higher"`` means it overstated the robustness)?"""
    rows = [comparison(f"adaptive worst case: {q} above {ref}", results[q].worst, results[ref].worst)
            for q, ref in PAIRS if q in results and ref in results]
    rows += [comparison(f"{q}: the paper's attack (E-path FGSM {cfg.eps:g}) as strong as the worst case",
                        pick(wb, model=q, path="Q-path", attack="FGSM", eps=cfg.eps), results[q].worst,
                        expected="no significant difference")
             for q in results if not q.startswith("CNN")]
    return pd.DataFrame(rows)


def inner_comparisons(black: pd.DataFrame, white: pd.DataFrame, results: dict, cfg: QLayerConfig) -> pd.DataFrame:
    """Table 3's comparisons at ``cfg.eps``: Q-inner above Q-large under the E-path attacks (table 3b),
    the two comparable under black-box attacks (table 3a), and Q-inner's adaptive worst case against
    the CNN's."""
    e = cfg.eps
    rows = []
    for atk in ("FGSM", "BIM"):
        rows.append(comparison(f"white-box {atk} {e:g}: Q-inner above Q-large (table 3b)",
                               pick(white, model="Q-inner", path="Q-path", attack=atk, eps=e),
                               pick(white, model="Q-large", path="Q-path", attack=atk, eps=e)))
        rows.append(comparison(f"black-box {atk} {e:g}: Q-inner comparable to Q-large (table 3a)",
                               pick(black, model="Q-inner", path="Q-path", attack=atk, eps=e, source=SOURCE_A),
                               pick(black, model="Q-large", path="Q-path", attack=atk, eps=e, source=SOURCE_A),
                               expected="no significant difference"))
    rows.append(comparison("adaptive worst case: Q-inner above the CNN", results["Q-inner"].worst, results["CNN"].worst))
    return pd.DataFrame(rows)


def ablation_comparisons(black: pd.DataFrame, white: pd.DataFrame, grid: pd.DataFrame, cfg: QLayerConfig) -> pd.DataFrame:
    """Appendix G's and table 8's comparisons at ``cfg.eps``: separate subsequent networks above a
    shared one (tables 9 and 10), and more heads above one head at each number of concepts (table 8a)."""
    e = cfg.eps
    rows = []
    for atk in ("FGSM", "BIM"):
        rows.append(comparison(f"black-box {atk} {e:g}: separate above shared (table 9)",
                               pick(black, model="Q-large", path="Q-path", attack=atk, eps=e, source=SOURCE_A),
                               pick(black, model="Q-large, shared", path="Q-path", attack=atk, eps=e, source=SOURCE_A)))
        rows.append(comparison(f"white-box {atk} {e:g}: separate above shared (table 10)",
                               pick(white, model="Q-large", path="Q-path", attack=atk, eps=e),
                               pick(white, model="Q-large, shared", path="Q-path", attack=atk, eps=e)))
    lo, hi = min(cfg.grid_heads), max(cfg.grid_heads)
    for nc in cfg.grid_concepts:
        if lo != hi:
            rows.append(comparison(f"black-box FGSM {e:g}: K={hi} above K={lo} at nc={nc} (table 8a)",
                                   pick(grid, K=hi, nc=nc), pick(grid, K=lo, nc=nc)))
    return pd.DataFrame(rows)


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


# ---------------------------------------------------------------------------------------------
# exercises
# ---------------------------------------------------------------------------------------------
def exercise_reference(which: str, zoo: Zoo, x: torch.Tensor, y: torch.Tensor, cfg: QLayerConfig):
    """The reference answers of the chapter's exercises (the self-checks compare with these and never
    print them)."""
    if which == "nearest-concept":
        index = concept_usage(zoo["Q-base"], x[:1])[1][0, 0]  # head 1, image 1: one concept per position
        side = int(len(index) ** 0.5)
        return index.view(side, side)[4, 5].item()
    if which == "margin-share":
        qb = zoo["Q-base"]
        dev = next(qb.parameters()).device
        with torch.no_grad():
            p = qb.qlayer.panels(qb.encoder(x[:500].to(dev)))
            d = torch.cdist(p, qb.qlayer.concepts[0]).topk(2, largest=False).values
        return float(((d[:, 1] - d[:, 0]) < 0.1 * d[:, 0]).float().mean())
    if which == "gradient-norms":
        qb = zoo["Q-base"]
        return tuple(float(_input_grad(m, x[:100], y[:100]).abs().sum()) / 100 for m in (qb.view("q"), qb.view("q", "identity")))
    if which == "bpda-fgsm":
        qb = zoo["Q-base"]
        return robust_accuracy(qb, Adaptive(FGSM(cfg.eps), qb.view("q", "identity")), x[:200], y[:200]).value
    if which == "two-paths":
        ql = zoo["Q-large"]
        return tuple(accuracy(ql.view(p), x[:1000], y[:1000]).value for p in ("q", "e"))
    if which == "panels":
        dev = next(zoo["Q-inner"].parameters()).device
        with torch.no_grad():
            return tuple(len(zoo[k].qlayer.panels(zoo[k].encoder(x[:1].to(dev)))) for k in ("Q-inner", "Q-large"))
    if which == "small-codebook":
        from .config import grid_names

        g = grid_names(cfg)
        return tuple(accuracy(zoo[g[(k, 16)]], x[:1000], y[:1000]).value for k in (min(cfg.grid_heads), max(cfg.grid_heads)))
    raise ValueError(f"no exercise {which!r}")

"""The DQA paper's numbers, as data (tables 1-6), its claims in the registry, and the chapter's ledger.

Every number below is printed in the paper; ``PAPER`` keeps them by table so the notebooks show
them next to ours, and ``CLAIMS`` registers the ones the ledger checks. Table 1 and table 4's MNIST
rows run here; tables 2, 3, 5 and 6 are CIFAR-10 (not runnable offline: the chapter ports their
protocol to MNIST and Fashion-MNIST and says so).
"""
from __future__ import annotations

import pandas as pd

from ...claims import OFFLINE_UNAVAILABLE, PARTS, Claim, Ledger, check_part, mark_baselines
from ...evaluate import pick
from .config import FULL_PRECISION, DQAConfig, name_of

__all__ = ["PAPER", "CLAIMS", "PARTS", "paper_table1", "paper_table4", "ledger"]

_FP = FULL_PRECISION
#: table 1 (MNIST, LeNet) and table 2 (CIFAR-10, ResNet-18): {model: (clean, PGD, FGSM)} in percent
_T1 = {name_of("fixed", 1): (98.52, 98.47, 98.48), name_of("dynamic", 1): (98.53, 98.53, 97.44),
       name_of("fixed", 2): (98.65, 98.46, 98.59), name_of("dynamic", 2): (98.80, 98.75, 98.75),
       name_of("fixed", 3): (99.05, 98.37, 98.70), name_of("dynamic", 3): (99.01, 98.51, 97.15),
       _FP: (99.24, 94.04, 97.1)}
_T2 = {name_of("fixed", 1): (81.43, 72.4, 72.9), name_of("dynamic", 1): (83.16, 77.62, 76.09),
       name_of("fixed", 2): (82.33, 70.51, 71.8), name_of("dynamic", 2): (85.76, 79.83, 76.37),
       name_of("fixed", 3): (84.14, 63.23, 73.18), name_of("dynamic", 3): (84.17, 75.01, 74.51),
       _FP: (87.59, 48.70, 58.16)}
PAPER = {
    "table 1": {"dataset": "mnist", "eps": 0.3, "pgd_steps": 40, "rows": _T1},
    "table 2": {"dataset": "cifar10", "eps": 0.031, "pgd_steps": 7, "rows": _T2},
    # table 3 (CIFAR-10): mean L2 C&W needs without adversarial training (fixed quantization), and
    # C&W's success rate against the PGD-trained DQA
    "table 3": {"dataset": "cifar10", "mean L2 without PGD training": {_FP: 0.12, name_of("fixed", 3): 0.17,
                                                                       name_of("fixed", 2): 0.26,
                                                                       name_of("fixed", 1): 0.55},
                "success rate with PGD training (%)": {_FP: 0.0, name_of("dynamic", 3): 0.0,
                                                       name_of("dynamic", 2): 0.0, name_of("dynamic", 1): 0.0}},
    # table 4 (MNIST rows; eps 0.3, PGD 40 steps): {defense: (architecture, clean, PGD, FGSM)}
    "table 4": {"Madry et al. (PGD training)": ("vanilla CNN", 98.80, 93.2, 95.6),
                "Thermometer encoding": ("vanilla CNN", 99.03, 94.02, 95.82),
                "Defense-GAN": ("GAN", 99.20, None, 98.43),
                "Cowboy": ("GAN", 97.0, 78.0, 81.0),
                "DQA (2-bit)": ("LeNet", 98.80, 98.75, 98.75)},
    # table 5 (CIFAR-10, ResNet-18): ZOO on 200 images: {model: (clean, attack success rate)}
    "table 5": {_FP: (87.59, 81.75), name_of("dynamic", 3): (84.17, 0.0), name_of("dynamic", 2): (85.76, 0.0),
                name_of("dynamic", 1): (83.16, 0.0)},
    # table 6 (CIFAR-10): substitute attacks: {source: {model: (defense clean, substitute clean,
    # substitute attacked, defense attacked)}}
    "table 6": {"VGG16": {name_of("dynamic", 3): (84.93, 84.32, 56.88, 60.85),
                          name_of("dynamic", 2): (85.06, 85.06, 56.62, 60.46),
                          name_of("dynamic", 1): (83.16, 83.09, 44.94, 49.18)},
                "AlexNet": {name_of("dynamic", 3): (84.93, 84.05, 46.62, 82.59),
                            name_of("dynamic", 2): (85.06, 85.03, 52.42, 82.11),
                            name_of("dynamic", 1): (83.16, 83.05, 36.06, 79.74)}},
}

_ATTACKS = (("none", None, None), ("PGD", 40, "PGD"), ("FGSM", 1, "FGSM"))


def _claims() -> list[Claim]:
    out = []
    for table, steps_pgd in (("table 1", 40), ("table 2", 7)):
        spec = PAPER[table]
        for model, values in spec["rows"].items():
            for (attack, steps, _), v in zip(_ATTACKS, values):
                out.append(Claim("dqa", table, spec["dataset"], model, attack, v,
                                 eps=None if attack == "none" else spec["eps"],
                                 steps=steps_pgd if attack == "PGD" else steps))
    for defense, (_, clean, pgd, fgsm) in PAPER["table 4"].items():
        if defense.startswith("DQA"):
            continue  # the same numbers as table 1's dynamic 2-bit row
        for attack, v in (("none", clean), ("PGD", pgd), ("FGSM", fgsm)):
            if v is not None:
                out.append(Claim("dqa", "table 4 (quoted)", "mnist", defense, attack, v,
                                 eps=None if attack == "none" else 0.3, steps={"PGD": 40, "FGSM": 1}.get(attack),
                                 note="the paper quotes another paper's number"))
    for model, v in PAPER["table 3"]["mean L2 without PGD training"].items():
        out.append(Claim("dqa", "table 3", "cifar10", model + " (no adv. training)", "C&W L2 (mean L2 needed)", v,
                         unit="L2"))
    for model, v in PAPER["table 3"]["success rate with PGD training (%)"].items():
        out.append(Claim("dqa", "table 3", "cifar10", model, "C&W L2 (success rate)", v))
    for model, (_, v) in PAPER["table 5"].items():
        out.append(Claim("dqa", "table 5", "cifar10", model, "ZOO (success rate)", v, threat_model="black-box (scores)"))
    for src, rows in PAPER["table 6"].items():
        for model, (*_, v) in rows.items():
            out.append(Claim("dqa", "table 6", "cifar10", model, f"transfer from {src}", v, eps=0.031,
                             threat_model="black-box (transfer)"))
    return out


#: the paper's reference models (its defense is the quantized networks, with or without PGD training)
BASELINES = ("Full precision (ReLU)", "Full precision (ReLU) (no adv. training)", "Madry et al. (PGD training)",
             "Cowboy", "Defense-GAN", "Thermometer encoding")
CLAIMS = mark_baselines(_claims(), BASELINES)


def paper_table1(t1: pd.DataFrame, table: str = "table 1") -> pd.DataFrame:
    """Table 1 next to ours: one row per model, the paper's clean / PGD / FGSM and ours (deployed;
    PGD and FGSM with autograd and with the straight-through gradient), as Accuracy objects."""
    rows = []
    for model, (c, p, f) in PAPER[table]["rows"].items():
        if model not in set(t1.model):
            continue
        rows.append({"model": model, "clean: paper": c, "clean: ours": pick(t1, model=model, attack="none"),
                     "PGD: paper": p, "PGD: ours, autograd": pick(t1, model=model, attack="PGD", gradient="autograd"),
                     "PGD: ours, straight-through": pick(t1, model=model, attack="PGD", gradient="straight-through"),
                     "FGSM: paper": f,
                     "FGSM: ours, autograd": pick(t1, model=model, attack="FGSM", gradient="autograd"),
                     "FGSM: ours, straight-through": pick(t1, model=model, attack="FGSM", gradient="straight-through")})
    return pd.DataFrame(rows)


def paper_table4(t1: pd.DataFrame, results: dict | None = None) -> pd.DataFrame:
    """Table 4's MNIST rows: the other defenses as the paper quotes them, and our two LeNets (the
    Madry-style PGD-trained full-precision one and DQA 2-bit) under the paper's protocol and, given
    the adaptive ``results``, under the worst case."""
    rows = [{"defense": d, "architecture": a, "source": "quoted by the paper", "clean": c, "PGD": p, "FGSM": f,
             "adaptive worst case": None}
            for d, (a, c, p, f) in PAPER["table 4"].items() if not d.startswith("DQA")]
    for label, model in (("ours: PGD-trained LeNet (Madry-style)", FULL_PRECISION),
                         ("ours: DQA dynamic 2-bit", name_of("dynamic", 2))):
        rows.append({"defense": label, "architecture": "LeNet", "source": "measured here",
                     "clean": pick(t1, model=model, attack="none"),
                     "PGD": pick(t1, model=model, attack="PGD", gradient="autograd"),
                     "FGSM": pick(t1, model=model, attack="FGSM", gradient="autograd"),
                     "adaptive worst case": results[model].worst if results and model in results else None})
    _, c, p, f = PAPER["table 4"]["DQA (2-bit)"]
    rows.append({"defense": "DQA (2-bit), the paper's", "architecture": "LeNet", "source": "the paper", "clean": c,
                 "PGD": p, "FGSM": f, "adaptive worst case": None})
    return pd.DataFrame(rows)


def _adaptive_answers(c: Claim, cfg: DQAConfig) -> bool:
    return c.dataset == cfg.dataset and c.attack == "PGD" and c.source == "table 1" and abs(c.eps - cfg.eps) < 1e-9


def ledger(cfg: DQAConfig, measured: dict, adaptive: dict | None = None, section: str = "",
           part: str | None = None) -> Ledger:
    """The chapter's claims for ``cfg.dataset`` joined with our numbers: under the paper's protocol
    from ``measured["table 1"]`` (:func:`.measure.table1`, PGD and FGSM with autograd: see
    :mod:`.measure`), with the range over training seeds from ``measured["seeds"]``
    (:func:`.measure.seed_table`) where the page gives it, and the adaptive worst case from
    ``adaptive`` (:func:`.measure.adaptive`) for table 1's PGD claims at ``cfg.eps``.

    ``part``: ``"reproduction"`` (every claim but table 1's PGD claims, which the adaptive page
    answers) or ``"adaptive"`` (those); ``None``: all. Claims on another runnable dataset are left
    out; CIFAR-10's are listed as not runnable here (with the MNIST ledger only, so once)."""
    measured = check_part(part, measured, adaptive, ("table 1",))
    t1, seeds = measured["table 1"], measured.get("seeds")
    keep = [c for c in CLAIMS if part is None or (part == "adaptive") == _adaptive_answers(c, cfg)]
    own = any(c.dataset == cfg.dataset for c in CLAIMS)  # CIFAR-10's claims go with MNIST's, listed once
    mine = [c for c in keep if c.dataset == cfg.dataset or (own and c.dataset in OFFLINE_UNAVAILABLE)]
    led = Ledger(mine)
    from .measure import seed_range

    for c in mine:
        if c.dataset != cfg.dataset:
            continue  # CIFAR-10: not runnable here
        if c.source != "table 1":
            led.record(c, reason="quoted by the paper from another paper; our own baseline is table 1's "
                                 "full-precision row", section=section)
            continue
        gradient = "-" if c.attack == "none" else "autograd"
        ours = pick(t1, model=c.model, attack=c.attack, gradient=gradient)
        rng = seed_range(seeds, c.model, c.attack, gradient) if seeds is not None else None
        worst = adaptive[c.model].worst if adaptive and _adaptive_answers(c, cfg) and c.model in adaptive else None
        led.record(c, ours, worst, seed_range=rng, section=section)
    return led

"""The SQA paper's numbers, as data (tables 1-4), its claims in the registry, and the chapter's ledger.

Every number below is printed in the paper; ``PAPER`` keeps them by table so the notebooks show
them next to ours, and ``CLAIMS`` registers the ones the ledger checks. Table 1 (MNIST) runs here;
tables 2-4 are CIFAR-10 (not runnable offline: the chapter measures table 4's training times on
MNIST as a port and says so).
"""
from __future__ import annotations

import pandas as pd

from ...claims import OFFLINE_UNAVAILABLE, Claim, Ledger, check_part, mark_baselines
from .config import SQAConfig

__all__ = ["PAPER", "CLAIMS", "COLUMNS", "paper_table1", "ledger"]

#: table 1's and table 2's columns: (label in our tables, attack, eps index, steps)
COLUMNS = (("clean", "none", None, None), ("FGSM {0}", "FGSM", 0, 1), ("FGSM {1}", "FGSM", 1, 1),
           ("C&W {0}", "C&W-Linf", 0, "cw"), ("C&W {1}", "C&W-Linf", 1, "cw"), ("PGD {p}", "PGD", "p", "pgd"))

PAPER = {
    # {model: ((value, std or None) per column)}: clean, FGSM 0.2, FGSM 0.3, C&W 0.2, C&W 0.3, PGD 0.2
    "table 1": {"dataset": "mnist", "eps": (0.2, 0.3), "pgd_eps": 0.2, "cw_steps": 40, "pgd_steps": 40, "rows": {
        "SMALL full": ((99.40, None), (98.48, None), (98.86, None), (19.43, None), (0.71, None), (0.50, None)),
        "SMALL SQA": ((96.61, 0.28), (89.30, 0.19), (82.67, 0.21), (82.39, 0.17), (57.7, 0.40), (7.43, 0.26)),
        "LARGE full": ((99.25, None), (98.58, None), (98.21, None), (64.21, None), (19.49, None), (0.86, None)),
        "LARGE SQA": ((98.64, 0.34), (95.30, 0.06), (91.14, 0.24), (92.75, 0.34), (83.62, 0.33), (83.90, 0.32))}},
    # CIFAR-10, eps 4 and 8 (of 255); C&W 30 steps; PGD 7 steps of 2, eps 8
    "table 2": {"dataset": "cifar10", "eps": (4 / 255, 8 / 255), "pgd_eps": 8 / 255, "cw_steps": 30, "pgd_steps": 7,
                "rows": {
        "RES34 full": ((87.07, None), (46.21, None), (63.47, None), (13.5, None), (8.20, None), (8.87, None)),
        "RES34 SQA": ((81.53, 0.38), (70.51, 0.49), (53.45, 0.44), (66.45, 0.45), (38.70, 0.62), (48.32, 0.19)),
        "RES101 full": ((87.67, None), (52.44, None), (78.59, None), (12.17, None), (8.09, None), (7.52, None)),
        "RES101 SQA": ((82.94, 0.42), (73.30, 0.39), (56.54, 0.52), (68.40, 0.69), (41.52, 0.41), (52.12, 0.63))}},
    # CIFAR-10, eps 8/255: {defense (architecture): (PGD, C&W)}; all but SQA quoted from Athalye et al. 2018
    "table 3": {"SAP (RES20)": (None, 0.0), "PixelDefend (RES62)": (9.0, None), "Thermometer (RES30W)": (30.0, None),
                "Adv. Training (Madry et al., RESW)": (50.0, 46.8), "SQA (RES101)": (52.1, 41.5)},
    # ResNet-34 on CIFAR-10: seconds per training iteration
    "table 4": {"FGSM": 0.43, "SQA + FGSM": 0.57, "PGD-10": 1.23, "PGD-20": 2.34, "PGD-100": 10.17},
    "speed-up": 18.0,  #: section 4.4: "SQA + FGSM training is almost 18 times faster than PGD training where K is 100"
}


def _claims() -> list[Claim]:
    out = []
    for table in ("table 1", "table 2"):
        spec = PAPER[table]
        for model, values in spec["rows"].items():
            for (_, attack, e, steps), (v, std) in zip(COLUMNS, values):
                eps = None if e is None else (spec["pgd_eps"] if e == "p" else spec["eps"][e])
                steps = {"cw": spec["cw_steps"], "pgd": spec["pgd_steps"]}.get(steps, steps)
                out.append(Claim("sqa", table, spec["dataset"], model, attack, v, eps=eps, steps=steps,
                                 note="" if std is None else f"mean +- {std} over the paper's runs"))
    for defense, (pgd, cw) in PAPER["table 3"].items():
        note = "" if defense.startswith("SQA") else "quoted by the paper from Athalye et al. 2018"
        for attack, v, steps in (("PGD", pgd, 7), ("C&W-Linf", cw, 30)):
            if v is not None:
                out.append(Claim("sqa", "table 3", "cifar10", defense, attack, v, eps=8 / 255, steps=steps, note=note))
    for method, sec in PAPER["table 4"].items():
        out.append(Claim("sqa", "table 4", "cifar10", "ResNet-34", f"training time per iteration, {method}", sec,
                         threat_model="-", unit="s"))
    out.append(Claim("sqa", "section 4.4", "cifar10", "ResNet-34", "speed-up of SQA + FGSM over PGD-100 training",
                     PAPER["speed-up"], threat_model="-", unit="x"))
    return out


#: the paper's reference models: the full-precision networks and the defenses it quotes
BASELINES = ("SMALL full", "LARGE full", "RES34 full", "RES101 full", "Adv. Training (Madry et al., RESW)",
             "PixelDefend (RES62)", "SAP (RES20)", "Thermometer (RES30W)")
CLAIMS = mark_baselines(_claims(), BASELINES)


def _label(col, spec) -> str:
    label, _, e, _ = col
    return label.format(*[f"{v:g}" for v in spec["eps"]], p=f"{spec['pgd_eps']:g}")


def paper_table1(summary: pd.DataFrame, cfg: SQAConfig, table: str = "table 1") -> pd.DataFrame:
    """Table 1 next to ours: one row per (model, source) -- the paper's mean +- std, ours as mean +-
    std over our seeds -- one column per measurement, in percent (strings for the page)."""
    spec = PAPER[table]
    rows = []
    for model, values in spec["rows"].items():
        d = summary[summary.model == model]
        if d.empty:
            continue
        paper = {"model": model, "source": "paper"}
        runs = int(d.runs.max())
        ours = {"model": model, "source": f"ours ({runs} run{'s' if runs > 1 else ''})"}
        for col, (v, std), (_, m) in zip(COLUMNS, values, _our_columns(cfg)):
            lab = _label(col, spec)
            paper[lab] = f"{v:.2f}" + ("" if std is None else f" ± {std:.2f}")
            r = d[d.measurement == m]
            ours[lab] = "-" if r.empty else (f"{r['mean'].iloc[0]:.1f}" +
                                            ("" if pd.isna(r['std'].iloc[0]) else f" ± {r['std'].iloc[0]:.1f}"))
        rows += [paper, ours]
    return pd.DataFrame(rows)


def _our_columns(cfg: SQAConfig):
    """(column label, our measurement label) in table 1's order."""
    e0, e1 = (f"{v:g}" for v in cfg.fgsm_eps)
    return [("clean", "clean"), ("FGSM", f"FGSM {e0}"), ("FGSM", f"FGSM {e1}"), ("C&W", f"C&W {e0}"),
            ("C&W", f"C&W {e1}"), ("PGD", f"PGD {cfg.pgd_eps:g}")]


def measurement_of(c: Claim, cfg: SQAConfig) -> str:
    """Our table 1 measurement label for a table 1 claim."""
    if c.attack == "none":
        return "clean"
    name = {"FGSM": "FGSM", "C&W-Linf": "C&W", "PGD": "PGD"}[c.attack]
    return f"{name} {c.eps:g}"


def _adaptive_answers(c: Claim, cfg: SQAConfig) -> bool:
    return c.source == "table 1" and c.dataset == cfg.dataset and c.attack == "PGD"


def ledger(cfg: SQAConfig, measured: dict, adaptive: dict | None = None, section: str = "",
           part: str | None = None) -> Ledger:
    """The chapter's claims for ``cfg.dataset`` joined with our numbers: table 1's first run under the
    paper's protocol (``measured["table 1"]``, :func:`.measure.table1`) with the range over our seeds,
    and for table 1's PGD claims (``part="adaptive"``) the adaptive worst case (:func:`.measure.adaptive`).
    CIFAR-10's claims (tables 2-4) are listed as not runnable here, with the MNIST ledger only; table 4's
    are given our measured MNIST ratios as a port in their reason where the page gives its timing table
    (``measured["table 4"]``, :func:`.measure.timing`)."""
    from ...evaluate import pick
    from .measure import seed_range

    measured = check_part(part, measured, adaptive, ("table 1",))
    t1, timing = measured["table 1"], measured.get("table 4")
    keep = [c for c in CLAIMS if part is None or (part == "adaptive") == _adaptive_answers(c, cfg)]
    own = any(c.dataset == cfg.dataset for c in CLAIMS)
    mine = [c for c in keep if c.dataset == cfg.dataset or (own and c.dataset in OFFLINE_UNAVAILABLE)]
    led = Ledger(mine)
    ratio = None
    if timing is not None:
        t = timing.set_index("method")["ratio to FGSM"]
        if "PGD-100" in t and "SQA + FGSM" in t:
            ratio = float(t["PGD-100"] / t["SQA + FGSM"])
    for c in mine:
        if c.dataset != cfg.dataset:
            if c.source in ("table 4", "section 4.4") and ratio is not None:
                led.record(c, reason=f"CIFAR-10 and ResNet-34; ported to {cfg.dataset} and the LARGE CNN on this "
                                     f"page's CPU, SQA + FGSM was {ratio:.1f} times faster than PGD-100 training",
                           section=section)
            continue
        m = measurement_of(c, cfg)
        runs = t1[(t1.model == c.model) & (t1.measurement == m)]
        if runs.empty:
            raise ValueError(f"the claim {c.key!r} needs table 1's {m!r} measurement of {c.model!r} "
                             f"(measure.table1 with that model)")
        seed0 = min(runs.seed)
        ours = pick(t1, model=c.model, measurement=m, seed=seed0)
        worst = adaptive[c.model].worst if adaptive and c.model in adaptive and _adaptive_answers(c, cfg) else None
        led.record(c, ours, worst, seed_range=seed_range(t1, c.model, m), section=section)
    return led

"""The GCLN paper's numbers, as data (tables 1-4), its claims in the registry, and the chapter's ledger.

Every number below is printed in the paper; ``PAPER`` keeps them by table so the notebooks show them
next to ours, and ``CLAIMS`` registers them. All are on CIFAR-10 and SVHN, which have no offline
source here: the ledger lists them as not runnable here and gives, in each claim's reason, the
chapter's *port* -- the same measurement on MNIST (tables 1-3) or Fashion-MNIST (table 4's protocol)
with the model that plays the same role -- clearly labelled as a port.
"""
from __future__ import annotations

import pandas as pd

from ...claims import Claim, Ledger, mark_baselines

__all__ = ["PAPER", "CLAIMS", "PORTS", "PARTS", "PORT_RESULTS", "part_of", "paper_table", "ledger", "port_table",
           "roles", "port_verdicts"]

_CIFAR_EPS, _SVHN_EPS = 8 / 255, 12 / 255
PAPER = {
    # CIFAR-10, eps 8/255 (the caption: 8/256), 10 steps of 1/255: (clean, FGS, PGD, BIM, C&W); None: "-"
    "table 1": {"dataset": "cifar10", "eps": _CIFAR_EPS, "columns": ("clean", "FGS", "PGD", "BIM", "C&W"), "rows": {
        "No Defense": (94.38, 31.89, 0.00, 0.00, 0.99),
        "Adversarial BIM": (87.00, 52.00, None, 32.00, 42.00),
        "Label Smoothing": (92.00, 54.00, None, 8.00, 2.00),
        "Feature Squeezing": (84.00, 20.00, None, 0.00, 78.00),
        "PixelDefend": (85.00, 46.00, None, 70.00, 80.00),
        "Adversarial-PGD": (83.50, 67.92, 60.15, None, None),
        "Adversarial network": (91.32, 73.77, 49.55, None, None),
        "GCLN (Qs=5)": (91.65, 75.03, 85.84, 86.39, 85.47),
        "GCLN (Qs=10)": (91.65, 75.22, 86.05, 86.43, 86.42)}},
    # CIFAR-10, BPDA: (distance, accuracy); * in the paper: with additional adversarial training
    "table 2": {"dataset": "cifar10", "columns": ("BPDA",), "rows": {
        "TE": (0.031, 0.0), "SAP": (0.031, 0.0), "LID": (0.031, 5.0), "PixelDefend": (0.031, 9.0),
        "Cascade Adversarial Training": (0.015, 15.0), "PGD Adversarial Training": (0.031, 47.0),
        "STL": (0.031, 42.0), "GCLN (Qs=5)": (0.031, 51.0), "GCLN (Qs=10)": (0.031, 53.0)}},
    # CIFAR-10, black-box transfer from a substitute ResNet-34, eps 8/255: (no attack, FGS, PGD)
    "table 3": {"dataset": "cifar10", "eps": _CIFAR_EPS, "columns": ("clean", "FGS", "PGD"), "rows": {
        "No Defense": (94.38, 63.21, 38.71), "Adversarial-PGD": (83.50, 57.73, 55.72),
        "Adversarial network": (91.32, 77.23, 74.04), "GCLN (Qs=5)": (91.65, 77.01, 77.90),
        "GCLN (Qs=10)": (91.65, 77.56, 79.81)}},
    # SVHN, eps 12/255 (the caption: 0.05), 10 steps of 3/255: (no attack, white-box PGD, black-box PGD)
    "table 4": {"dataset": "svhn", "eps": _SVHN_EPS, "columns": ("clean", "PGD", "black-box PGD"), "rows": {
        "No Defense": (96.21, 0.15, 67.66), "M-PGD": (96.21, 44.40, 55.40), "ALP": (96.20, 46.90, 56.20),
        "Adversarial-PGD": (87.45, 42.96, 83.23), "Adversarial network": (96.21, 37.97, 81.68),
        "GCLN (Qs=5)": (96.00, 93.39, 87.15), "GCLN (Qs=10)": (96.00, 93.80, 88.69)}},
}
#: the paper's rows the chapter ports, and the model of ours that plays the same role
PORTS = {"No Defense": "No defense", "Adversarial-PGD": "PGD-trained", "M-PGD": "PGD-trained",
         "PGD Adversarial Training": "PGD-trained", "Feature Squeezing": "Feature squeezing",
         "GCLN (Qs=5)": "GCLN (Qs/eps=5/8)", "GCLN (Qs=10)": "GCLN (Qs/eps=10/8)"}
_THREAT = {"black-box PGD": "black-box (transfer)"}


def _claims() -> list[Claim]:
    out = []
    for table, spec in PAPER.items():
        for model, values in spec["rows"].items():
            if table == "table 2":
                dist, v = values
                out.append(Claim("gcln", table, spec["dataset"], model, "BPDA", v, eps=dist,
                                 note="with additional adversarial training (the paper's *)"
                                 if model in ("TE", "PixelDefend", "PGD Adversarial Training", "STL") else ""))
                continue
            for col, v in zip(spec["columns"], values):
                if v is None:
                    continue
                attack = "none" if col == "clean" else col.replace("black-box ", "")
                threat = "black-box (transfer)" if table == "table 3" and col != "clean" else _THREAT.get(col, "white-box")
                out.append(Claim("gcln", table, spec["dataset"], model, attack, v, threat_model=threat,
                                 eps=None if col == "clean" else spec["eps"], steps=None if col == "clean" else 10,
                                 note="" if model in PORTS else "quoted by the paper from the method's authors"))
    return out


#: every model but GCLN's is a reference the paper compares against
BASELINES = tuple(sorted({m for spec in PAPER.values() for m in spec["rows"]} - {"GCLN (Qs=5)", "GCLN (Qs=10)"}))
CLAIMS = mark_baselines(_claims(), BASELINES)


def paper_table(table: str) -> pd.DataFrame:
    """One of the paper's tables as printed (accuracy in %; "-" where the paper has none)."""
    spec = PAPER[table]
    if table == "table 2":
        return pd.DataFrame([{"defense": k, "distance (Linf)": f"{d:.3f}", "BPDA (%)": f"{v:.2f}"}
                             for k, (d, v) in spec["rows"].items()])
    return pd.DataFrame([{"defense": k, **{c: "-" if v is None else f"{v:.2f}" for c, v in zip(spec["columns"], vals)}}
                         for k, vals in spec["rows"].items()])


def _port_of(c: Claim, ports: pd.DataFrame | None):
    """The row of ``ports`` that measures claim ``c``'s port, or None."""
    if ports is None or c.model not in PORTS:
        return None
    col = "BPDA" if c.source == "table 2" else ("clean" if c.attack == "none" else
                                                 ("black-box " + c.attack if c.threat_model.startswith("black")
                                                  else c.attack))
    r = ports[(ports.table == c.source) & (ports.role == PORTS[c.model]) & (ports.column == col)]
    return None if r.empty else r.iloc[0]


#: the chapter's pages and the claims each answers: the reproduction page (tables 1-3 but the GCLN
#: models' PGD and BPDA claims), the adaptive page (those, with the adaptive worst case beside the port)
#: and the second dataset's page (table 4, SVHN, ported to Fashion-MNIST)
PARTS = ("reproduction", "adaptive", "second dataset")


def part_of(c: Claim) -> str:
    """The page of the chapter that answers claim ``c`` (one of :data:`PARTS`)."""
    if c.source == "table 4":
        return "second dataset"
    if c.model.startswith("GCLN") and (c.source == "table 2" or (c.source == "table 1" and c.attack == "PGD")):
        return "adaptive"
    return "reproduction"


def ledger(ports: pd.DataFrame | None, section: str = "", part: str | None = None) -> Ledger:
    """The paper's claims of ``part`` (:data:`PARTS`; ``None``: all), each not runnable here, its reason
    giving our port from ``ports`` (:func:`port_table`) where the chapter measured one."""
    if part is not None and part not in PARTS:
        raise ValueError(f"unknown part {part!r}; expected one of {PARTS} or None")
    led = Ledger([c for c in CLAIMS if part is None or part_of(c) == part])
    for rec in list(led.records.values()):
        c = rec.claim
        p = _port_of(c, ports)
        data = {"cifar10": "CIFAR-10", "svhn": "SVHN"}[c.dataset]
        if p is None:
            reason = (f"{data} has no offline source here" + ("" if c.model in PORTS else
                                                               "; a number the paper quotes for another method"))
        else:
            reason = (f"{data} has no offline source here. Port to {p['dataset']} ({p['model']}, eps {p['eps']:g}): "
                      f"{p['ours']} under the paper's protocol"
                      + ("" if p["adaptive"] == "-" else f"; adaptive worst case {p['adaptive']}"))
        led.record(c, reason=reason, section=section)
    return led


def port_table(measured: pd.DataFrame, adaptive: dict | None, cfg, names: dict) -> pd.DataFrame:
    """The ported measurements, one row per (paper table, role, column): ``measured`` is the chapter's
    accuracy rows with ``table``, ``column`` and ``model`` (tables 1-3 or 4 of :mod:`.measure`),
    ``adaptive`` ``{our model: CascadeResult}`` (or None), ``names`` ``{role: our model}``, the roles
    being the values of :data:`PORTS` (e.g. ``{"GCLN (Qs/eps=5/8)": "GCLN (Qs=48)"}``)."""
    from ...evaluate import accuracy_of
    from ...report import acc

    rows = []
    for _, r in measured.iterrows():
        for role, model in names.items():
            if model != r["model"]:
                continue
            a = accuracy_of(r)
            worst = adaptive.get(model) if adaptive else None
            rows.append({"table": r["table"], "column": r["column"], "role": role, "model": model,
                         "dataset": cfg.dataset, "eps": cfg.eps, "ours": acc(a), "value": 100 * a.value,
                         "ci_low": 100 * a.ci[0], "ci_high": 100 * a.ci[1], "n": a.n,
                         "adaptive": acc(worst.worst) if worst is not None and r["column"] != "clean" else "-"})
    return pd.DataFrame(rows)


#: ``{the paper's dataset: (the results file of its port's adaptive evaluation, the port's name)}``
PORT_RESULTS = {"cifar10": ("gcln_adaptive", "MNIST port"), "svhn": ("gcln_fashion_mnist", "Fashion-MNIST port")}


def port_verdicts(directory) -> dict:
    """``{claim key: (Estimate, port name)}`` for the ledger's port column: for every white-box robustness
    claim about the paper's own models (GCLN), the adaptive worst case of the model that plays it on the
    port, read from the port's adaptive results in ``directory``. The baselines' claims get none: our
    ported baselines play their roles, they are not the numbers the paper quotes, and cannot refute them."""
    from pathlib import Path

    from ...claims import Estimate
    from ...results import load_results
    from .config import GCLNConfig

    out = {}
    for dataset, (name, where) in PORT_RESULTS.items():
        res = load_results(Path(directory) / f"{name}.json")
        cfg = GCLNConfig(**(res.get("config") or {}))
        worst = {r["model"]: r for r in res.get("tables", {}).get("adaptive") or []}
        names = roles(cfg)
        for c in CLAIMS:
            if c.dataset != dataset or c.baseline or c.attack == "none" or c.threat_model != "white-box":
                continue
            r = worst.get(names[PORTS[c.model]])
            if r is None:
                raise ValueError(f"{name}.json has no adaptive row for {names[PORTS[c.model]]!r} (the port of "
                                 f"{c.model}): stale results, re-run its notebook")
            out[c.key] = (Estimate(100 * r["worst"], 100 * r["worst_lo"], 100 * r["worst_hi"], r.get("n"),
                                   f"{names[PORTS[c.model]]}, {r['decisive']}, eps={cfg.eps:g}"), where)
    return out


def roles(cfg) -> dict:
    """``{role: our model}``: which of the chapter's models plays each row of the paper (:data:`PORTS`)."""
    g0, g1 = (cfg.model_name(q) for q in cfg.qs)
    return {"No defense": "No defense", "PGD-trained": "PGD-trained", "Feature squeezing": "Feature squeezing",
            "GCLN (Qs/eps=5/8)": g0, "GCLN (Qs/eps=10/8)": g1}

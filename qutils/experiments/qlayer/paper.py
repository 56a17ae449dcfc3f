"""The Q-Layer paper's numbers as data (:data:`PAPER`, its tables), each cell as a registered claim
(:data:`CLAIMS`), the paper-against-ours tables (:func:`compare`) and the chapter's claims ledgers
(:func:`ledger`).

Every robust-accuracy cell of tables 1-3 and 6-11 is a claim. Table 6a's Q-path and table 6b's Q-path
repeat tables 1a and 2a, the Q-large rows of tables 3, 9 and 10 repeat tables 1a and 2a, and the clean
columns repeat across tables: each number is registered once, under the first table that prints it.
Which notebook records which claims: the reproduction notebooks (05, 07) every claim *not* at the
headline radius on the Q-path (clean accuracy, the smaller radius, the E-path's outputs); the
adaptive notebooks (06, 08) the Q-path claims at the headline radius, joined with the adaptive worst
case; 09 the Q-inner rows (table 3), 10 the ablations (tables 8-10).
"""
from __future__ import annotations

import pandas as pd

from ... import report
from ...claims import Claim, Ledger, mark_baselines
from ...evaluate import accuracy_of
from .config import SOURCE_A, SOURCE_B, QLayerConfig

__all__ = ["PAPER", "CLAIMS", "compare", "compare_long", "compare_grid", "paper_cells", "ledger", "claims_of", "PROTOCOL"]


# the paper's tables, in percent (section 4, appendices D, F-H)
def _t(cols, rows):
    return {"columns": cols, "rows": {k: dict(zip(cols, v)) for k, v in rows.items()}}


_C = ("clean", "FGSM 0.2", "FGSM 0.3", "BIM 0.2", "BIM 0.3")
_CW = _C + ("CW 0.2", "CW 0.3")
_F = ("clean", "FGSM 0.1", "FGSM 0.2", "BIM 0.1", "BIM 0.2")
_FW = _F + ("CW 0.1", "CW 0.2")

#: The paper's tables (percent), as printed. Keys: table id; rows are the paper's row labels.
PAPER = {
    "1a": _t(_C, {"CNN": (98.73, 75.77, 40.03, 62.52, 16.02), "Q-base": (96.57, 84.86, 52.69, 84.08, 38.22),
                  "Q-large": (97.38, 85.87, 65.19, 86.48, 67.01), "CNN + adv": (98.73, 96.78, 80.57, 96.18, 64.60),
                  "Q-base + adv": (98.58, 96.36, 91.7, 96.72, 92.46),
                  "Q-large + adv": (98.33, 95.83, 84.58, 96.11, 86.4)}),
    "1b": _t(_F, {"CNN": (86.65, 66.15, 43.07, 63.94, 38.7), "Q-base": (84.76, 72.24, 47.77, 72.67, 52.41),
                  "Q-large": (82.3, 69.35, 51.92, 70.24, 52.32), "CNN + adv": (88.25, 83.56, 57.81, 83.68, 51.76),
                  "Q-base + adv": (83.21, 79.09, 71.07, 79.53, 73.12),
                  "Q-large + adv": (82.32, 78.78, 70.31, 78.89, 70.84)}),
    "2a": _t(_CW, {"CNN": (98.73, 43.18, 7.84, 6.69, 0.82, 58.00, 39.95),
                   "Q-base": (96.57, 77.23, 58.47, 59.05, 55.33, 90.46, 85.77),
                   "Q-large": (97.38, 65.99, 30.68, 60.24, 16.95, 87.64, 80.03),
                   "CNN + adv": (98.73, 95.63, 90.23, 88.03, 7.77, 95.65, 90.08),
                   "Q-base + adv": (98.58, 95.21, 91.28, 94.64, 83.07, 97.37, 94.85),
                   "Q-large + adv": (98.33, 95.34, 90.83, 94.11, 79.94, 97.34, 95.3)}),
    "2b": _t(_FW, {"CNN": (86.65, 32.16, 11.28, 20.29, 8.06, 44.01, 20.95),
                   "Q-base": (84.76, 53.30, 24.17, 50.77, 14.36, 74.87, 67.82),
                   "Q-large": (82.30, 44.01, 17.33, 42.97, 14.99, 66.48, 56.92),
                   "CNN + adv": (88.25, 81.39, 62.84, 65.41, 8.53, 78.62, 57.60),
                   "Q-base + adv": (83.21, 76.57, 59.27, 75.13, 41.85, 80.77, 73.4),
                   "Q-large + adv": (80.04, 75.36, 58.79, 74.04, 53.71, 78.82, 69.43)}),
    "3a": _t(_C, {"CNN": (98.73, 75.77, 40.03, 62.52, 16.02), "Q-large": (97.38, 85.87, 65.19, 86.48, 67.01),
                  "Q-inner": (98.09, 86.51, 61.60, 87.62, 63.49)}),
    "3b": _t(_CW, {"CNN": (98.73, 43.18, 7.84, 6.69, 0.82, 58.00, 39.95),
                   "Q-large": (97.38, 65.99, 30.68, 60.24, 16.95, 87.64, 80.03),
                   "Q-inner": (98.09, 82.41, 67.15, 83.08, 81.96, 90.36, 79.46)}),
    # table 6: "Q-path/E-path"; here one table per path
    "6a Q-path": _t(_C, {"Q-base": (96.57, 84.86, 52.69, 84.08, 38.22), "Q-large": (97.38, 85.87, 65.19, 86.48, 67.01),
                         "Q-base + adv": (98.58, 96.36, 91.7, 96.72, 92.46),
                         "Q-large + adv": (98.33, 95.83, 84.58, 96.11, 86.4)}),
    "6a E-path": _t(_C, {"Q-base": (97.46, 77.64, 37.65, 69.06, 17.13), "Q-large": (98.59, 70.52, 34.44, 72.86, 29.32),
                         "Q-base + adv": (98.84, 96.84, 86.0, 96.88, 81.51),
                         "Q-large + adv": (99.09, 97.15, 64.42, 97.36, 60.9)}),
    "6b Q-path": _t(_CW, {"Q-base": (96.57, 77.23, 58.47, 59.05, 55.33, 90.46, 85.77),
                          "Q-large": (97.38, 65.99, 30.68, 60.24, 16.95, 87.64, 80.03),
                          "Q-base + adv": (98.58, 95.21, 91.28, 94.64, 83.07, 97.37, 94.85),
                          "Q-large + adv": (98.33, 95.34, 90.83, 94.11, 79.94, 97.34, 95.3)}),
    "6b E-path": _t(_CW, {"Q-base": (97.46, 46.91, 44.09, 43.69, 43.69, 55.84, 32.31),
                          "Q-large": (98.59, 8.54, 2.13, 2.16, 1.98, 49.59, 32.07),
                          "Q-base + adv": (98.84, 94.6, 90.62, 87.83, 14.62, 94.32, 86.53),
                          "Q-large + adv": (99.09, 95.99, 88.28, 91.91, 34.34, 95.03, 88.12)}),
    "7a": _t(_C, {"CNN": (98.73, 82.49, 51.60, 73.14, 28.89), "Q-base": (96.57, 88.98, 64.57, 89.25, 57.83),
                  "Q-large": (97.38, 86.73, 68.48, 88.51, 74.05), "CNN + adv": (98.73, 97.29, 82.79, 96.78, 71.56),
                  "Q-base + adv": (98.58, 96.88, 93.45, 96.88, 93.83),
                  "Q-large + adv": (98.33, 96.36, 86.72, 96.41, 89.32)}),
    "7b": _t(_F, {"CNN": (86.65, 72.62, 52.03, 70.87, 49.70), "Q-base": (84.76, 74.64, 54.55, 75.85, 58.33),
                  "Q-large": (82.3, 71.95, 57.33, 73.16, 61.28), "CNN + adv": (88.25, 84.19, 64.84, 83.70, 63.29),
                  "Q-base + adv": (83.21, 80.07, 73.54, 80.12, 71.63),
                  "Q-large + adv": (82.32, 79.13, 72.10, 79.41, 74.42)}),
    # table 8: FGSM black-box (CNN_A source), eps 0.3, Q-path; a = raw, b = adversarially trained
    "8a": _t(("nc=16", "nc=64", "nc=128"), {"K=1": (46.69, 52.69, 44.64), "K=2": (60.38, 60.42, 49.42),
                                             "K=4": (65.23, 65.19, 60.68)}),
    "8b": _t(("nc=16", "nc=64", "nc=128"), {"K=1": (70.89, 91.7, 83.77), "K=2": (80.08, 85.5, 85.74),
                                             "K=4": (82.28, 84.58, 83.65)}),
    "9": _t(_C, {"Q-large": (97.38, 85.87, 65.19, 86.48, 67.01), "Q-large, shared": (98.44, 84.43, 48.64, 84.52, 47.19)}),
    "10": _t(_CW, {"Q-large": (97.38, 65.99, 30.68, 60.24, 16.95, 87.64, 80.03),
                   "Q-large, shared": (98.44, 56.96, 16.10, 34.69, 8.17, 87.18, 79.48)}),
    "11 Q-path": _t(_CW, {"Q-base": (96.57, 85.93, 63.12, 68.9, 60.78, 97.29, 96.58),
                          "Q-large": (97.38, 70.36, 36.29, 62.62, 19.03, 92.72, 87.13),
                          "Q-base + adv": (98.58, 97.05, 94.25, 96.28, 86.73, 98.34, 97.8),
                          "Q-large + adv": (98.33, 95.74, 90.31, 94.11, 73.77, 97.8, 96.47)}),
}
# table 9's printed Q-large row repeats table 1a; table 10's repeats 2a (we check that they agree)


#: how each table was measured: (our results table, the path it scores, the black-box source or None)
PROTOCOL = {"1a": ("black_box", "Q-path", SOURCE_A), "1b": ("black_box", "Q-path", SOURCE_A),
            "7a": ("black_box", "Q-path", SOURCE_B), "7b": ("black_box", "Q-path", SOURCE_B),
            "2a": ("white_box_e", "Q-path", None), "2b": ("white_box_e", "Q-path", None),
            "3a": ("black_box", "Q-path", SOURCE_A), "3b": ("white_box_e", "Q-path", None),
            "6a E-path": ("black_box", "E-path", SOURCE_A), "6b E-path": ("white_box_e", "E-path", None),
            "9": ("black_box", "Q-path", SOURCE_A), "10": ("white_box_e", "Q-path", None),
            "11 Q-path": ("white_box_shortcut", "Q-path", None), "8a": ("grid", "Q-path", SOURCE_A),
            "8b": ("grid_adv", "Q-path", SOURCE_A)}
_DATASET = {"1b": "fashion_mnist", "2b": "fashion_mnist", "7b": "fashion_mnist"}
_THREAT = {"black_box": "black-box (transfer)", "white_box_e": "white-box via the E-path",
           "white_box_shortcut": "white-box via the shortcut (eq. 9)", "grid": "black-box (transfer)",
           "grid_adv": "black-box (transfer)"}
_ATTACK = {"FGSM": ("FGSM", 1), "BIM": ("BIM", 100), "CW": ("CW-Linf", 10)}  #: ART's defaults (appendix B)
#: cells that repeat another table's (registered once, under the first table)
_REPEATS = {("3a", "CNN"), ("3a", "Q-large"), ("3b", "CNN"), ("3b", "Q-large"), ("9", "Q-large"), ("10", "Q-large")}


def _column(attack: str, eps: float) -> str:
    if attack == "none":
        return "clean"
    short = {"FGSM": "FGSM", "BIM": "BIM", "CW-Linf": "CW"}.get(attack, attack)
    return f"{short} {eps:g}"


def _parse(col: str):
    """``"FGSM 0.3"`` -> ("FGSM", 0.3, 1); ``"clean"`` -> ("none", None, 0); ``"nc=64"`` (table 8) -> FGSM 0.3."""
    if col == "clean":
        return "none", None, 0
    if col.startswith("nc="):
        return "FGSM", 0.3, 1
    short, eps = col.split()
    name, steps = _ATTACK[short]
    return name, float(eps), steps


def _claims():
    out, where = [], {}
    for table, spec in PAPER.items():
        if table not in PROTOCOL:
            continue  # 6a/6b Q-path: tables 1a and 2a again
        frame, path, source = PROTOCOL[table]
        for model, cells in spec["rows"].items():
            if (table, model) in _REPEATS:
                continue
            for col, value in cells.items():
                if col == "clean" and table not in ("1a", "1b", "3a", "9"):
                    continue  # the same clean accuracy as the first table's
                attack, eps, steps = _parse(col)
                name = f"K={model[2:]}, nc={col[3:]}" if table.startswith("8") else model
                name += " + adv" if table == "8b" else ""
                shown = name if path == "Q-path" else f"{name} (E-path output)"
                threat = "clean" if attack == "none" else _THREAT[frame]
                if source == SOURCE_B and attack != "none":
                    threat += " from CNN_B"
                c = Claim("qlayer", f"table {table.split()[0]}", _DATASET.get(table, "mnist"), shown, attack, value,
                          threat_model=threat, eps=eps, steps=steps)
                out.append(c)
                where[c.key] = (table, name, col)
    return out, where


CLAIMS, _WHERE = _claims()
#: the paper's reference models: its CNN, undefended and FGSM-trained
BASELINES = ("CNN", "CNN + adv")
CLAIMS = mark_baselines(CLAIMS, BASELINES)


def claims_of(cfg: QLayerConfig, tables, part: str | None = None) -> list:
    """The registered claims on ``cfg.dataset`` from ``tables`` (names of :data:`PAPER`), optionally
    only the ``part="headline"`` ones (robust accuracy on the Q-path at ``cfg.eps``: what the adaptive
    test answers) or ``part="rest"`` (everything else)."""
    if part not in (None, "headline", "rest"):
        raise ValueError(f"part must be None, 'headline' or 'rest', got {part!r}")
    out = []
    for c in CLAIMS:
        table, _, _ = _WHERE[c.key]
        if c.dataset != cfg.dataset or table not in tables:
            continue
        head = c.eps is not None and abs(c.eps - cfg.eps) < 1e-9 and PROTOCOL[table][1] == "Q-path"
        if part is None or (part == "headline") == head:
            out.append(c)
    return out


def _ours(frames: dict, table: str, model: str, col: str):
    frame, path, source = PROTOCOL[table]
    df = frames.get(frame)
    if df is None:
        return None
    if frame.startswith("grid"):
        k, nc = model.split(", nc=")
        m = df[(df.K == int(k[2:])) & (df.nc == int(nc.split()[0]))]
        row = m.iloc[0] if len(m) == 1 else None
    else:
        attack, eps, _ = _parse(col)
        m = df[(df.model == model) & df.path.isin([path, "-"]) & (df.attack == attack)]
        if eps is not None:
            m = m[(m.eps - eps).abs() < 1e-9]
        if source is not None and attack != "none":
            m = m[m.source == source]
        row = m.iloc[0] if len(m) == 1 else None
    return None if row is None else accuracy_of(row)


def ledger(cfg: QLayerConfig, frames: dict, claims: list, adaptive: dict | None = None, section: str = "",
           reasons: dict | None = None) -> Ledger:
    """A ledger of ``claims`` (see :func:`claims_of`) joined with our numbers from ``frames`` (``{"black_box":
    ..., "white_box_e": ..., "white_box_shortcut": ..., "grid": ...}``: the frames of
    :mod:`.measure`) and, for Q-path claims at ``cfg.eps``, the adaptive worst case of the same model
    from ``adaptive`` (``{name: CascadeResult}``). A claim with no measured number gets the reason
    ``reasons[table]`` (or a generic one)."""
    led = Ledger(claims)
    for c in claims:
        table, model, col = _WHERE[c.key]
        ours = _ours(frames, table, model, col)
        worst = None
        if (adaptive and ours is not None and PROTOCOL[table][1] == "Q-path" and c.eps is not None
                and abs(c.eps - cfg.eps) < 1e-9 and model in adaptive):
            worst = adaptive[model].worst
        if ours is None:
            led.record(c, reason=(reasons or {}).get(table, "not measured in this profile"), section=section)
        else:
            led.record(c, ours, worst, section=section)
    return led


def _select(ours: pd.DataFrame, path: str, source: str | None) -> pd.DataFrame:
    """Rows scored on ``path`` (plain CNNs: "-") and, if given, crafted on ``source`` (clean rows: "-")."""
    df = ours[ours["path"].isin([path, "-"])]
    return df if source is None else df[df["source"].isin([source, "-"])]


def compare(ours: pd.DataFrame, table: str, path: str = "Q-path", source: str | None = None,
            max_columns: int = 5):
    """The paper's table ``table`` (a key of :data:`PAPER`) with every cell ``"paper | ours [95% CI]"``
    (percent), for the page. ``ours`` is a frame of :func:`.measure.black_box` or
    :func:`.measure.white_box`; ``path`` picks the scored path ("-" is used for plain CNNs),
    ``source`` the black-box source. A table with more than ``max_columns`` columns of numbers would
    not fit the text column: it comes as :class:`~qutils.report.Panels`, one table per radius (the
    clean column with the first), the attack names as headers and the radius as caption; a narrower
    one as a single Styler."""
    if table not in PAPER:
        raise ValueError(f"unknown table {table!r}; expected one of {sorted(PAPER)}")
    spec = PAPER[table]
    df = _select(ours, path, source)
    cells = {(r["model"], _column(r["attack"], r["eps"])): r for _, r in df.iterrows()}
    rows = []
    for model, paper_row in spec["rows"].items():
        if not any((model, col) in cells for col in spec["columns"]):
            continue
        rows.append({"model": model, **{col: report.paper_vs_ours(paper_row[col], cells.get((model, col)))
                                       for col in spec["columns"]}})
    frame = pd.DataFrame(rows, columns=["model", *spec["columns"]])
    if len(spec["columns"]) <= max_columns:
        return report.show(frame, wrap=16)
    radii = list(dict.fromkeys(_parse(c)[1] for c in spec["columns"] if c != "clean"))
    parts, captions = [], []
    for i, eps in enumerate(radii):
        cols = [c for c in spec["columns"] if (c == "clean" and i == 0) or (c != "clean" and _parse(c)[1] == eps)]
        parts.append(report.show(frame, wrap=16, columns=["model", *cols],
                                 rename={c: c.split()[0] for c in cols if c != "clean"}))
        captions.append(f"ε = {eps:g}")
    return report.Panels(parts, captions)


def compare_long(ours: pd.DataFrame, table: str, path: str = "Q-path", source: str | None = None) -> pd.DataFrame:
    """:func:`compare` as one row per cell with numbers (paper, ours, CI, n, inside the CI?), for
    summaries and for the results file."""
    spec = PAPER[table]
    df = _select(ours, path, source)
    rows = []
    for _, r in df.iterrows():
        model, col = r["model"], _column(r["attack"], r["eps"])
        if model in spec["rows"] and col in spec["rows"][model]:
            p = spec["rows"][model][col]
            rows.append({"table": table, "model": model, "column": col, "paper": p,
                         "ours": round(100 * r["accuracy"], 2), "ci_low": round(100 * r["ci_low"], 2),
                         "ci_high": round(100 * r["ci_high"], 2), "n": int(r["n"]),
                         "paper inside our CI": bool(100 * r["ci_low"] <= p <= 100 * r["ci_high"])})
    return pd.DataFrame(rows)


def compare_grid(grid: pd.DataFrame, adv: bool = False):
    """Table 8a (raw) or 8b (``adv``): ``"paper | ours [95% CI]"`` for every (K, nc) we trained."""
    spec = PAPER["8b" if adv else "8a"]
    out = {}
    for _, r in grid.iterrows():
        row, col = f"K={int(r['K'])}", f"nc={int(r['nc'])}"
        out.setdefault(row, {"heads": row})[col] = report.paper_vs_ours(spec["rows"].get(row, {}).get(col), r)
    return report.show(pd.DataFrame(list(out.values())), wrap=16)


def paper_cells(frames: dict, tables) -> pd.DataFrame:
    """:func:`compare_long` for several of the paper's tables at once, each read from the frame its
    :data:`PROTOCOL` names (``frames`` as for :func:`ledger`)."""
    parts = []
    for t in tables:
        frame, path, source = PROTOCOL[t]
        if frames.get(frame) is not None:
            parts.append(compare_long(frames[frame], t, path=path, source=source))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

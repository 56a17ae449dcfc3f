"""The book's claims ledger: every quantitative claim of the five papers, one row each, joined with
what the chapters measured.

The registry (:func:`registry`) is each chapter's claims (:data:`qutils.chapters.CHAPTERS`);
the measurements are the ledgers the chapters wrote into their results files
(the ``"claims"`` table of each). :func:`book_ledger` joins the two: a claim two pages recorded
keeps the most informative record (an adaptive number over a number under the paper's protocol over
none), and a registered claim no page recorded is listed as *not measured yet*, with that reason.
A claim not reproduced on a model whose clean accuracy (the paper's clean-accuracy claim for the same
model and dataset, and ours for it) misses the paper's by more than :mod:`qutils.bars`' tolerance
becomes *not comparable (under-trained)*, its reason giving both (:func:`mark_under_trained`).
:func:`write_csv` writes the result as ``results/claims.csv``, the machine-readable ledger (in the
spirit of RobustBench's "reported" and "AutoAttack" fields: the paper's value, ours under its
protocol, ours under the adaptive attack).
"""
from __future__ import annotations

from pathlib import Path

from .chapters import CHAPTERS, PAPERS
from .bars import under_trained, under_trained_note
from .claims import NOT_COMPARABLE, NOT_MEASURED, NOT_REPRODUCED, STATUSES

__all__ = ["registry", "book_ledger", "counts", "write_csv", "CSV_COLUMNS", "csv_path", "mark_under_trained",
           "clean_of"]

CSV_COLUMNS = ["key", "paper", "source", "dataset", "model", "attack", "threat_model", "eps", "steps", "unit",
               "paper_value", "ours", "ours_ci_low", "ours_ci_high", "ours_n", "ours_setting", "adaptive",
               "adaptive_ci_low", "adaptive_ci_high", "adaptive_n", "adaptive_setting", "status", "reason", "chapter",
               "section"]


_NUMERIC = ["eps", "steps", "paper_value", "ours", "ours_ci_low", "ours_ci_high", "ours_n", "adaptive",
            "adaptive_ci_low", "adaptive_ci_high", "adaptive_n"]


def registry() -> list:
    """Every registered claim of the five papers (each chapter's ``claims``), in the book's order."""
    return [c for ch in CHAPTERS for c in ch.claims]


def _rank(row) -> tuple:
    def has(v):
        return v is not None and v == v

    return (has(row.get("adaptive")), has(row.get("ours")), row.get("status") != NOT_MEASURED)


def book_ledger(directory: str | Path | None = None):
    """One row per registered claim (:data:`CSV_COLUMNS`): the chapters' records from the results files
    in ``directory`` (default ``results/``), the most informative one where two pages recorded a claim,
    and *not measured yet* where none did. Raises ``FileNotFoundError`` naming the chapter whose
    results file is missing."""
    import pandas as pd

    from .results import load_results, notebook_of, results_dir

    root = Path(directory) if directory is not None else results_dir()
    frames = []
    for ch in CHAPTERS:
        for name in ch.results:
            rows = load_results(root / f"{name}.json").get("tables", {}).get("claims") or []
            if rows:
                frames.append(pd.DataFrame(rows).assign(chapter=notebook_of(name)))
    recorded = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CSV_COLUMNS)
    best = {}
    for _, r in recorded.iterrows():
        row = r.to_dict()
        if row["key"] not in best or _rank(row) > _rank(best[row["key"]]):
            best[row["key"]] = row
    rows = []
    for c in registry():
        if c.key in best:
            rows.append(best.pop(c.key))
            continue
        rows.append({"key": c.key, "paper": c.paper, "source": c.source, "dataset": c.dataset, "model": c.model,
                     "attack": c.attack, "threat_model": c.threat_model, "eps": c.eps, "steps": c.steps, "unit": c.unit,
                     "paper_value": c.value, "status": NOT_MEASURED, "chapter": "", "section": "",
                     "reason": "no chapter's results file records this claim"})
    if best:  # a results file holds a claim the registry no longer has: stale results, not a silent extra row
        raise ValueError(f"results files record claims no paper registers (stale results? re-run their chapter): "
                         f"{sorted(best)[:3]}")
    out = pd.DataFrame(rows).reindex(columns=CSV_COLUMNS)
    for col in _NUMERIC:  # the results files write a missing number as the string "nan"
        out[col] = pd.to_numeric(out[col], errors="coerce")
    return mark_under_trained(out)


def clean_of(frame) -> dict:
    """``{(paper, dataset, model): (our clean accuracy, the paper's)}`` in percent, from the ledger's
    measured clean-accuracy claims (attack "none"); where a paper states one model's clean accuracy in
    several tables, the first measured one."""
    out = {}
    for _, r in frame.iterrows():
        if r["attack"] == "none" and r["unit"] == "%" and r["ours"] == r["ours"] and r["ours"] is not None:
            out.setdefault((r["paper"], r["dataset"], r["model"]), (float(r["ours"]), float(r["paper_value"])))
    return out


def mark_under_trained(frame):
    """``frame`` (ledger rows) with every *not reproduced* claim on an under-trained model marked *not
    comparable (under-trained)*, the clean accuracies leading its reason."""
    frame = frame.copy()
    clean = clean_of(frame)
    for i, r in frame.iterrows():
        pair = clean.get((r["paper"], r["dataset"], r["model"]))
        if r["status"] == NOT_REPRODUCED and pair is not None and under_trained(r["dataset"], *pair):
            note = under_trained_note(*pair)
            old = r["reason"] if isinstance(r["reason"], str) and r["reason"].strip() else ""
            frame.at[i, "status"] = NOT_COMPARABLE
            frame.at[i, "reason"] = f"{note}; {old}" if old else note
    return frame


def counts(frame, by: str = "paper"):
    """Claims per ``by`` value (rows) and status (columns, every status), with a total column."""
    import pandas as pd

    t = pd.crosstab(frame[by], frame["status"]).reindex(columns=list(STATUSES), fill_value=0)
    order = [p for p in PAPERS if p in t.index] if by == "paper" else list(t.index)
    t = t.loc[order]
    t["claims"] = t.sum(axis=1)
    return t.reset_index()


def csv_path(directory: str | Path | None = None) -> Path:
    from .results import results_dir

    return (Path(directory) if directory is not None else results_dir()) / "claims.csv"


def write_csv(frame, path: str | Path | None = None) -> Path:
    """Write the ledger (:func:`book_ledger`) as CSV: one row per claim, :data:`CSV_COLUMNS`."""
    path = Path(path) if path is not None else csv_path()
    frame.reindex(columns=CSV_COLUMNS).to_csv(path, index=False, float_format="%.6g")
    return path

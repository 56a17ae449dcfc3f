"""The book's claims ledger: every quantitative claim of the five papers, one row each, joined with
what the chapters measured.

The registry (:func:`registry`) is each chapter's claims (:data:`qutils.chapters.CHAPTERS`);
the measurements are the ledgers the chapters wrote into their results files
(the ``"claims"`` table of each). :func:`book_ledger` joins the two: a claim two pages recorded
keeps the most informative record (an adaptive number over a number under the paper's protocol over
none), and a registered claim no page recorded is listed as *not measured yet*, with that reason.
Every status is then decided from the numbers by :data:`qutils.claims.RULE` (:func:`apply_rule`), with
the clean accuracy of the claim's model (the paper's clean-accuracy claim for the same model and
dataset, and ours for it): so the rule is applied the same way to every chapter's record, whenever
that was written; a claim about an under-trained model that the rule marks *not comparable* gives
both clean accuracies first in its reason. A chapter that ported a paper's models to another dataset
(:attr:`qutils.chapter.Chapter.ports`) adds the port's verdict to each claim it ported (the ``port``
columns).
:func:`write_csv` writes the result as ``results/claims.csv``, the machine-readable ledger (in the
spirit of RobustBench's "reported" and "AutoAttack" fields: the paper's value, ours under its
protocol, ours under the adaptive attack).
"""
from __future__ import annotations

from pathlib import Path

from .chapters import CHAPTERS, PAPERS
from .bars import under_trained, under_trained_note
from .claims import NOT_COMPARABLE, NOT_MEASURED, REFUTED, STATUSES, Claim, Estimate, port_verdict, status_of

__all__ = ["registry", "book_ledger", "counts", "REFUTED_ON_PORT", "write_csv", "CSV_COLUMNS", "csv_path", "apply_rule",
           "clean_of"]

CSV_COLUMNS = ["key", "paper", "source", "dataset", "model", "attack", "threat_model", "eps", "steps", "unit",
               "paper_value", "ours", "ours_ci_low", "ours_ci_high", "ours_n", "ours_setting", "adaptive",
               "adaptive_ci_low", "adaptive_ci_high", "adaptive_n", "adaptive_setting", "seed_min", "seed_max",
               "status", "reason", "port", "port_value", "port_ci_low", "port_ci_high", "port_setting", "chapter",
               "section"]


_NUMERIC = ["eps", "steps", "paper_value", "ours", "ours_ci_low", "ours_ci_high", "ours_n", "adaptive",
            "adaptive_ci_low", "adaptive_ci_high", "adaptive_n", "seed_min", "seed_max", "port_value", "port_ci_low",
            "port_ci_high"]


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
    for col in ("port", "port_setting"):
        out[col] = ""
    for ch in CHAPTERS:
        if ch.ports is None:
            continue
        for key, (est, where) in ch.ports(root).items():
            i = out.index[out.key == key]
            if len(i) != 1:
                raise ValueError(f"{ch.paper}: a port names a claim the ledger has not: {key}")
            claim = next(c for c in ch.claims if c.key == key)
            out.loc[i, ["port_value", "port_ci_low", "port_ci_high"]] = [est.value, est.ci_low, est.ci_high]
            out.loc[i, "port_setting"] = est.what
            out.loc[i, "port"] = port_verdict(claim, est, where)
    return apply_rule(out)


def clean_of(frame) -> dict:
    """``{(paper, dataset, model): (our clean accuracy, the paper's)}`` in percent, from the ledger's
    measured clean-accuracy claims (attack "none"); where a paper states one model's clean accuracy in
    several tables, the first measured one."""
    out = {}
    for _, r in frame.iterrows():
        if r["attack"] == "none" and r["unit"] == "%" and r["ours"] == r["ours"] and r["ours"] is not None:
            out.setdefault((r["paper"], r["dataset"], r["model"]), (float(r["ours"]), float(r["paper_value"])))
    return out


def _estimate(r, name: str):
    v = r.get(name)
    if v is None or v != v:
        return None
    return Estimate(float(v), float(r[f"{name}_ci_low"]), float(r[f"{name}_ci_high"]))


def apply_rule(frame):
    """``frame`` (ledger rows) with every measured claim's status decided again by
    :data:`qutils.claims.RULE` from its numbers and its model's clean accuracies (:func:`clean_of`); a
    claim the rule finds *not comparable (under-trained)* gives both clean accuracies first in its reason.
    Claims not measured keep their status."""
    frame = frame.copy()
    clean = clean_of(frame)
    registered = {c.key: c for c in registry()}
    for i, r in frame.iterrows():
        ours, adaptive = _estimate(r, "ours"), _estimate(r, "adaptive")
        if ours is None and adaptive is None:
            continue
        claim = registered.get(r["key"]) or Claim(  # a row of a claim no chapter registers (a test's): as written
            r["paper"], str(r.get("source") or "-"), r["dataset"], r["model"], r["attack"], float(r["paper_value"]),
            unit=r["unit"])
        lo, hi = r.get("seed_min"), r.get("seed_max")
        seeds = None if lo is None or lo != lo else (float(lo), float(hi))
        pair = clean.get((r["paper"], r["dataset"], r["model"]))
        status = status_of(claim, ours, adaptive, seeds, clean=pair)
        frame.at[i, "status"] = status
        note = ""
        if status == NOT_COMPARABLE:
            note = under_trained_note(*pair)
        elif status == REFUTED:
            note = (f"the adaptive attack's 95% upper bound, {adaptive.ci_high:.1f}%, is "
                    f"{claim.value - adaptive.ci_high:.1f} points below the claim")
            if pair is not None and under_trained(claim.dataset, *pair):
                note += f" (our model's clean deficit: {pair[1] - pair[0]:.1f} points)"
        if note:
            old = r["reason"] if isinstance(r["reason"], str) and r["reason"].strip() else ""
            frame.at[i, "reason"] = old if old.startswith(note) else (f"{note}; {old}" if old else note)
    return frame


#: the column of :func:`counts` that counts the claims refuted on a port (their status: not runnable here)
REFUTED_ON_PORT = "refuted on a port"


def counts(frame, by: str = "paper"):
    """Claims per ``by`` value (rows) and status (columns, every status), with a total column and
    :data:`REFUTED_ON_PORT`: how many of the claims (all of them not runnable here) a chapter's port refuted."""
    import pandas as pd

    t = pd.crosstab(frame[by], frame["status"]).reindex(columns=list(STATUSES), fill_value=0)
    order = [p for p in PAPERS if p in t.index] if by == "paper" else list(t.index)
    t = t.loc[order]
    t["claims"] = t.sum(axis=1)
    port = frame["port"].fillna("").astype(str) if "port" in frame else pd.Series("", index=frame.index)
    t[REFUTED_ON_PORT] = port.str.startswith("refuted").groupby(frame[by]).sum().reindex(t.index, fill_value=0)
    return t.reset_index()


def csv_path(directory: str | Path | None = None) -> Path:
    from .results import results_dir

    return (Path(directory) if directory is not None else results_dir()) / "claims.csv"


def write_csv(frame, path: str | Path | None = None) -> Path:
    """Write the ledger (:func:`book_ledger`) as CSV: one row per claim, :data:`CSV_COLUMNS`."""
    path = Path(path) if path is not None else csv_path()
    frame.reindex(columns=CSV_COLUMNS).to_csv(path, index=False, float_format="%.6g")
    return path

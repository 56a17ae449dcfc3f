"""The declared shape of the results tables that the book's summaries read.

A chapter writes its adaptive evaluation into its results file as two kinds of table, which the
side-by-side page (:mod:`qutils.comparison`) and the ledger read back:

* ``"adaptive"``: one row per model (:func:`qutils.cascade.summary_table`): the label column
  :data:`LABEL`, then :data:`SUMMARY_COLUMNS` (fractions with their 95% intervals);
* ``"cascade: <model>"``: one row per stage of that model's cascade (:meth:`CascadeResult.table`):
  :data:`STAGE_COLUMNS`, every ``role`` one of :data:`STAGE_ROLES`.

:meth:`qutils.results.Results.add_table` validates both when a chapter writes them
(:func:`validate_table`), so a renamed column, an unknown stage role or an interval that does not
contain its value fails in the notebook that wrote it, not on the page that reads it.
"""
from __future__ import annotations

import math

__all__ = ["ADAPTIVE", "CASCADE_PREFIX", "LABEL", "LEGACY_LABELS", "SUMMARY_COLUMNS", "STAGE_COLUMNS", "STAGE_ROLES",
           "label_column", "validate_table"]

ADAPTIVE = "adaptive"  #: the name of the per-model summary table
CASCADE_PREFIX = "cascade: "  #: the prefix of a per-stage table's name
LABEL = "model"  #: the label column of the summary table
#: label columns written before the schema; QuSecNets' two pages still carry ``"defense"`` in their
#: committed results until their next execution, and only the reader accepts it (a new table must use LABEL)
LEGACY_LABELS = ("defense",)
SUMMARY_COLUMNS = ("n", "clean", "clean_lo", "clean_hi", "paper", "paper_lo", "paper_hi", "worst", "worst_lo",
                   "worst_hi", "decisive", "seconds")
STAGE_COLUMNS = ("stage", "role", "attack", "threat_model", "norm", "eps", "steps", "attacked", "broken", "robust", "n",
                 "accuracy", "ci_low", "ci_high", "seconds")
#: what a stage of a cascade is: the paper's own attack, a generic adaptive attack (APGD through an attack
#: view, transfer), the attack designed for the defense, or the gradient-free check
STAGE_ROLES = ("paper's attack", "adaptive", "designed", "gradient-free")


def _rows(frame) -> list[dict]:
    return frame.to_dict(orient="records") if hasattr(frame, "to_dict") else list(frame)


def label_column(frame) -> str:
    """The label column of a summary table read back from a results file: :data:`LABEL`, or a
    :data:`LEGACY_LABELS` name in a file written before the schema."""
    rows = _rows(frame)
    keys = set(rows[0]) if rows else set()
    for name in (LABEL, *LEGACY_LABELS):
        if name in keys:
            return name
    raise ValueError(f"an adaptive table needs the label column {LABEL!r}; it has {sorted(keys)}")


def _is_nan(v) -> bool:
    """NaN as a float, or as the results file writes it (JSON has no NaN: the string "nan")."""
    return (isinstance(v, float) and math.isnan(v)) or v == "nan"


def _interval(table: str, row: dict, value: str, lo: str, hi: str, allow_nan: bool = False) -> None:
    v, a, b = (row[k] for k in (value, lo, hi))
    if allow_nan and all(_is_nan(t) for t in (v, a, b)):
        return
    try:
        ok = 0.0 <= float(a) <= float(v) <= float(b) <= 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"table {table!r}: {value}={v!r} must be a fraction inside its interval [{lo}={a!r}, {hi}={b!r}]")


def validate_table(name: str, frame, legacy: bool = False) -> None:
    """Check a table the book's summaries read (``"adaptive"``, ``"cascade: ..."``) against its
    declared columns and values; any other table passes. ``legacy`` (reading a file written before the
    schema) also accepts a :data:`LEGACY_LABELS` label column. Raises ``ValueError`` naming what is wrong."""
    if name != ADAPTIVE and not name.startswith(CASCADE_PREFIX):
        return
    rows = _rows(frame)
    if not rows:
        raise ValueError(f"table {name!r} is empty")
    if name == ADAPTIVE:
        label = label_column(rows)
        if label != LABEL and not legacy:
            raise ValueError(f"table {name!r}: the label column must be {LABEL!r}, got {label!r}")
        needed = SUMMARY_COLUMNS
    else:
        needed = STAGE_COLUMNS
    for i, row in enumerate(rows):
        missing = [c for c in needed if c not in row]
        if missing:
            raise ValueError(f"table {name!r}, row {i}: missing columns {missing} (declared: {list(needed)})")
        if name == ADAPTIVE:
            _interval(name, row, "clean", "clean_lo", "clean_hi")
            _interval(name, row, "paper", "paper_lo", "paper_hi", allow_nan=True)
            _interval(name, row, "worst", "worst_lo", "worst_hi")
            if not float(row["worst"]) <= float(row["clean"]):
                raise ValueError(f"table {name!r}, row {i}: the worst case {row['worst']} exceeds clean {row['clean']}")
        else:
            if row["role"] not in STAGE_ROLES:
                raise ValueError(f"table {name!r}, row {i}: unknown stage role {row['role']!r}; roles: {STAGE_ROLES}")
            _interval(name, row, "accuracy", "ci_low", "ci_high")

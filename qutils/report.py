"""How the book prints numbers and tables: one place, so every chapter reads the same.

* :func:`acc` -- an accuracy as ``"97.5 [96.4, 98.3]"`` (percent, one decimal, the 95% interval);
  :func:`cell` the same from a value and its interval (fractions or percent);
* :func:`paper_vs_ours` -- ``"52.7 | 8.5 [6.9, 10.4]"`` cells: the paper's number next to ours;
* :func:`show` -- a DataFrame formatted for the page: no index column, percentages with one
  decimal, epsilons as ``0.3`` (never ``3.0e-01``), nothing shown as NaN or None, long text wrapped;
* :class:`Panels` -- a table too wide for the text column, shown as narrower tables one under the other;
* :func:`glue` -- a value (or figure) handed to myst-nb's ``glue`` so prose quotes it, never types it.
"""
from __future__ import annotations

import math

from .metrics import Accuracy

__all__ = ["acc", "bounds", "cell", "cells", "cascade_stages", "convergence", "convergence_verdict", "gains", "pct", "paper_vs_ours", "show", "Panels", "cascade_summary",
           "claims", "claims_table", "claim_counts", "glue", "glue_prefixed", "radius", "show_code", "EMPTY"]

EMPTY = "–"  #: what a table shows where a number does not apply


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def pct(v, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage string, ``EMPTY`` if missing."""
    return EMPTY if _missing(v) else f"{100 * float(v):.{digits}f}"


NBSP = "\u00a0"  #: keeps an interval on one line: a narrow cell breaks only between value and interval


def cell(value, ci_low=None, ci_high=None, percent: bool = False, digits: int = 1) -> str:
    """``"97.5 [96.4, 98.3]"``: a value with its 95% interval. Fractions unless ``percent``. The
    interval never breaks inside (a no-break space), so a narrow table cell shows at most two lines."""
    if _missing(value):
        return EMPTY
    f = (lambda v: f"{float(v):.{digits}f}") if percent else (lambda v: pct(v, digits))
    if _missing(ci_low) or _missing(ci_high):
        return f(value)
    return f"{f(value)} [{f(ci_low)},{NBSP}{f(ci_high)}]"


def radius(eps) -> str:
    """A radius as a paper writes it: a short decimal as it is (``0.3``, ``0.05``), a multiple of 1/255
    as a fraction (``8/255``, never ``0.0313725``), anything else to four significant digits."""
    if _missing(eps):
        return EMPTY
    eps = float(eps)
    short = f"{eps:g}"
    if len(short.replace("0.", "").lstrip("0")) <= 3:
        return short
    k = round(eps * 255)
    if k and abs(eps * 255 - k) < 1e-4:
        return f"{k}/255"
    return f"{eps:.4g}"


def acc(a: Accuracy | None, n: bool = False) -> str:
    """An :class:`~qutils.evaluate.Accuracy` as ``"97.5 [96.4, 98.3]"`` (``n=True``: ``"... (n=1000)"``)."""
    if a is None:
        return EMPTY
    if not isinstance(a, Accuracy):
        raise ValueError(f"expected an Accuracy, got {type(a).__name__}")
    s = cell(a.value, *a.ci)
    return f"{s} (n={a.n})" if n else s


def paper_vs_ours(paper, ours) -> str:
    """The paper's number (percent) and ours (an Accuracy, or a row with accuracy and interval)."""
    p = EMPTY if _missing(paper) else f"{float(paper):g}"
    if isinstance(ours, Accuracy):
        o = acc(ours)
    elif ours is None:
        o = EMPTY
    else:
        o = cell(ours["accuracy"], ours["ci_low"], ours["ci_high"])
    return f"{p} | {o}"


def show(df, percent=(), intervals=None, eps=("eps",), wrap: int | None = 40, columns=None, rename=None):
    """A DataFrame ready for the page, as a pandas Styler without the index.

    ``percent``: columns of fractions shown as percentages; ``intervals``: ``{new column: (value,
    low, high)}`` merged into one ``"v [lo, hi]"`` column (the three are dropped); ``eps``: columns
    printed with ``:g``; ``wrap``: longest text before a cell wraps (CSS, so the table stays inside
    the text column); ``columns``: the columns to keep, in order; ``rename``: new headers.
    """
    df = df.copy()
    for new, (v, lo, hi) in (intervals or {}).items():
        df[new] = [cell(a, b, c) for a, b, c in zip(df[v], df[lo], df[hi])]
        df = df.drop(columns=[c for c in (v, lo, hi) if c != new])
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"no columns {missing}; the table has {list(df.columns)}")
        df = df[list(columns)]
    fmt = {}
    for c in df.columns:
        if c in percent:
            fmt[c] = pct
        elif c in eps:
            fmt[c] = lambda v: EMPTY if _missing(v) else f"{float(v):g}"
        elif df[c].dtype.kind == "f":
            fmt[c] = lambda v: EMPTY if _missing(v) else (f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}")
        else:
            fmt[c] = lambda v: EMPTY if _missing(v) else str(v)
    if rename:
        df = df.rename(columns=rename)
        fmt = {rename.get(k, k): f for k, f in fmt.items()}
    sty = df.style.format(fmt).hide(axis="index")
    if wrap:
        sty = sty.set_table_styles([{"selector": "td, th", "props": f"max-width: {wrap}ch; white-space: normal; padding: 0.15em 0.6em;"}])
    return sty


def cascade_summary(summary, label: str = "model", title: str | None = None):
    """A :func:`qutils.cascade.summary_table` for the page: one row per ``label`` (its first column,
    headed ``title``, default the label) with clean accuracy, the paper's attack and the adaptive worst
    case (95% intervals), and the later attack that broke the most images."""
    rename = {"decisive": "attack that broke the most"}
    if title and title != label:
        rename[label] = title
    return show(summary, intervals={"clean (%)": ("clean", "clean_lo", "clean_hi"),
                                    "paper's attack (%)": ("paper", "paper_lo", "paper_hi"),
                                    "worst case (%)": ("worst", "worst_lo", "worst_hi")},
                columns=[label, "clean (%)", "paper's attack (%)", "worst case (%)", "decisive"], rename=rename)


def gains(table, paper: str = "paper's PGD (%)"):
    """A :func:`qutils.cascade.gain_table` for the page: the paper's attack and the worst case (95%
    intervals) and the drop in points."""
    df = cells(table.drop(columns=["drop (points)"])).assign(drop=table["drop (points)"].map("{:.1f}".format))
    return show(df, rename={"paper's attack": paper, "adaptive worst case": "worst case (%)",
                            "drop": "drop (points)"}, wrap=24)


def claims_table(frame, reason: bool = False, links: bool = False):
    """A claims ledger (:meth:`qutils.claims.Ledger.frame`, or :func:`qutils.ledger.book_ledger`'s rows) as
    the page's plain table: the claim (model, attack, radius as the paper writes it, dataset), where
    the paper says it (``links``: a link to the section that measured it), the paper's value, ours
    under its protocol and the adaptive worst case (95% intervals), the status, the port's verdict
    where a chapter ported the claim's model to another dataset, and, with ``reason``, why."""
    import pandas as pd

    def what(r):
        eps = "" if _missing(r.eps) else f" ε = {radius(r.eps)}"
        tm = "" if r.threat_model == "white-box" else f", {r.threat_model}"
        return f"{r.model}: {r.attack}{eps}{tm} ({r.dataset})"

    def source(r):
        sec = getattr(r, "section", "")
        return f'<a href="{sec}">{r.source}</a>' if links and isinstance(sec, str) and sec else r.source

    out = pd.DataFrame({
        "claim": [what(r) for r in frame.itertuples()],
        "source": [source(r) for r in frame.itertuples()],
        "paper (%)": frame.paper_value.map("{:g}".format).to_numpy(),
        "ours (%)": [cell(a, b, c, percent=True) for a, b, c in zip(frame.ours, frame.ours_ci_low, frame.ours_ci_high)],
        "adaptive (%)": [cell(a, b, c, percent=True)
                         for a, b, c in zip(frame.adaptive, frame.adaptive_ci_low, frame.adaptive_ci_high)],
        "status": frame.status.to_numpy()})
    if "port" in frame and frame.port.fillna("").astype(str).str.len().any():
        out["port (%)"] = [f"{cell(v, lo, hi, percent=True)} {p.replace(' on the ', ' (')})" if isinstance(p, str) and p
                           else EMPTY
                           for v, lo, hi, p in zip(frame.port_value, frame.port_ci_low, frame.port_ci_high, frame.port)]
    if reason:
        out["reason"] = [r if isinstance(r, str) and r.strip() else EMPTY for r in frame.reason]
    return out


def claims(frame, wrap: int = 24):
    """A claims ledger (:meth:`qutils.claims.Ledger.frame`) for the page: :func:`claims_table`, styled."""
    if not len(frame):
        return frame
    return show(claims_table(frame), wrap=wrap)


#: the widest line of code the book's text column shows without scrolling at 1280 px
CODE_WIDTH = 76


def show_code(obj, width: int = CODE_WIDTH):
    """The source of ``obj`` (a function, class or method of ``qutils``) as a code block on the page:
    the code a student reads is the code that ran, never a copy of it. Raises ``ValueError`` when a
    line is wider than ``width`` characters (it would scroll sideways on the page): reflow the
    source in ``qutils``, not on the page."""
    import inspect
    import textwrap

    from IPython.display import Markdown

    src = textwrap.dedent(inspect.getsource(obj)).rstrip()
    wide = [i for i, line in enumerate(src.splitlines(), 1) if len(line) > width]
    if wide:
        name = getattr(obj, "__qualname__", repr(obj))
        raise ValueError(f"{name}: lines {wide} are wider than {width} characters; reflow them in qutils "
                         "so the page shows them without scrolling")
    return Markdown(f"```python\n{src}\n```")


def claim_counts(frame, by: str = "source"):
    """How many claims of a ledger frame have each status, one row per ``by`` value (the paper's table,
    by default) and one column per status that occurs -- the short view of a long ledger."""
    import pandas as pd

    if not len(frame):
        return frame
    t = pd.crosstab(frame[by], frame["status"]).reset_index()
    t.columns.name = None
    order = list(dict.fromkeys(frame[by]))
    t = t.set_index(by).loc[order].reset_index()
    t["claims"] = t.drop(columns=[by]).sum(axis=1)
    return show(t, wrap=22)


class Panels:
    """Several tables (Stylers from :func:`show`) shown one under the other, each with its caption:
    how a table wider than the text column at 1280 px is printed (e.g. one part per radius)."""

    def __init__(self, parts, captions=()):
        self.parts = [p.set_caption(c) if c else p for p, c in zip(parts, list(captions) + [None] * len(parts))]
        if not self.parts:
            raise ValueError("Panels needs at least one table")

    def _repr_html_(self) -> str:
        return "\n".join(p.to_html() for p in self.parts)

    def __repr__(self) -> str:
        return "\n\n".join((p.caption + "\n" if p.caption else "") + p.data.to_string(index=False)
                             for p in self.parts)


class _Plain:
    """A string that prints without quotes (``{glue:text}`` shows the plain-text repr). myst-nb reads
    that repr with ``ast.literal_eval`` first, which would turn ``"40, 100"`` into the tuple
    ``(40, 100)``: a text it would read as something else is quoted, so it reads back as itself."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        from ast import literal_eval

        try:
            read = literal_eval(self.text)
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            return self.text
        return self.text if str(read) == self.text else repr(self.text)


def glue(name: str, value, display: bool = False):
    """Hand ``value`` to myst-nb's ``glue`` under ``name`` so the prose quotes it with ``{glue:text}``
    (an Accuracy is glued as :func:`acc`, strings without quotes; numbers keep their type, so the
    prose can format them, e.g. ``{glue:text}`name:.1f```). Returns what was glued."""
    shown = acc(value) if isinstance(value, Accuracy) else value
    if hasattr(shown, "item") and not isinstance(shown, (str, bytes)):  # numpy / torch scalars: plain numbers
        shown = shown.item()
    if isinstance(shown, str):
        shown = _Plain(shown)
    try:
        from myst_nb import glue as _glue
    except ImportError:  # pragma: no cover - myst-nb is in the requirements
        return shown
    _glue(name, shown, display=display)
    return shown


def cells(df):
    """Accuracy objects as "v [lo, hi]" strings, paper numbers as plain numbers."""
    def fmt(v):
        if isinstance(v, Accuracy):
            return acc(v)
        if v is None or (isinstance(v, float) and v != v):
            return EMPTY
        return f"{v:g}" if isinstance(v, float) else v

    return df.apply(lambda col: col.map(fmt))


def cascade_stages(result, wrap: int = 26):
    """One cascade (a :class:`~qutils.cascade.CascadeResult`) stage by stage, for the page: its role,
    the images attacked and broken, the running worst case with its 95% interval, the seconds."""
    return show(result.table(), intervals={"worst case after (%)": ("accuracy", "ci_low", "ci_high")},
                columns=["stage", "role", "attacked", "broken", "worst case after (%)", "seconds"], wrap=wrap)



def bounds(table, wrap: int = 12, seconds: bool = True):
    """Two-sided bounds (:func:`qutils.certify.cascade_bounds`' table) for the page: per model and
    radius the certified share (lower bound), the attacks' share alone, the images the search broke
    that the attacks had left correct, the share neither broke (upper bound), each bound with its 95%
    interval, the undecided images and (``seconds``) the search's seconds. Short headers, so the
    columns fit the text column at 1280 px."""
    t = table.assign(alone=table.survived, missed=table.n_missed, unknown=table.n_unknown,
                     seconds=table.seconds.round() if seconds else 0)
    return show(t, percent=("alone",), intervals={"certified (%)": ("certified", "certified_lo", "certified_hi"),
                                                  "not broken (%)": ("attacked", "attacked_lo", "attacked_hi")},
                columns=["model", "eps", "n", "certified (%)", "alone", "missed", "not broken (%)", "unknown"]
                + (["seconds"] if seconds else []),
                rename={"eps": "ε", "alone": "attacks alone (%)", "missed": "missed by attacks", "seconds": "s"},
                wrap=wrap)


def convergence(table, prefix: str | None = None):
    """The convergence check (:func:`qutils.cascade.convergence_table`) for the page: per model the
    images, the worst case as run and with the stronger cascade added (95% intervals), the images only
    the stronger cascade broke, the change in points and the verdict. With ``prefix`` (the page's glue
    keys' prefix, e.g. ``"dqaa"``) it also glues what the prose quotes: ``{prefix}-conv-n`` (images),
    ``-conv-what`` (the stronger budget in words), ``-conv-max`` (the largest change, points) and
    ``-conv-verdict`` (:func:`convergence_verdict`)."""
    glue_prefixed(prefix, {"conv-n": int(table.n.iloc[0]), "conv-what": table.stronger.iloc[0],
                           "conv-max": f"{table['change (points)'].max():.1f}",
                           "conv-verdict": convergence_verdict(table)})
    t = table.assign(converged=table.converged.map({True: "yes", False: "NO"}),
                     change=table["change (points)"].map("{:.1f}".format))
    return show(cells(t), columns=["model", "n", "worst", "worst, stronger", "newly broken", "change", "converged"],
                rename={"worst": "worst case (%)", "worst, stronger": "with twice the budget (%)",
                        "change": "change (points)"}, wrap=18)


def glue_prefixed(prefix: str | None, values: dict) -> None:
    """Glue every ``{name: value}`` of ``values`` as ``{prefix}-{name}``, the page's glue keys; with
    ``prefix`` None glue nothing (a helper that only shows its table). A blank prefix raises."""
    if prefix is None:
        return
    if not isinstance(prefix, str) or not prefix.strip():
        raise ValueError(f"prefix must be the page's glue-key prefix (a non-empty string), got {prefix!r}")
    for name, value in values.items():
        glue(f"{prefix}-{name}", value)


def convergence_verdict(table) -> str:
    """One clause for the page: every model converged, or which did not."""
    bad = list(table.loc[~table.converged, table.columns[0]])
    if not bad:
        return "every model's worst case moved by less than a point: the cascade converged"
    what = "its worst case is an upper bound" if len(bad) == 1 else "their worst cases are upper bounds"
    return f"{', '.join(bad)} did not converge: {what} that more attack still lowers"

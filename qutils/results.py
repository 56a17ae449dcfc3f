"""One way for every chapter to write its numbers to ``results/<chapter>.json``.

>>> res = Results("qusecnets", profile, device, config=cfg)
>>> res.add(acc, defense="CQ n=2", setting="white-box")     # an Accuracy, with its attack settings
>>> res.add_table("fgsm_sweep", frame)                       # a pandas table (figure source data)
>>> res.save()                                               # only the book profile writes results/

Each record keeps the accuracy, its 95% interval, the number of images and the attack's threat
model, norm, epsilon, steps and parameters. The file also holds the chapter's config, the
profile, the code version and the environment, so the comparison chapter can read it instead of
retraining, and a reader can tell which run produced it.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from pathlib import Path

from .metrics import Accuracy
from .schema import ADAPTIVE, CASCADE_PREFIX, validate_table
from .profiles import Profile
from .utils import code_version, environment

__all__ = ["Results", "results_dir", "notebook_of", "load_results", "overview"]


def results_dir() -> Path:
    """The repository's ``results/`` folder."""
    return Path(__file__).resolve().parent.parent / "results"


def _jsonable(v):
    """``v`` with JSON types only: infinities and NaN as strings ("inf"), scalars unwrapped."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _jsonable(dataclasses.asdict(v))
    if hasattr(v, "item") and callable(v.item) and not isinstance(v, (str, bytes)):  # numpy / torch scalars
        try:
            v = v.item()
        except (ValueError, RuntimeError):
            return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no inf / nan
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


class Results:
    def __init__(self, chapter: str, profile: Profile, device=None, config=None):
        if not isinstance(chapter, str) or not chapter or any(c in chapter for c in "/\\ "):
            raise ValueError(f"chapter must be a short name without slashes or spaces, got {chapter!r}")
        if not isinstance(profile, Profile):
            raise ValueError(f"profile must be a qutils Profile, got {type(profile).__name__}")
        self.chapter, self.profile, self.device = chapter, profile, device
        self.config = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else (config or {})
        self.records: list[dict] = []
        self.tables: dict[str, list[dict]] = {}

    def add(self, acc: Accuracy, **labels) -> dict:
        """Record one accuracy with labels (defense, dataset, setting, ...). Returns the record."""
        if not isinstance(acc, Accuracy):
            raise ValueError(f"expected a qutils Accuracy (it carries the interval and attack settings), "
                             f"got {type(acc).__name__}")
        rec = {**labels, **acc.as_dict()}
        self.records.append(rec)
        return rec

    def add_table(self, name: str, frame) -> None:
        """Record a table (a pandas DataFrame or a list of dicts), e.g. a figure's source data. Each
        name is written once: a second table under the same name would overwrite the first."""
        if name in self.tables:
            raise ValueError(f"a table named {name!r} is already recorded for {self.chapter}; give each table its "
                             "own name (the second would overwrite the first in the results file)")
        rows = frame.to_dict(orient="records") if hasattr(frame, "to_dict") else list(frame)
        validate_table(name, rows)  # the tables the book's summaries read have a declared shape
        self.tables[name] = rows

    def add_tables(self, tables: dict) -> None:
        """:meth:`add_table` for every ``{name: frame}`` of ``tables``."""
        for name, frame in tables.items():
            self.add_table(name, frame)

    def add_cascades(self, results: dict) -> None:
        """A page's adaptive evaluation (``{model: CascadeResult}``) in one call: the summary table
        ``"adaptive"`` (:func:`qutils.cascade.summary_table`), one ``"cascade: <model>"`` table per model,
        and per model its clean accuracy, the paper's attack (where the cascade has one) and the adaptive
        worst case as accuracies labelled ``model`` and ``measurement``."""
        from .cascade import summary_table

        self.add_table(ADAPTIVE, summary_table(results))
        for name, r in results.items():
            self.add_table(f"{CASCADE_PREFIX}{name}", r.table())
            self.add(r.clean, model=name, measurement="clean")
            if r.paper_stage() is not None:
                self.add(r.paper_accuracy(), model=name, measurement="paper's attack")
            self.add(r.worst, model=name, measurement="adaptive worst case")

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.records)

    def payload(self) -> dict:
        return {
            "chapter": self.chapter,
            "profile": dataclasses.asdict(self.profile),
            "device": str(self.device),
            "code": code_version(),
            "environment": environment(),
            "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": self.config,
            "accuracies": self.records,
            "tables": self.tables,
        }

    def save(self, path: str | Path | None = None, force: bool = False) -> Path | None:
        """Write the JSON file. Only a ``book`` (or ``full``) run writes to ``results/`` unless
        ``force``; a ``smoke`` run returns ``None`` and leaves the book's numbers alone."""
        if self.profile.name == "smoke" and not force and path is None:
            print(f"profile smoke: results/{self.chapter}.json not written (only book and full runs write it)")
            return None
        path = Path(path) if path is not None else results_dir() / f"{self.chapter}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_jsonable(self.payload()), indent=1, allow_nan=False)
        path.write_text(text + "\n")
        print(f"wrote {path.name}: {len(self.records)} accuracies, {len(self.tables)} tables")
        return path


def save_page(chapter: str, session, config, tables: dict | None = None, cascades: dict | None = None, ledger=None,
              accuracies=()) -> Results | None:
    """Everything a page records, in one call: its ``tables`` (``{name: frame}``), its adaptive
    evaluation (``cascades``, :meth:`Results.add_cascades`), extra ``accuracies`` (``(Accuracy, labels)``
    pairs), its part of the claims ledger (``ledger.save``), all under ``results/<chapter>.json`` with
    the session's profile and device and the chapter's ``config``. A table given as ``None`` (one the
    profile does not compute, e.g. a grid trained in the ``full`` profile only) is left out. Returns the
    :class:`Results`."""
    res = Results(chapter, session.profile, session.device, config=config)
    res.add_tables({name: frame for name, frame in (tables or {}).items() if frame is not None})
    if cascades:
        res.add_cascades(cascades)
    for acc, labels in accuracies:
        res.add(acc, **labels)
    if ledger is not None:
        ledger.save(res)
    res.save()
    return res


def notebook_of(chapter: str) -> str:
    """The notebook that writes ``results/<chapter>.json`` (``notebooks/NN_<chapter>.ipynb``), or ``""``
    if no notebook is named after it."""
    hits = sorted((results_dir().parent / "notebooks").glob(f"[0-9][0-9]_{chapter}.ipynb"))
    return hits[0].stem if len(hits) == 1 else ""


def load_results(chapter_or_path: str | Path) -> dict:
    """Read a chapter's results file (by chapter name or path); a missing one raises
    ``FileNotFoundError`` naming the notebook that writes it."""
    p = Path(chapter_or_path)
    if p.suffix != ".json":
        p = results_dir() / f"{chapter_or_path}.json"
    if not p.exists():
        nb = notebook_of(p.stem)
        run = f"notebooks/{nb}.ipynb" if nb else "the chapter's notebook"
        raise FileNotFoundError(f"no results file {p.name} in {p.parent}; run {run} in the book profile to write it")
    return json.loads(p.read_text())


def overview(directory: str | Path | None = None, ledger=None):
    """One row per chapter results file in ``results/``: which run wrote it (profile, device, code
    version, date), how many accuracies and tables it holds, and its claims by status. With ``ledger``
    (:func:`qutils.ledger.book_ledger`'s rows), the claims are those the book's ledger takes from the
    file, with the statuses of today's rule; without it, the statuses the file recorded. The landing
    page shows it."""
    import pandas as pd

    from .claims import STATUSES

    rows = []
    for f in sorted(Path(directory or results_dir()).glob("*.json")):
        d = json.loads(f.read_text())
        if "chapter" not in d:  # benchmark files and the like
            continue
        if ledger is not None:
            claims = [{"status": s} for s in ledger.loc[ledger["chapter"] == notebook_of(f.stem), "status"]]
        else:
            claims = d.get("tables", {}).get("claims") or []
            claims = [c for c in claims if isinstance(c, dict) and c.get("status") in STATUSES]
        row = {"results file": f.name, "profile": d["profile"]["name"], "device": d.get("device", ""),
               "code": d.get("code", ""), "written": str(d.get("written", ""))[:10],
               "accuracies": len(d.get("accuracies", [])), "tables": len(d.get("tables", {})),
               "claims": len(claims)}
        for s in STATUSES:
            row[s] = sum(c["status"] == s for c in claims)
        rows.append(row)
    return pd.DataFrame(rows)

"""``make models``: train every model the book uses into the checkpoint cache, once.

For every chapter of :data:`qutils.chapters.CHAPTERS` and every dataset it compares, the chapter's
``book_zoo(cfg, profile)`` trains (or finds cached) every model its pages use. A model already
cached costs a load; a model whose run was interrupted resumes from its last finished epoch
(:mod:`qutils.train_state`). A bar over the chapters gives the time left; the closing table gives
what each chapter trained (new cache entries) and how long it took. Export the result with
``python -m qutils.cache_archive export zoo.tar`` for a class to import.

    QUTILS_PROFILE=book python -m qutils.make_models                 # the whole book
    QUTILS_PROFILE=book python -m qutils.make_models --chapter dqa --dataset mnist
"""
from __future__ import annotations

import argparse
import importlib
import time

import pandas as pd

from .cache import cache_dir, entries
from .chapters import CHAPTERS, chapter
from .data import canonical_name
from .profiles import Profile, get_device, get_profile
from .progress import progress as _progress

__all__ = ["plan", "make_models"]


def plan(chapters=None, datasets=None) -> list[tuple[str, str]]:
    """``[(paper, dataset), ...]`` in the book's order: every dataset each chapter compares, or only
    ``chapters`` (paper ids) and ``datasets``; unknown names raise ``ValueError``."""
    chosen = [chapter(p) for p in chapters] if chapters else list(CHAPTERS)
    wanted = None if not datasets else {canonical_name(d) for d in datasets}
    jobs = [(c.paper, d) for c in chosen for d in c.sources if wanted is None or d in wanted]
    if not jobs:
        raise ValueError(f"no chapter of {[c.paper for c in chosen]} compares the datasets {sorted(wanted or ())}")
    return jobs


def _entries() -> set:
    return {p.name for p in entries()}


def make_models(jobs=None, profile: Profile | None = None, device=None, progress: bool = True) -> pd.DataFrame:
    """Run the chapters' ``book_zoo`` for ``jobs`` (default: :func:`plan`); one row per job:
    chapter, dataset, seconds, new cache entries, cache entries it had before."""
    profile = profile or get_profile()
    device = device or get_device()
    rows = []
    for paper, dataset in _progress(jobs or plan(), enabled=progress, desc="zoo (chapter, dataset)"):
        pkg = importlib.import_module(f"qutils.experiments.{paper}")
        before, t0 = _entries(), time.perf_counter()
        pkg.book_zoo(pkg.config_for(dataset, profile), profile, device=device, progress=progress)
        rows.append({"chapter": paper, "dataset": dataset, "seconds": round(time.perf_counter() - t0, 1),
                     "new entries": len(_entries() - before)})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m qutils.make_models", description=__doc__.split("\n\n")[0])
    ap.add_argument("--chapter", action="append", help="a chapter id (repeatable); default: every chapter")
    ap.add_argument("--dataset", action="append", help="a dataset (repeatable); default: each chapter's")
    args = ap.parse_args(argv)
    profile = get_profile()
    print(f"profile {profile.name}, device {get_device()}, cache {cache_dir()}")
    table = make_models(plan(args.chapter, args.dataset), profile)
    print(table.to_string(index=False))
    print(f"total {table['seconds'].sum():.0f} s, {table['new entries'].sum()} new cache entries")


if __name__ == "__main__":
    main()

"""The book's defense chapters, in the book's order: the one list the claims ledger
(:mod:`qutils.ledger`) and the comparison (:mod:`qutils.comparison`) read. Each entry is a chapter's
:class:`~qutils.chapter.Chapter` record (``qutils.experiments.<paper>.CHAPTER``); adding a defense is
its package, its notebooks and one line here.

This module sits above the chapters (it imports them); the modules below never import it.
"""
from __future__ import annotations

from .experiments.dqa.chapter import CHAPTER as _DQA
from .experiments.gcln.chapter import CHAPTER as _GCLN
from .experiments.qlayer.chapter import CHAPTER as _QLAYER
from .experiments.qusecnets.chapter import CHAPTER as _QUSECNETS
from .experiments.sqa.chapter import CHAPTER as _SQA

__all__ = ["CHAPTERS", "PAPERS", "chapter"]

CHAPTERS = (_QUSECNETS, _QLAYER, _DQA, _SQA, _GCLN)
#: ``{paper id: reference}``, in the book's order
PAPERS = {c.paper: c.reference for c in CHAPTERS}


def chapter(paper: str):
    """The :class:`~qutils.chapter.Chapter` of ``paper`` (its id), or ``ValueError``."""
    for c in CHAPTERS:
        if c.paper == paper:
            return c
    raise ValueError(f"unknown paper {paper!r}; the book's chapters are {list(PAPERS)}")

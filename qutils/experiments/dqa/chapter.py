"""The DQA chapter's record for the book-wide pages (the claims ledger, the comparison): see
:mod:`qutils.chapter`."""
from __future__ import annotations

from ...chapter import DEFENSE, PGD_TRAINED, Chapter, Source
from .config import DQAConfig
from .paper import CLAIMS

__all__ = ["CHAPTER"]


def _source(results):
    return Source("dqa", results, {
        "Fixed 1-bit": (DEFENSE, "PGD"), "Dynamic 1-bit": (DEFENSE, "PGD"), "Dynamic 2-bit": (DEFENSE, "PGD"),
        "Dynamic 3-bit": (DEFENSE, "PGD"), "Full precision (ReLU)": (PGD_TRAINED, "PGD")}, "curves",
        reference="Full precision (ReLU)")


CHAPTER = Chapter(
    paper="dqa", name="DQA", reference="DQA (Rakin et al. 2018)", mechanism="activations (learned thresholds)",
    colour="#d95f02", results=("dqa", "dqa_adaptive"),
    sources={"mnist": (_source("dqa_adaptive"),), "fashion_mnist": (_source("dqa_fashion_mnist"),)},
    config=DQAConfig, claims=CLAIMS)

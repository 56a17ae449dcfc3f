"""The GCLN chapter's record for the book-wide pages (the claims ledger, the comparison): see
:mod:`qutils.chapter`."""
from __future__ import annotations

from ...chapter import DEFENSE, OTHER, PGD_TRAINED, UNDEFENDED, Chapter, Source
from .config import GCLNConfig
from .paper import CLAIMS, port_verdicts

__all__ = ["CHAPTER"]


def _source(results, q, curves=None):
    return Source("gcln", results, {
        f"GCLN (Qs={q[0]})": (DEFENSE, "none"), f"GCLN (Qs={q[1]})": (DEFENSE, "none"),
        "Feature squeezing": (OTHER, "none"), "PGD-trained": (PGD_TRAINED, "PGD"), "No defense": (UNDEFENDED, "none")},
        curves, reference="No defense")


CHAPTER = Chapter(
    paper="gcln", name="GCLN", reference="GCLN (ICLR 2020 submission)",
    mechanism="DCT coefficients, in a cleaning network", colour="#1f78b4",
    results=("gcln", "gcln_adaptive", "gcln_fashion_mnist"),
    sources={"mnist": (_source("gcln_adaptive", (48, 96), "curve"),),
             "fashion_mnist": (_source("gcln_fashion_mnist", (16, 32)),)},
    config=GCLNConfig, claims=CLAIMS, ports=port_verdicts)

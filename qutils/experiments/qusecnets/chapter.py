"""The QuSecNets chapter's record for the book-wide pages (the claims ledger, the comparison): see
:mod:`qutils.chapter`."""
from __future__ import annotations

from ...chapter import DEFENSE, FGSM_TRAINED, OTHER, UNDEFENDED, Chapter, Source
from .config import QuSecNetsConfig
from .paper import CLAIMS

__all__ = ["CHAPTER"]


def _source(results):
    return Source("qusecnets", results, {
        "CQ n=2": (DEFENSE, "none"), "VQ (cross-entropy)": (DEFENSE, "none"), "VQ + adv. training": (DEFENSE, "FGSM"),
        "FS: bit depth 1": (OTHER, "none"), "No defense + adv. training": (FGSM_TRAINED, "FGSM"),
        "No defense": (UNDEFENDED, "none")},
        "adaptive_curves", {"CQ n=2 (hard): PGD+BPDA": "CQ n=2", "no defense: PGD": "No defense"},
        {"VQ + adv. training": "No defense + adv. training", "CQ n=2": "No defense", "VQ (cross-entropy)": "No defense"})


CHAPTER = Chapter(
    paper="qusecnets", name="QuSecNets", reference="QuSecNets (Ali et al. 2018)", mechanism="the input pixels",
    colour="#1b9e77", results=("qusecnets", "qusecnets_adaptive"),
    sources={"mnist": (_source("qusecnets_adaptive"),), "fashion_mnist": (_source("qusecnets_fashion_mnist"),)},
    config=QuSecNetsConfig, claims=CLAIMS)

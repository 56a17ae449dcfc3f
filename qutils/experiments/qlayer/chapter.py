"""The Q-Layer chapter's record for the book-wide pages (the claims ledger, the comparison): see
:mod:`qutils.chapter`."""
from __future__ import annotations

from ...chapter import DEFENSE, FGSM_TRAINED, UNDEFENDED, Chapter, Source
from .config import QLayerConfig
from .paper import CLAIMS

__all__ = ["CHAPTER"]


def _source(results):
    return Source("qlayer", results, {
        "Q-base": (DEFENSE, "none"), "Q-large": (DEFENSE, "none"), "Q-base + adv": (DEFENSE, "FGSM"),
        "Q-large + adv": (DEFENSE, "FGSM"), "CNN + adv": (FGSM_TRAINED, "FGSM"), "CNN": (UNDEFENDED, "none")},
        reference={"Q-base": "CNN", "Q-large": "CNN", "Q-base + adv": "CNN + adv", "Q-large + adv": "CNN + adv"})


CHAPTER = Chapter(
    paper="qlayer", name="Q-Layer", reference="Q-Layer (ICLR 2020 submission)",
    mechanism="feature maps, to learned concepts", colour="#7570b3",
    results=("qlayer", "qlayer_honest", "qlayer_fashion_mnist", "qlayer_fashion_mnist_honest", "qlayer_inner",
             "qlayer_ablations"),
    sources={"mnist": (_source("qlayer_honest"),
                       Source("qlayer", "qlayer_inner", {"Q-inner": (DEFENSE, "none")}, reference="CNN")),
             "fashion_mnist": (_source("qlayer_fashion_mnist_honest"),)},
    config=QLayerConfig, claims=CLAIMS)

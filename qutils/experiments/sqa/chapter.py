"""The SQA chapter's record for the book-wide pages (the claims ledger, the comparison): see
:mod:`qutils.chapter`."""
from __future__ import annotations

from ...chapter import DEFENSE, FGSM_TRAINED, PGD_TRAINED, Chapter, Source
from .config import SQAConfig
from .paper import CLAIMS

__all__ = ["CHAPTER"]


def _source(results, small=True):
    models = {"LARGE SQA": (DEFENSE, "FGSM"), **({"SMALL SQA": (DEFENSE, "FGSM")} if small else {}),
              "LARGE PGD": (PGD_TRAINED, "PGD"), "LARGE FGSM-RS": (FGSM_TRAINED, "FGSM-RS"),
              "LARGE full": (FGSM_TRAINED, "FGSM")}
    return Source("sqa", results, models, "curves", reference={"LARGE SQA": "LARGE full", "SMALL SQA": "SMALL full"})


CHAPTER = Chapter(
    paper="sqa", name="SQA", reference="SQA (ICLR 2019 submission)", mechanism="activations, stochastically",
    colour="#e7298a", results=("sqa", "sqa_adaptive"),
    sources={"mnist": (_source("sqa_adaptive"),), "fashion_mnist": (_source("sqa_fashion_mnist", small=False),)},
    config=SQAConfig, claims=CLAIMS)

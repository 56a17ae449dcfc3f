"""Attacks: one API (:class:`~qutils.attacks.base.Attack`) for every attack the book uses.

>>> from qutils.attacks import PGD
>>> x_adv = PGD(eps=0.3, steps=40)(model, x, y)
"""
from .base import Attack, Norm, ThreatModel, check_eps, check_inputs, project
from .bpda import BPDA, bpda
from .fgsm import FGSM
from .pgd import BIM, PGD

ATTACKS = {"fgsm": FGSM, "bim": BIM, "pgd": PGD}


def make(name: str, **kwargs) -> Attack:
    """Build an attack by name, e.g. ``make("pgd", eps=0.3, steps=40)``."""
    key = str(name).lower()
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; expected one of {sorted(ATTACKS)}")
    return ATTACKS[key](**kwargs)


__all__ = ["Attack", "Norm", "ThreatModel", "FGSM", "BIM", "PGD", "BPDA", "bpda", "ATTACKS", "make",
           "check_eps", "check_inputs", "project"]

"""Attacks: one API (:class:`~qutils.attacks.base.Attack`) for every attack the book uses.

>>> from qutils.attacks import PGD
>>> x_adv = PGD(eps=0.3, steps=40)(model, x, y)

White-box gradient attacks: FGSM, FGSM-RS, BIM, PGD (Linf, L2), APGD-CE/DLR and APGD-T (AutoAttack's), CWLinf,
CWL2, DeepFool, JSMA.
Score-based black-box: ZOO, Square. Decision-based black-box: HopSkipJump, Boundary (foolbox).
Transfer and adaptive (BPDA) attacks wrap any of them; ``eot=n`` averages gradients over a
stochastic defense's randomness, and EOTPGD maximises the share of a random defense's draws it fools.
"""
from .base import (Attack, MinimizationAttack, Norm, ThreatModel, all_targets, check_eps, check_inputs, margin,
                   norms, project, random_targets)
from .anneal import AnnealedBPDA
from .apgd import APGD, APGDT
from .bpda import BPDA, bpda
from .cw import CWL2
from .deepfool import DeepFool
from .eot import EOTPGD
from .fgsm import FGSM, FGSMRS
from .foolbox_bridge import Boundary, FoolboxAttack, HopSkipJump
from .jsma import JSMA
from .lowfreq import LowFrequencyPGD, lowpass
from .pgd import BIM, PGD, CWLinf
from .square import Square
from .threshold import ThresholdFlip
from .wrappers import Adaptive, Transfer
from .zoo import ZOO

__all__ = ["Attack", "MinimizationAttack", "Norm", "ThreatModel", "FGSM", "FGSMRS", "BIM", "PGD", "APGD", "APGDT", "CWLinf", "CWL2",
           "DeepFool", "JSMA", "LowFrequencyPGD", "lowpass", "ZOO", "Square", "ThresholdFlip", "AnnealedBPDA", "EOTPGD", "FoolboxAttack", "HopSkipJump", "Boundary", "Transfer",
           "Adaptive", "BPDA", "bpda", "random_targets", "all_targets", "check_eps", "check_inputs",
           "margin", "norms", "project"]

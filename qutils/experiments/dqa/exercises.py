"""The DQA chapter's exercises: what each page's self-check compares with (never printed), and each
exercise's title and tolerance, so a page checks an answer in one call."""
from __future__ import annotations

import torch

from ...attacks import FGSM, Adaptive
from ...defenses.dqa import fixed_levels, paper_levels
from ...evaluate import robust_accuracy
from ...exercise import Exercise, checker
from .config import DQAConfig, name_of

__all__ = ["EXERCISES", "check_exercise", "exercise_reference"]

#: the exercises of pages 11 (levels-3bit, paper-levels, fgsm-zero) and 12 (st-fgsm), by the name the page checks them by
EXERCISES = {
    "levels-3bit": Exercise("exercise 1: the 3-bit levels", atol=1e-6),
    "paper-levels": Exercise("exercise 2: equation 8's levels", atol=1e-6),
    "fgsm-zero": Exercise("exercise 3: unchanged FGSM images", atol=1e-9),
    "st-fgsm": Exercise("exercise 4: straight-through FGSM on Fixed 1-bit", atol=1e-9),
}


def exercise_reference(which: str, models: dict, x: torch.Tensor, y: torch.Tensor, cfg: DQAConfig):
    """The reference answers of the chapter's exercises (the self-checks compare with these, and
    never print them)."""
    if which == "levels-3bit":
        return fixed_levels(3).tolist()
    if which == "fgsm-zero":
        m = models[name_of("fixed", 2)].deployed()
        return float((FGSM(cfg.eps)(m, x[:100], y[:100]) == x[:100]).flatten(1).all(1).float().mean())
    if which == "paper-levels":
        return paper_levels(torch.tensor([-0.6, -0.1, 0.2, 0.3, 0.5, 0.7, 0.9])).tolist()
    if which == "st-fgsm":
        m = models[name_of("fixed", 1)]
        return robust_accuracy(m.deployed(), Adaptive(FGSM(cfg.eps), m.view("identity")), x[:200], y[:200]).value
    raise ValueError(f"no exercise {which!r}; the chapter's are {sorted(EXERCISES)}")


#: ``check_exercise(which, answer, models, x, y, cfg)``: a page's self-check of exercise ``which``
check_exercise = checker(EXERCISES, exercise_reference)

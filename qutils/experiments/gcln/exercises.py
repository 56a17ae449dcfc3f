"""The GCLN chapter's exercises: what each page's self-check compares with (never printed), and
each exercise's title and tolerance, so a page checks an answer in one call."""
from __future__ import annotations

import torch

from ...attacks import PGD, Adaptive, LowFrequencyPGD
from ...defenses.gcln import block_dct, round_to_step
from ...evaluate import robust_accuracy
from ...exercise import Exercise, checker
from .config import GCLNConfig
from .measure import paper_attacks
from .zoo import Zoo

__all__ = ["EXERCISES", "check_exercise", "exercise_reference"]

#: the exercises of pages 17 (grid, dc, skip-g) and 18 (noise, lowfreq), by the name the page checks them by
EXERCISES = {
    "grid": Exercise("exercise 1: rounding", atol=1e-6),
    "dc": Exercise("exercise 2: the DC coefficient", atol=1e-5),
    "skip-g": Exercise("exercise 3: BPDA through all of G", atol=1e-6),
    "noise": Exercise("exercise 1: random noise", atol=1e-6),
    "lowfreq": Exercise("exercise 2: low-frequency PGD", atol=1e-6),
}


def exercise_reference(which: str, zoo: Zoo, x, y, cfg: GCLNConfig):
    """The reference answers of the chapter's exercises (the self-checks compare with these and never print them)."""
    if which == "grid":
        return round_to_step(torch.tensor([0.26, -0.74, 1.0]), 0.5).tolist()
    if which == "dc":
        return float(block_dct(torch.full((1, 1, 8, 8), 0.5), 8)[0, 0, 0, 0])
    if which == "skip-g":
        m = zoo.gcln(cfg.qs[-1])
        n = min(100, len(x))
        pgd = paper_attacks(cfg)["PGD"]
        return robust_accuracy(m, Adaptive(pgd, m.attack_views()["identity through G"].model, how="BPDA"),
                               x[:n], y[:n]).value
    if which == "noise":
        n = min(100, len(x))
        return robust_accuracy(zoo.gcln(cfg.qs[-1]), PGD(cfg.eps, 1, abs_stepsize=0.0, seed=cfg.seed), x[:n], y[:n]).value
    if which == "lowfreq":
        m = zoo.gcln(cfg.qs[-1])
        n = min(100, len(x))
        lf = LowFrequencyPGD(cfg.eps, cfg.apgd_steps, keep=cfg.lowfreq_keep, block=cfg.block, pad=cfg.pad,
                             rel_stepsize=cfg.rel_stepsize)
        return robust_accuracy(m, Adaptive(lf, m.attack_views()["straight-through"].model, how="BPDA"), x[:n],
                               y[:n]).value
    raise ValueError(f"no exercise {which!r}; the chapter's are {sorted(EXERCISES)}")


#: ``check_exercise(which, answer, zoo, x, y, cfg)``: a page's self-check of exercise ``which``
check_exercise = checker(EXERCISES, exercise_reference)

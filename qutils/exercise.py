"""Self-checks for the chapters' exercises.

>>> check("threshold list", my_answer, expected=[0.125, 0.375, 0.625, 0.875])

``None`` (not attempted yet) prints a reminder; a wrong answer raises ``AssertionError`` with
what was expected in shape (never the value itself); a right one prints a confirmation. It
returns nothing, so a check cell shows only its message.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

__all__ = ["Exercise", "check", "checker"]


@dataclass(frozen=True)
class Exercise:
    """One exercise of a chapter, as its page numbers it: the title its self-check prints and the
    tolerance it allows (``atol``, ``rtol``: :func:`check`)."""
    title: str
    atol: float = 1e-6
    rtol: float = 0.0

    def __post_init__(self):
        if not self.title.startswith("exercise "):
            raise ValueError(f"an exercise's title reads 'exercise N: what', got {self.title!r}")
        if not (self.atol >= 0 and self.rtol >= 0):
            raise ValueError(f"{self.title}: tolerances must be >= 0, got atol={self.atol}, rtol={self.rtol}")


def checker(exercises: Mapping[str, Exercise], reference: Callable) -> Callable:
    """A chapter's one-line self-check, ``check_exercise(which, answer, *context)``: it compares
    ``answer`` with ``reference(which, *context)`` (the chapter's ``exercise_reference``) under the
    title and tolerance ``exercises[which]`` declares. An exercise not answered yet computes nothing;
    an unknown name raises ``ValueError`` listing the chapter's exercises."""
    exercises = dict(exercises)

    def self_check(which: str, answer, *context) -> None:
        if which not in exercises:
            raise ValueError(f"no exercise {which!r}; the chapter's are {sorted(exercises)}")
        ex = exercises[which]
        if answer is None:
            print(f"{ex.title}: not answered yet")
            return
        check(ex.title, answer, reference(which, *context), atol=ex.atol, rtol=ex.rtol)

    self_check.exercises = exercises
    return self_check


def check(name: str, answer, expected, atol: float = 1e-6, rtol: float = 0.0) -> None:
    if answer is None:
        print(f"{name}: not answered yet")
        return
    try:
        a = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: expected numbers, got {type(answer).__name__}") from None
    e = np.asarray(expected, dtype=float)
    if a.shape != e.shape:
        raise AssertionError(f"{name}: expected shape {e.shape}, got {a.shape}")
    if not np.allclose(a, e, atol=atol, rtol=rtol):
        raise AssertionError(f"{name}: not quite -- off by up to {np.abs(a - e).max():.3g} (tolerance {atol:g})")
    print(f"{name}: correct")

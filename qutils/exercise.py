"""Self-checks for the chapters' exercises.

>>> check("threshold list", my_answer, expected=[0.125, 0.375, 0.625, 0.875])

``None`` (not attempted yet) prints a reminder; a wrong answer raises ``AssertionError`` with
what was expected in shape (never the value itself); a right one prints a confirmation. It
returns nothing, so a check cell shows only its message.
"""
from __future__ import annotations

import numpy as np

__all__ = ["check"]


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

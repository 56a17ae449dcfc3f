"""Budgets: one switch, ``QUTILS_PROFILE``, picks how much every notebook computes.

* ``smoke`` -- CI and nbval: tiny training subsets, one epoch, a hundred test images.
  The whole book runs in minutes on two CPU cores; the numbers are *not* meaningful.
* ``book``  -- what the rendered book shows: full MNIST / Fashion-MNIST training sets,
  attacks evaluated on fixed test subsets of 1000 images, with 95% confidence intervals.
  Each chapter runs in under 30 minutes on two CPU cores from a cold cache.
* ``full``  -- the papers' own scale (more epochs, more attack steps, the whole test set,
  CIFAR-10 / SVHN and ResNets): meant for a GPU.

Read the active profile with :func:`get_profile`; every budget-dependent number in a
notebook comes from its fields, so a reader changes one variable to scale a chapter.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

__all__ = ["Profile", "PROFILES", "get_profile", "get_device", "ENV_VAR"]

ENV_VAR = "QUTILS_PROFILE"


@dataclass(frozen=True)
class Profile:
    """A budget. ``None`` for ``train_subset`` means the whole training split."""

    name: str
    train_subset: int | None  #: training images used (None: all of the 50,000 training split)
    val_subset: int | None  #: validation images used for model selection (None: all 10,000)
    epochs: int  #: training epochs of a standard model
    eval_images: int  #: test images for (robust) accuracy under attack
    attack_steps: int  #: iterations of BIM / PGD
    batch_size: int  #: training batch size
    eval_batch_size: int  #: batch size for evaluation and attacks
    epsilons: tuple[float, ...]  #: L-infinity radii of the accuracy-versus-epsilon curves (MNIST scale)

    def replace(self, **changes) -> "Profile":
        """A copy with some fields changed, e.g. ``get_profile().replace(epochs=10)``."""
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        train_subset=2000,
        val_subset=500,
        epochs=1,
        eval_images=100,
        attack_steps=5,
        batch_size=64,
        eval_batch_size=100,
        epsilons=(0.0, 0.1, 0.3),
    ),
    "book": Profile(
        name="book",
        train_subset=None,
        val_subset=None,
        epochs=5,
        eval_images=1000,
        attack_steps=40,
        batch_size=128,
        eval_batch_size=500,
        epsilons=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
    ),
    "full": Profile(
        name="full",
        train_subset=None,
        val_subset=None,
        epochs=20,
        eval_images=10000,
        attack_steps=100,
        batch_size=128,
        eval_batch_size=1000,
        epsilons=(0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4),
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile named ``name``, else the one in ``$QUTILS_PROFILE``, else ``book``.

    An unknown name raises ``ValueError`` listing the valid ones.
    """
    if name is None:
        name = os.environ.get(ENV_VAR, "book")
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}; expected one of {sorted(PROFILES)} "
            f"(set it with the environment variable {ENV_VAR})"
        )
    return PROFILES[key]


def get_device(prefer: str | None = None) -> torch.device:
    """CUDA when present, else CPU. ``$QUTILS_DEVICE`` (or ``prefer``) forces one, e.g. ``cpu``."""
    choice = prefer or os.environ.get("QUTILS_DEVICE")
    if choice:
        dev = torch.device(choice)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {choice!r} requested but CUDA is not available on this machine")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

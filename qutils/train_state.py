"""A training run that survives an interruption: after every epoch, everything the next epoch
depends on -- weights, optimizer, learning-rate schedule, every random generator, the history and
the best epoch so far -- is written to one file; a run that finds the file, written by the same
configuration, continues after its last finished epoch and ends with the weights of an
uninterrupted run. :func:`qutils.train.train` uses it (``resume=``)."""
from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import torch

from .cache import atomic_save

__all__ = ["save_progress", "load_progress"]


def _rng_states(gen: torch.Generator) -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"gen": gen.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss)}  # loadable with weights_only


def _set_rng_states(s: dict, gen: torch.Generator) -> None:
    gen.set_state(s["gen"])
    torch.set_rng_state(s["torch"])
    if s["cuda"]:
        torch.cuda.set_rng_state_all(s["cuda"])
    version, internal, gauss = s["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = s["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))


def save_progress(path: Path, key: str, epoch: int, step: int, model, opt, sched, gen: torch.Generator,
                  loop: dict) -> None:
    """Write the run's state after ``epoch`` (``loop``: the loop's own variables: history, best
    score, state and epoch)."""
    atomic_save({"key": key, "epoch": epoch, "step": step, "model": model.state_dict(), "opt": opt.state_dict(),
                 "sched": None if sched is None else sched.state_dict(), "rng": _rng_states(gen), "loop": loop},
                path)


def load_progress(path: Path | None, key: str, model, opt, sched, gen: torch.Generator) -> dict | None:
    """Restore the run saved at ``path`` by the configuration ``key`` into ``model``, ``opt``,
    ``sched`` and the random generators; returns ``{"epoch", "step", "loop"}``, or None (nothing
    saved there, or saved by another configuration, or unreadable: then with a warning)."""
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("key") != key:
            raise ValueError("saved by another configuration")
    except Exception as e:  # unreadable, truncated, or another run's
        warnings.warn(f"cannot resume from {path} ({type(e).__name__}: {e}); training from the start",
                      RuntimeWarning, stacklevel=3)
        return None
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    if sched is not None:
        sched.load_state_dict(state["sched"])
    _set_rng_states(state["rng"], gen)
    return state

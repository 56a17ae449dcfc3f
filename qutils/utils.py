"""Small shared helpers: seeding, provenance."""
from __future__ import annotations

import random
import subprocess
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .checks import check_int

__all__ = ["seed_everything", "code_version", "environment"]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); the same seed gives the same numbers on
    the same machine. Returns a ``torch.Generator`` seeded with ``seed`` for data shuffling."""
    seed = check_int(seed, "seed", minimum=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def code_version() -> str:
    """The git commit of the book's code (with ``-dirty`` if it has uncommitted changes), or the
    package version when it is not run from a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"qutils {__version__}"


def environment() -> dict:
    """What ran a notebook: library versions, device, threads."""
    import platform

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": dev,
        "cpu_threads": torch.get_num_threads(),
    }

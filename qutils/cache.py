"""A checkpoint cache keyed by a hash of the full configuration.

Each entry is ``{"config": ..., "state_dict": ...}`` saved with ``torch.save`` and read back
with ``torch.load(..., weights_only=True)`` (no pickled code is ever executed). A corrupt file,
an entry whose stored config differs from the requested one, or a state dict that does not
fit the model is reported with a warning and rebuilt -- never trusted.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

__all__ = ["entries", "ENTRY", "cache_dir", "config_hash", "entry_path", "cached_state", "CACHE_FORMAT", "state_fingerprint",
           "cache_key_of", "atomic_save"]

CACHE_FORMAT = 1  #: bump to invalidate every entry when the training code changes meaning


def cache_dir() -> Path:
    """``$QUTILS_CACHE`` if set, else ``<user cache dir>/qutils/checkpoints``."""
    env = os.environ.get("QUTILS_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("qutils")) / "checkpoints"


#: a finished entry's file name: ``<tag>-<first 16 hex digits of the key>.pt``
ENTRY = re.compile(r"^[A-Za-z0-9_-]+-([0-9a-f]{16})\.pt$")


def entries(directory: str | Path | None = None) -> list[Path]:
    """The finished entries of a cache directory (default :func:`cache_dir`), sorted: no run state
    (``*.partial``), no temporary files; none where the directory does not exist."""
    d = Path(directory) if directory is not None else cache_dir()
    return sorted(p for p in d.glob("*.pt") if ENTRY.match(p.name)) if d.exists() else []


def _canonical(config: dict) -> str:
    try:
        return json.dumps({"cache_format": CACHE_FORMAT, **config}, sort_keys=True, default=str)
    except TypeError as e:
        raise ValueError(f"cache config must be JSON-serialisable: {e}") from None


def config_hash(config: dict) -> str:
    return hashlib.sha256(_canonical(config).encode()).hexdigest()


def entry_path(config: dict, tag: str = "model") -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in tag)
    return cache_dir() / f"{safe}-{config_hash(config)[:16]}.pt"


def _try_load(path: Path, config: dict, model: nn.Module) -> dict | None:
    if not path.exists():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(entry, dict) or "state_dict" not in entry:
            raise ValueError("not a qutils cache entry")
        if entry.get("config") != json.loads(_canonical(config)):
            raise ValueError("stored config differs from the requested one")
        model.load_state_dict(entry["state_dict"])  # raises on missing / unexpected / mis-shaped keys
        return entry
    except Exception as e:  # corrupt zip, truncated file, wrong keys...
        warnings.warn(f"checkpoint cache entry {path} is unusable ({type(e).__name__}: {e}); rebuilding it",
                      RuntimeWarning, stacklevel=3)
        return None


def cached_state(config: dict, model: nn.Module, build: Callable[[nn.Module], dict | None],
                 tag: str = "model", use_cache: bool = True) -> tuple[nn.Module, dict, bool]:
    """Fill ``model`` from the cache entry of ``config``, or run ``build(model)`` and store it.

    ``build`` trains ``model`` in place and may return extra JSON-able info (a history) that is
    stored next to the weights. Returns ``(model, extra, hit)``.
    """
    path = entry_path(config, tag)
    if use_cache:
        entry = _try_load(path, config, model)
        if entry is not None:
            return model, entry.get("extra") or {}, True
    extra = build(model) or {}
    if use_cache:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_save({"config": json.loads(_canonical(config)), "state_dict": state, "extra": extra}, path)
    return model, extra, False


def atomic_save(payload, path: Path) -> None:
    """``torch.save`` (``bytes``: written as they are) to a temporary file renamed over ``path``: a
    reader (or an interruption) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        if isinstance(payload, bytes):
            Path(tmp).write_bytes(payload)
        else:
            torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# -- the parts of a cache key that are not plain settings --

def state_fingerprint(model: nn.Module) -> str:
    """A short hash of a model's weights (to key caches of models trained against it)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_key_of(fn: Callable, what: str = "callable") -> str:
    """The explicit ``cache_key`` string of a loss or hook, which names it and its settings in the
    checkpoint cache's key. There is no fallback on names: a lambda is ``"<lambda>"``, a
    ``functools.partial`` or a callable instance has no name, and two of them with other settings
    would share one checkpoint. Set ``fn.cache_key = "my_loss(sigma=0.3)"`` (or an attribute in
    ``__init__``) instead."""
    key = getattr(fn, "cache_key", None)
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"{what} {fn!r} has no `cache_key` string: give it one that names it and its settings, "
                         "e.g. fn.cache_key = 'my_loss(sigma=0.3)', so the checkpoint cache cannot mix it up with "
                         "another loss or hook")
    return key

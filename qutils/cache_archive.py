"""Move a trained zoo between machines: an instructor trains once, a class imports.

:func:`export_cache` writes the checkpoint cache's entries (:mod:`qutils.cache`) into one ``.tar``
archive with a manifest of their SHA-256 digests; :func:`import_cache` checks every entry of an
archive -- its digest, that it loads as a plain state (``weights_only``), that it is a cache
entry of this book's format, and that its stored configuration hashes to the key in its file name
-- *before* it writes any of them, so a corrupt or mismatched archive raises a clear error and
overwrites nothing. An entry already in the cache is kept, unless ``overwrite=True``.

From a shell::

    python -m qutils.cache_archive export zoo.tar      # every entry of the cache
    python -m qutils.cache_archive import zoo.tar
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .cache import CACHE_FORMAT, ENTRY, atomic_save, cache_dir, config_hash, entries

__all__ = ["export_cache", "import_cache", "ArchiveError", "MANIFEST"]

MANIFEST = "MANIFEST.json"


class ArchiveError(ValueError):
    """An archive that cannot be imported as it is (nothing was written)."""


@dataclass(frozen=True)
class _Checked:
    name: str
    data: bytes
    payload: dict


def export_cache(archive: str | Path, names=None, directory: str | Path | None = None) -> list[str]:
    """Write the cache's entries (``names``: these file names only) to ``archive``; returns the names.
    Every entry is checked as :func:`import_cache` would, so a corrupt one is not shipped."""
    directory = Path(directory) if directory is not None else cache_dir()
    paths = entries(directory)
    if names is not None:
        wanted = set(names)
        missing = wanted - {p.name for p in paths}
        if missing:
            raise ArchiveError(f"not in the cache {directory}: {sorted(missing)}")
        paths = [p for p in paths if p.name in wanted]
    if not paths:
        raise ArchiveError(f"the cache {directory} holds no entry to export")
    checked = [_check(p.name, p.read_bytes()) for p in paths]
    manifest = {"cache_format": CACHE_FORMAT,
                "entries": {c.name: hashlib.sha256(c.data).hexdigest() for c in checked}}
    archive = Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=1).encode())] + [(c.name, c.data) for c in checked]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return [c.name for c in checked]


def _check(name: str, data: bytes) -> _Checked:
    m = ENTRY.match(name)
    if not m:
        raise ArchiveError(f"{name!r} is not a checkpoint cache entry's name (<tag>-<16 hex digits>.pt)")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ArchiveError(f"{name}: unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict) or "state_dict" not in payload:
        raise ArchiveError(f"{name}: not a qutils cache entry (no config and state_dict)")
    fmt = payload["config"].get("cache_format")
    if fmt != CACHE_FORMAT:
        raise ArchiveError(f"{name}: written by cache format {fmt}, this book reads format {CACHE_FORMAT}")
    if config_hash(payload["config"])[:16] != m.group(1):
        raise ArchiveError(f"{name}: its stored configuration does not hash to the key in its name "
                           "(renamed, or built for another configuration)")
    return _Checked(name, data, payload)


def import_cache(archive: str | Path, directory: str | Path | None = None, overwrite: bool = False) -> dict:
    """Check every entry of ``archive``, then copy them into the cache; returns ``{"imported": [...],
    "kept": [...]}`` (``kept``: already in the cache and left as they were). Raises
    :class:`ArchiveError` -- having written nothing -- on a missing or foreign manifest, a digest that
    differs from the manifest's, an entry that does not load or whose configuration does not match
    its key, or a file the manifest does not list."""
    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"no archive at {archive}")
    try:
        with tarfile.open(archive, "r") as tar:
            members = {}
            for info in tar.getmembers():
                if not info.isfile():
                    raise ArchiveError(f"{archive}: {info.name!r} is not a plain file")
                members[info.name] = tar.extractfile(info).read()
    except tarfile.TarError as e:
        raise ArchiveError(f"{archive} is not a readable tar archive ({e})") from None
    if MANIFEST not in members:
        raise ArchiveError(f"{archive} has no {MANIFEST}: not written by export_cache")
    try:
        manifest = json.loads(members.pop(MANIFEST))
        listed = dict(manifest["entries"])
    except (ValueError, KeyError, TypeError) as e:
        raise ArchiveError(f"{archive}: unreadable {MANIFEST} ({e})") from None
    if set(members) != set(listed):
        raise ArchiveError(f"{archive}: its files and its manifest differ (unlisted: {sorted(set(members) - set(listed))}, "
                           f"missing: {sorted(set(listed) - set(members))})")
    checked = []
    for name, data in sorted(members.items()):
        if hashlib.sha256(data).hexdigest() != listed[name]:
            raise ArchiveError(f"{name}: its SHA-256 differs from the manifest's (a corrupt archive)")
        checked.append(_check(name, data))
    directory = Path(directory) if directory is not None else cache_dir()
    imported, kept = [], []
    for c in checked:  # every entry passed: now write
        target = directory / c.name
        if target.exists() and not overwrite:
            kept.append(c.name)
            continue
        atomic_save(c.data, target)
        imported.append(c.name)
    return {"imported": imported, "kept": kept}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m qutils.cache_archive", description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("export", "import"))
    ap.add_argument("archive")
    ap.add_argument("--overwrite", action="store_true", help="import: replace entries already in the cache")
    args = ap.parse_args(argv)
    if args.action == "export":
        names = export_cache(args.archive)
        print(f"exported {len(names)} entries of {cache_dir()} to {args.archive}")
    else:
        out = import_cache(args.archive, overwrite=args.overwrite)
        print(f"imported {len(out['imported'])} entries into {cache_dir()}; kept {len(out['kept'])} already there")


if __name__ == "__main__":
    main()

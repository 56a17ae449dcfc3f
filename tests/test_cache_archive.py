"""Export / import of the checkpoint cache: a round trip gives the same entries, byte for byte,
that the cache then serves as hits; a corrupt, renamed or foreign archive raises a clear error
and writes nothing."""
import io
import tarfile

import pytest
import torch
import torch.nn as nn

from qutils import cache
from qutils.cache_archive import MANIFEST, ArchiveError, export_cache, import_cache


def _fill(directory, monkeypatch, n=2):
    monkeypatch.setenv("QUTILS_CACHE", str(directory))
    for i in range(n):
        def build(m, i=i):
            with torch.no_grad():
                m.weight.fill_(i + 1)
            return {"history": [i]}

        cache.cached_state({"model": "lin", "seed": i}, nn.Linear(3, 2), build, tag="lin-mnist")
    (directory / "lin-mnist-0123456789abcdef.partial").write_bytes(b"run state")  # not exported
    return sorted(p.name for p in directory.glob("*.pt"))


def _rewrite(archive, out, change):
    """Copy ``archive`` to ``out`` with ``change(name, data) -> (name, data)`` applied to every member."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for info in src.getmembers():
            name, data = change(info.name, src.extractfile(info).read())
            new = tarfile.TarInfo(name)
            new.size = len(data)
            dst.addfile(new, io.BytesIO(data))
    return out


def test_round_trip_gives_the_same_entries_and_cache_hits(tmp_path, monkeypatch):
    src, dst = tmp_path / "a", tmp_path / "b"
    names = _fill(src, monkeypatch)
    assert export_cache(tmp_path / "zoo.tar") == names
    out = import_cache(tmp_path / "zoo.tar", directory=dst)
    assert out == {"imported": names, "kept": []}
    assert all((src / n).read_bytes() == (dst / n).read_bytes() for n in names)
    monkeypatch.setenv("QUTILS_CACHE", str(dst))
    m, extra, hit = cache.cached_state({"model": "lin", "seed": 1}, nn.Linear(3, 2), lambda m: pytest.fail("retrained"),
                                       tag="lin-mnist")
    assert hit and extra == {"history": [1]} and torch.all(m.weight == 2)
    assert import_cache(tmp_path / "zoo.tar", directory=dst) == {"imported": [], "kept": names}


@pytest.mark.parametrize("damage", ["flip_byte", "rename", "drop_manifest", "extra_file", "other_format"])
def test_a_bad_archive_raises_and_writes_nothing(tmp_path, monkeypatch, damage):
    names = _fill(tmp_path / "a", monkeypatch)
    good = tmp_path / "zoo.tar"
    export_cache(good)
    dst = tmp_path / "b"
    dst.mkdir()
    (dst / names[0]).write_bytes(b"an instructor's own entry")  # must survive even with overwrite

    def change(name, data):
        if damage == "flip_byte" and name == names[1]:
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
        if damage == "rename" and name == names[1]:
            name = "lin-mnist-ffffffffffffffff.pt"
        if damage == "drop_manifest" and name == MANIFEST:
            name = "notes.txt"
        return name, data

    bad = _rewrite(good, tmp_path / "bad.tar", change)
    if damage == "extra_file":
        with tarfile.open(bad, "a") as tar:
            info = tarfile.TarInfo("lin-mnist-aaaaaaaaaaaaaaaa.pt")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    if damage == "other_format":
        monkeypatch.setattr("qutils.cache_archive.CACHE_FORMAT", cache.CACHE_FORMAT + 1)
    with pytest.raises(ArchiveError):
        import_cache(bad, directory=dst, overwrite=True)
    assert sorted(p.name for p in dst.iterdir()) == [names[0]]
    assert (dst / names[0]).read_bytes() == b"an instructor's own entry"


def test_a_renamed_entry_is_caught_by_its_key_even_with_a_matching_digest(tmp_path, monkeypatch):
    names = _fill(tmp_path / "a", monkeypatch)
    (tmp_path / "a" / names[0]).rename(tmp_path / "a" / "lin-mnist-ffffffffffffffff.pt")
    with pytest.raises(ArchiveError, match="does not hash to the key"):
        export_cache(tmp_path / "zoo.tar")


def test_missing_archive_and_unknown_names_raise(tmp_path, monkeypatch):
    _fill(tmp_path / "a", monkeypatch)
    with pytest.raises(ArchiveError, match="no archive"):
        import_cache(tmp_path / "none.tar")
    with pytest.raises(ArchiveError, match="not in the cache"):
        export_cache(tmp_path / "zoo.tar", names=["lin-mnist-0000000000000000.pt"])
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    with pytest.raises(ArchiveError, match="not a readable tar"):
        import_cache(tmp_path / "junk.tar")


def test_make_models_plans_every_chapter_and_dataset_and_refuses_unknown_names():
    from qutils.chapters import CHAPTERS
    from qutils.make_models import plan

    jobs = plan()
    assert jobs == [(c.paper, d) for c in CHAPTERS for d in c.sources]
    assert ("dqa", "fashion_mnist") in jobs and ("gcln", "mnist") in jobs
    assert plan(["dqa"], ["Fashion-MNIST"]) == [("dqa", "fashion_mnist")]
    with pytest.raises(ValueError, match="unknown paper"):
        plan(["madry"])
    with pytest.raises(ValueError):
        plan(["dqa"], ["imagenet"])


def test_make_models_runs_each_chapters_book_zoo_and_counts_what_it_trained(tmp_path, monkeypatch):
    import qutils.experiments.dqa as dqa
    from qutils.make_models import make_models
    from qutils.profiles import get_profile

    monkeypatch.setenv("QUTILS_CACHE", str(tmp_path))
    calls = []

    def fake(cfg, profile, device=None, progress=True):
        calls.append((cfg.dataset, profile.name))
        (tmp_path / f"x-{len(calls):016x}.pt").write_bytes(b"")

    monkeypatch.setattr(dqa, "book_zoo", fake)
    table = make_models([("dqa", "mnist"), ("dqa", "fashion_mnist")], get_profile("smoke"), progress=False)
    assert calls == [("mnist", "smoke"), ("fashion_mnist", "smoke")]
    assert list(table["new entries"]) == [1, 1] and list(table["chapter"]) == ["dqa", "dqa"]

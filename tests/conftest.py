import os

import pytest
import torch

os.environ.setdefault("QUTILS_PROFILE", "smoke")
torch.set_num_threads(min(2, torch.get_num_threads()))

#: ``QUTILS_TEST_SEED=k`` trains the shared fixture model with another seed and draws another test
#: subset. A test that holds only for seed 0 tests the last bits of one model, not a property; the
#: suite is meant to pass for any k (checked for k = 0..3 when the flaky tests of issue 25 were fixed).
SEED = int(os.environ.get("QUTILS_TEST_SEED", "0"))


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    """A checkpoint cache private to the test session."""
    d = tmp_path_factory.mktemp("ckpt")
    old = os.environ.get("QUTILS_CACHE")
    os.environ["QUTILS_CACHE"] = str(d)
    yield d
    if old is None:
        os.environ.pop("QUTILS_CACHE", None)
    else:
        os.environ["QUTILS_CACHE"] = old


@pytest.fixture(scope="session")
def small_sets():
    """768 MNIST training and 256 validation images (seed 3), for tests that train a few epochs."""
    from qutils import data

    return data.load("mnist", "train").subset(768, seed=3), data.load("mnist", "val").subset(256, seed=3)


@pytest.fixture(scope="session")
def mnist_test():
    from qutils import data

    return data.test_subset("mnist", 200, seed=1 + SEED)


@pytest.fixture(scope="session")
def trained_cnn(session_cache):
    """CNN_A trained for two epochs on 4000 MNIST images (about 97% accurate): a real, small model."""
    from qutils.profiles import get_profile
    from qutils.train import TrainConfig, get_trained

    prof = get_profile("smoke").replace(train_subset=4000, val_subset=500)
    res = get_trained("cnn_a", "mnist", TrainConfig(epochs=2, batch_size=64, seed=SEED), profile=prof,
                      device=torch.device("cpu"), progress=False)
    return res.model


@pytest.fixture(scope="session")
def trained_cnn_f64(trained_cnn):
    """The fixture model in float64, for tests that compare two computations bit for bit where one
    batches differently (early exit, the cascade's survivors): a batch of another size may sum in
    another order, and in float32 a last-bit change can flip the sign of a tiny gradient component
    or an argmax on a near-tie; in float64 such a flip is out of reach."""
    import copy

    return copy.deepcopy(trained_cnn).double().eval()


@pytest.fixture
def results_copy(tmp_path):
    """A private copy of the committed results files (results/*.json), to break or edit in a test."""
    import shutil

    from qutils.results import results_dir

    for f in results_dir().glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path

"""Bad input gets a clear error, never a silent wrong answer."""
import functools

import pytest
import torch

from qutils import data
from qutils.attacks import FGSM, PGD, Square
from qutils.evaluate import accuracy, robust_accuracy
from qutils.models import build
from qutils.results import Results
from qutils.profiles import get_profile
from qutils.cache import cache_key_of
from qutils.train import TrainConfig, get_trained


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build("cnn_a").eval()


@pytest.mark.parametrize("bad,match", [
    (lambda x: x.index_fill(0, torch.tensor([1]), float("nan")), "NaN or infinite"),
    (lambda x: x.index_fill(0, torch.tensor([0]), float("inf")), "NaN or infinite"),
    (lambda x: x[:0], "empty batch"),
    (lambda x: x * 2 - 0.5, r"\[0, 1\]"),
])
def test_bad_images_raise_in_every_entry_point(model, bad, match):
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    xb = bad(x)
    yb = y[:len(xb)]
    for call in (lambda: accuracy(model, xb, yb), lambda: FGSM(0.1)(model, xb, yb),
                 lambda: robust_accuracy(model, PGD(0.1, steps=2), xb, yb), lambda: Square(0.1, queries=5)(model, xb, yb)):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("labels", [[0, 1, 2, 10], [0, -1, 2, 3]])
def test_labels_outside_the_models_classes_raise(model, labels):
    x, y = torch.rand(4, 1, 28, 28), torch.tensor(labels)
    with pytest.raises(ValueError, match="labels must be"):
        accuracy(model, x, y)
    with pytest.raises(ValueError, match="labels must be"):
        PGD(0.1, steps=2)(model, x, y)


def test_oversize_subsets_raise():
    d = data.synthetic_standin("mnist", n=50)
    assert len(d.subset(50)) == 50 and len(d.subset(None)) == 50
    with pytest.raises(ValueError, match="only 50"):
        d.subset(51)
    with pytest.raises(ValueError, match="subset size must be a positive integer"):
        d.subset(0)


class _Loss:
    def __call__(self, model, x, y):
        return torch.nn.functional.cross_entropy(model(x), y)


def _named_loss(model, x, y, weight=1.0):
    return weight * torch.nn.functional.cross_entropy(model(x), y)


@pytest.mark.parametrize("fn", [_Loss(), functools.partial(_named_loss, weight=2.0), lambda m, x, y: 0.0,
                                _named_loss], ids=["callable instance", "partial", "lambda", "plain function"])
def test_a_loss_without_an_explicit_cache_key_raises(fn):
    with pytest.raises(ValueError, match="cache_key"):
        cache_key_of(fn, "loss_fn")
    with pytest.raises(ValueError, match="cache_key"):
        get_trained("cnn_a", "mnist", TrainConfig(), profile=get_profile("smoke"), loss_fn=fn, use_cache=False)


def test_an_explicit_cache_key_is_used():
    fn = functools.partial(_named_loss, weight=2.0)
    fn.cache_key = "weighted_ce(weight=2)"
    assert cache_key_of(fn) == "weighted_ce(weight=2)"


def test_a_second_table_under_one_name_raises():
    res = Results("test_chapter", get_profile("smoke"))
    res.add_table("history: CNN", [{"epoch": 1}])
    res.add_table("history: VQ", [{"epoch": 1}])
    with pytest.raises(ValueError, match="already recorded"):
        res.add_table("history: CNN", [{"epoch": 2}])
    assert res.tables["history: CNN"] == [{"epoch": 1}]

"""The defense protocol: every defense of the book implements it, and its attack views give an
adaptive attacker a gradient where the deployed model has none."""
import pytest
import torch
import torch.nn as nn

from qutils.defenses import (AttackView, Baseline, BitDepthReduction, BReLUGDA, Defense, InputTransformModel,
                             MedianSmoothing, QuSecNet, as_defense, brelu_cnn, constant_quantization)
from qutils.defenses.protocol import check_backward
from qutils.defenses.qlayer import qlayer_cnn
from qutils.models import build


def _defenses():
    torch.manual_seed(0)
    return {
        "QuSecNets CQ": QuSecNet(constant_quantization(2, 50.0), build("cleverhans_cnn")),
        "feature squeezing, 1 bit": InputTransformModel(BitDepthReduction(1), build("cnn_a")),
        "feature squeezing, median": InputTransformModel(MedianSmoothing(2), build("cnn_a")),
        "BReLU+GDA": BReLUGDA(brelu_cnn()),
        "Q-base": qlayer_cnn("base"),
        "Q-large": qlayer_cnn("large"),
    }


def _input_grad(model, x, y):
    x = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model.eval()(x), y)
    (g,) = torch.autograd.grad(loss, x)
    return g


@pytest.mark.parametrize("name", list(_defenses()))
def test_every_defense_implements_the_protocol(name):
    d = _defenses()[name]
    assert isinstance(d, Defense)
    assert d.reference and isinstance(d.random, bool)
    views = d.attack_views()
    assert views and all(isinstance(v, AttackView) for v in views.values())
    x = torch.rand(4, 1, 28, 28)
    deployed = d.deployed().eval()
    for label, v in views.items():
        out = v.model.eval()(x)
        assert out.shape == (4, 10), label
        if v.same_forward:  # a BPDA view computes exactly the deployed function
            assert torch.equal(out, deployed(x)), label


@pytest.mark.parametrize("name", ["QuSecNets CQ", "feature squeezing, 1 bit", "Q-base", "Q-large"])
def test_views_have_gradients_where_the_deployed_model_has_none(name):
    d = _defenses()[name]
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    g0 = _input_grad(d.deployed(), x, y)
    assert float(g0.abs().max()) == 0.0, "the deployed quantized model should mask its gradient"
    for label, v in d.attack_views().items():
        g = _input_grad(v.model, x, y)
        assert float(g.abs().sum()) > 0, f"{name}: view {label!r} gives no gradient"


def test_views_share_weights_with_the_deployed_model():
    d = _defenses()["QuSecNets CQ"]
    view = d.attack_views()["straight-through"].model
    assert view.model is d.model  # the classifier is shared, not copied
    q = qlayer_cnn("base")
    assert q.attack_views()["E-path"].model.encoder is q.encoder


def test_as_defense_wraps_plain_models_and_rejects_others():
    m = build("cnn_a")
    d = as_defense(m)
    assert isinstance(d, Baseline) and d.deployed() is m
    assert list(d.attack_views()) == ["autograd"]
    q = qlayer_cnn("base")
    assert as_defense(q) is q
    with pytest.raises(ValueError, match="Defense or an nn.Module"):
        as_defense("cnn_a")


def test_one_backward_check_for_every_quantizer():
    with pytest.raises(ValueError, match="backward must be one of"):
        check_backward("straight")
    with pytest.raises(ValueError, match="backward must be one of"):
        constant_quantization(2).view("hard", "straight")
    with pytest.raises(ValueError, match="backward must be one of"):
        qlayer_cnn("base").view("q", "sigmoid")  # the Q-Layer has no sigmoid backward
    with pytest.raises(ValueError, match="path must be one of"):
        qlayer_cnn("base").view("z")


def test_attack_view_checks_its_fields():
    with pytest.raises(ValueError, match="kind must be one of"):
        AttackView(build("cnn_a"), "magic")
    with pytest.raises(ValueError, match="nn.Module"):
        AttackView(lambda x: x, "autograd")
    assert AttackView(build("cnn_a"), "straight-through").same_forward
    assert not AttackView(build("cnn_a"), "alternative path").same_forward

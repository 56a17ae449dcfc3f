import pytest
import torch

from qutils import models
import qutils.defenses.qlayer  # noqa: F401  (registers the Q-Layer networks q_base, q_large, q_inner)

# parameter counts derived by hand from each paper's layer list (MNIST: 1x28x28)
EXPECTED_PARAMS_MNIST = {
    # conv 1*64*25+64, conv 64*64*25+64, fc 64*10*10*128+128, fc 128*10+10
    "cnn_a": 1664 + 102464 + 819328 + 1290,
    # conv 1*128*9+128, conv 128*64*9+64, fc 64*12*12*128+128, fc 1290
    "cnn_b": 1280 + 73792 + 1179776 + 1290,
    # LeNet-5: 6*25+6, 16*6*25+16, 400*120+120, 120*84+84, 84*10+10
    "lenet": 156 + 2416 + 48120 + 10164 + 850,
    # Cleverhans: 64*64+64, 64*128*36+128, 128*128*25+128, 128*10+10
    "cleverhans_cnn": 4160 + 295040 + 409728 + 1290,
    # SMALL: 16*9+16, 16*32*9+32, 32*64*9+64, 64*3*3*256+256, 256*10+10
    "small": 160 + 4640 + 18496 + 147712 + 2570,
    # LARGE: 64*9+64, 64*128*9+128, 128*256*9+256, 256*3*3*256+256, 256*10+10
    "large": 640 + 73856 + 295168 + 590080 + 2570,
    # AlexNet-style: 64*25+64, 64*64*25+64, 64*7*7*384+384, 384*192+192, 192*10+10
    "alexnet": 1664 + 102464 + 1204608 + 73920 + 1930,
    # Madry et al.'s MNIST network: 32*25+32, 32*64*25+64, 64*7*7*1024+1024, 1024*10+10 (3,274,634)
    "madry_mnist": 832 + 51264 + 3212288 + 10250,
}
# well-known counts of the CIFAR-10 (3x32x32) variants
EXPECTED_PARAMS_CIFAR = {"resnet18": 11_173_962, "resnet34": 21_282_122, "vgg16": 14_728_266}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_every_model_gives_logits_of_the_right_shape(name, channels, size):
    m = models.build(name, in_channels=channels, input_size=size, num_classes=7).eval()
    x = torch.rand(3, channels, size, size, requires_grad=True)
    out = m(x)
    assert out.shape == (3, 7)
    out.sum().backward()
    if name.startswith("q_"):
        # the Q-Layer's quantized path has no input gradient (nearest-concept step); its E-path has
        assert x.grad is not None and x.grad.abs().sum() == 0
        x.grad = None
        m.view("e")(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradient reaches the input
    assert models.REGISTRY[name].source  # every architecture cites its paper


@pytest.mark.parametrize("name,count", sorted(EXPECTED_PARAMS_MNIST.items()))
def test_parameter_counts_mnist(name, count):
    assert n_params(models.build(name)) == count


@pytest.mark.parametrize("name,count", sorted(EXPECTED_PARAMS_CIFAR.items()))
def test_parameter_counts_cifar(name, count):
    assert n_params(models.build(name, in_channels=3, input_size=32)) == count


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown model"):
        models.build("resnet19")
    with pytest.raises(ValueError, match="in_channels"):
        models.build("cnn_a", in_channels=2)
    with pytest.raises(ValueError, match="input_size"):
        models.build("cnn_a", input_size=64)


def test_the_q_layer_networks_come_from_the_defense_module(monkeypatch):
    """The models layer never imports the defenses: qutils.defenses.qlayer registers q_base, q_large
    and q_inner; without it, build names the module to import instead of a bare 'unknown model'."""
    assert {"q_base", "q_large", "q_inner"} <= set(models.REGISTRY)
    assert models.REGISTRY["q_base"].builder.__module__ == "qutils.defenses.qlayer"
    monkeypatch.delitem(models.REGISTRY, "q_base")
    with pytest.raises(ValueError, match="registered by qutils.defenses.qlayer"):
        models.build("q_base")


def test_activation_is_pluggable():
    m = models.build("lenet", activation=torch.nn.Tanh)
    assert any(isinstance(mod, torch.nn.Tanh) for mod in m.modules())
    assert not any(isinstance(mod, torch.nn.ReLU) for mod in m.modules())

"""The GCLN defense (qutils.defenses.gcln) and the designed low-frequency attack."""
import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn as nn

from qutils.attacks import LowFrequencyPGD, lowpass
from qutils.defenses.gcln import (GCLN, CleaningNetwork, Detector, FeatureNet, QuantizedTransform, block_dct,
                                  block_idct, dct_matrix, q_of, qs_of, round_to_step)
from qutils.defenses.gcln_train import GCLNTrainConfig, detector_loss, generator_loss, train_gcln
from qutils.defenses.protocol import Defense


def _blocks_np(x, m):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // m, m, w // m, m).transpose(0, 1, 2, 4, 3, 5)


@pytest.mark.parametrize("m", [4, 8])
def test_block_dct_equals_scipy_per_block(m):
    x = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    ours = _blocks_np(block_dct(x, m).numpy(), m)
    ref = scipy.fft.dctn(_blocks_np(x.numpy(), m), axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_dct_basis_is_orthonormal_and_inverse_reconstructs():
    c = dct_matrix(8, torch.float64)
    torch.testing.assert_close(c @ c.T, torch.eye(8, dtype=torch.float64))
    x = torch.rand(3, 1, 32, 32)
    torch.testing.assert_close(block_idct(block_dct(x, 8), 8), x, atol=1e-6, rtol=0)


def test_rounding_lands_on_the_grid_and_vanishes_as_q_goes_to_zero():
    coef = torch.randn(1000) * 3
    for q in (0.5, 0.1, 0.037):
        r = round_to_step(coef, q)
        k = r / q
        torch.testing.assert_close(k, k.round(), atol=1e-4, rtol=0)
        assert (r - coef).abs().max() <= q / 2 + 1e-6
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    errs = [(QuantizedTransform(q, 8, 2)(x) - x).abs().max().item() for q in (0.1, 0.01, 1e-4, 1e-7)]
    assert errs == sorted(errs, reverse=True) and errs[-1] < 1e-6


def test_quantized_transform_has_zero_gradient_and_its_bpda_view_the_identity():
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    t = QuantizedTransform(0.2, 8, 2)
    (g,) = torch.autograd.grad((t(x) * torch.randn(2, 1, 28, 28)).sum(), x)
    assert g.abs().max() == 0
    w = torch.randn(2, 1, 28, 28)
    (g,) = torch.autograd.grad((t.with_backward("identity")(x) * w).sum(), x)
    torch.testing.assert_close(g, w, atol=1e-5, rtol=0)  # orthonormal DCT, padding cropped: the identity


def test_quantization_changes_the_image_and_keeps_its_shape():
    x = torch.rand(2, 1, 28, 28)
    y = QuantizedTransform(0.3, 8, 2)(x)
    assert y.shape == x.shape and (y - x).abs().max() > 0.01


def test_qs_scale():
    assert qs_of(10 / 255) == pytest.approx(10) and q_of(5) == pytest.approx(5 / 255)


@pytest.mark.parametrize("kwargs", [dict(q=0.0), dict(q=-0.1), dict(q=float("nan")), dict(q=0.1, block=0),
                                    dict(q=0.1, pad=-1), dict(q=0.1, backward="sigmoid")])
def test_bad_transform_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        QuantizedTransform(**kwargs)


def test_block_not_dividing_the_padded_image_raises():
    with pytest.raises(ValueError, match="does not divide"):
        QuantizedTransform(0.1, 8, 0)(torch.rand(1, 1, 28, 28))
    with pytest.raises(ValueError, match="does not divide"):
        QuantizedTransform(0.1, 8, 1)(torch.rand(1, 1, 28, 28))
    with pytest.raises(ValueError):
        round_to_step(torch.zeros(3), 0)


class _Target(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 26 * 26, 10))

    def forward(self, x):
        return self.head(self.features(x))


def _small():
    torch.manual_seed(0)
    g = CleaningNetwork(QuantizedTransform(0.2, 8, 2), 1, 8)
    return g, Detector(1, 8), _Target()


def test_cleaner_output_stays_in_the_unit_box():
    g, _, _ = _small()
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(50)  # extreme weights: the sigmoid still bounds the output
    y = g(torch.rand(4, 1, 28, 28))
    assert y.min() >= 0 and y.max() <= 1


def test_detector_and_generator_losses_move_in_opposite_directions():
    g, d, target = _small()
    feat = FeatureNet(target)
    torch.manual_seed(1)
    xo = torch.rand(16, 1, 28, 28)
    xa = (xo + 0.3 * torch.randn_like(xo)).clamp(0, 1)
    opt = torch.optim.SGD(d.parameters(), lr=0.5)
    ld0 = detector_loss(d, xo, g(xa)).item()
    _, parts0 = generator_loss(g, d, feat, xa, xo)
    for _ in range(10):  # train only the detector on a fixed batch
        opt.zero_grad()
        detector_loss(d, xo, g(xa)).backward()
        opt.step()
    ld1 = detector_loss(d, xo, g(xa)).item()
    _, parts1 = generator_loss(g, d, feat, xa, xo)
    assert ld1 < ld0 and parts1["adversarial"] > parts0["adversarial"]


def test_feature_net_needs_a_trunk_and_is_frozen():
    with pytest.raises(ValueError, match="features"):
        FeatureNet(nn.Linear(3, 2))
    _, _, target = _small()
    f = FeatureNet(target).train()
    assert not f.classifier.training and not any(p.requires_grad for p in f.parameters())


def test_generator_loss_checks_lambda_and_shapes():
    g, d, target = _small()
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError):
        generator_loss(g, d, FeatureNet(target), x, x, lam=1.5)
    with pytest.raises(ValueError):
        generator_loss(g, d, FeatureNet(target), x, x[:1])


def test_training_recycles_correctly_classified_cleaned_images_and_is_deterministic():
    def run():
        g, d, target = _small()
        torch.manual_seed(2)
        xc = torch.rand(64, 1, 28, 28)
        xa = (xc + 0.2 * torch.randn_like(xc)).clamp(0, 1)
        with torch.no_grad():
            y = target(g(xa)).argmax(1)  # the target gets every cleaned image right at the start
        h = train_gcln(g, d, FeatureNet(target), target, xc, xa, y, GCLNTrainConfig(epochs=2, batch_size=16, pool=40))
        return h, g

    h1, g1 = run()
    h2, g2 = run()
    assert h1[0]["recycled"] > 0 and h1[-1]["pool"] <= 40
    assert h1 == h2
    for a, b in zip(g1.parameters(), g2.parameters()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kwargs", [dict(epochs=0), dict(lam=2), dict(clean_inputs=1.0), dict(lr=0)])
def test_bad_training_settings_raise(kwargs):
    with pytest.raises(ValueError):
        GCLNTrainConfig(**kwargs)


def test_gcln_implements_the_protocol_and_its_views_have_gradients():
    g, _, target = _small()
    m = GCLN(g, target).eval()
    assert isinstance(m, Defense) and m.deployed() is m and not m.random
    x = torch.rand(3, 1, 28, 28, requires_grad=True)
    (g0,) = torch.autograd.grad(m(x).sum(), x)
    assert g0.abs().max() == 0  # the rounding stops every gradient
    views = m.attack_views()
    assert set(views) == {"straight-through", "identity through G"}
    for v in views.values():
        assert v.same_forward
        torch.testing.assert_close(v.model(x), m(x))
        (gv,) = torch.autograd.grad(v.model(x).sum(), x)
        assert gv.abs().max() > 0
    # BPDA through all of G: the gradient is the target's gradient at G(x)
    xg = g(x).detach().requires_grad_(True)
    (gt,) = torch.autograd.grad(target(xg).sum(), xg)
    (gv,) = torch.autograd.grad(views["identity through G"].model(x).sum(), x)
    torch.testing.assert_close(gv, gt)
    with pytest.raises(ValueError):
        m(torch.rand(1, 1, 28, 28) + 2)
    with pytest.raises(ValueError):
        GCLN(target, target)


def test_lowpass_keeps_low_frequencies_only():
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    lo = lowpass(x, 4, 8, 2)
    import torch.nn.functional as F

    c = block_dct(F.pad(lo, (2,) * 4, mode="replicate"), 8)
    assert lo.shape == x.shape
    assert torch.equal(lowpass(x, 8, 8, 2), x)
    inner = block_dct(lowpass(torch.rand(1, 1, 32, 32, dtype=torch.float64), 3, 8), 8).reshape(4, 8, 4, 8)
    assert inner[:, 3:, :, :].abs().max() < 1e-12 and inner[:, :, :, 3:].abs().max() < 1e-12
    assert c.abs().max() > 0


def test_lowfreq_pgd_stays_in_the_ball_and_fools_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    x = torch.rand(8, 1, 28, 28) * 0.5 + 0.25
    y = model(x).argmax(1)
    a = LowFrequencyPGD(0.3, 20, keep=2, block=8, pad=2)
    xa = a(model, x, y)
    assert (xa - x).abs().max() <= 0.3 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    assert (model(xa).argmax(1) != y).float().mean() > 0.5
    with pytest.raises(ValueError):
        LowFrequencyPGD(0.3, 10, keep=9, block=8)

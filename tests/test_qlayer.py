"""The Q-Layer: quantization to concept rows, heads in their own sub-spaces, the stop-gradients of
eqs. 7-8, inactive-concept updates and the gradients an attacker sees."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from qutils.data import TensorData
from qutils.defenses.qlayer import InactiveConceptUpdate, QLayer, QLayerLoss, QLayerNet, qlayer_cnn
from qutils.train import TrainConfig, train


def _small_net(heads=2, concepts=8, shared=False, seed=0):
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Conv2d(1, 6, 3, stride=2), nn.ReLU())  # 6 channels, 3x3 on 7x7 inputs

    def head():
        return nn.Sequential(nn.Flatten(), nn.Linear(heads * 6 * 3 * 3, 4))

    return QLayerNet(enc, QLayer(6, heads, concepts), head(), None if shared else head())


def _grads(loss, params):
    gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return sum(0.0 if g is None else float(g.abs().sum()) for g in gs)


def test_quantized_outputs_are_the_nearest_rows_of_each_heads_concept_matrix():
    q = QLayer(5, heads=3, concepts=7)
    z = torch.randn(4, 5, 2, 3)
    out = q(z)
    assert out.zq.shape == out.ze.shape == (4, 15, 2, 3)
    ze = q.projections(q.panels(z)).detach()
    for k in range(3):
        zq_k = out.zq[:, 5 * k:5 * (k + 1)].permute(0, 2, 3, 1).reshape(-1, 5)
        d_to_rows = torch.cdist(zq_k, q.concepts[k].detach())
        assert torch.allclose(d_to_rows.min(1).values, torch.zeros(len(zq_k)), atol=1e-6)  # a row of Q_k
        nearest = torch.cdist(ze[k], q.concepts[k].detach()).argmin(1)
        assert torch.equal(out.index[k], nearest)
        assert torch.allclose(zq_k, q.concepts[k].detach()[nearest])


def test_each_head_quantizes_in_its_own_subspace():
    q = QLayer(5, heads=2, concepts=4)
    z = torch.rand(3, 5)
    ze = q.projections(q.panels(z))
    assert not torch.allclose(ze[0], ze[1])  # different projections
    # eq. 4: a softmax re-weighting of the channels, so each head's panel is the input scaled in (0, 1)
    ratio = ze / z.unsqueeze(0)
    assert (ratio > 0).all() and torch.allclose(ratio.sum(-1), torch.ones(2, 3))
    before = q(z).zq[:, :5].clone()
    with torch.no_grad():
        q.concepts[1].add_(10.0)  # head 1's concepts must not affect head 0
    assert torch.equal(q(z).zq[:, :5], before)
    assert not QLayer(5, heads=1).project and QLayer(5, heads=2).project


def test_stop_gradients_of_the_loss():
    net = _small_net(heads=2)
    x, y = torch.rand(8, 1, 7, 7), torch.randint(0, 4, (8,))
    t = QLayerLoss().terms(net, x, y)
    concepts = [net.qlayer.concepts]
    encoder = list(net.encoder.parameters())
    proj = [net.qlayer.weight, net.qlayer.bias]
    # the concept matrix: from L_Q and the alpha term only
    assert _grads(t["L_Q"], concepts) > 0 and _grads(t["L_Q->E"], concepts) > 0
    assert _grads(t["L_E"], concepts) == 0 and _grads(t["L_E->Q"], concepts) == 0
    # the encoder and the projections: from L_E and the beta term only, never through the argmin
    for params in (encoder, proj):
        assert _grads(t["L_E"], params) > 0 and _grads(t["L_E->Q"], params) > 0
        assert _grads(t["L_Q"], params) == 0 and _grads(t["L_Q->E"], params) == 0
    # the subsequent networks: each from its own path
    assert _grads(t["L_Q"], list(net.head_q.parameters())) > 0
    assert _grads(t["L_Q"], list(net.head_e.parameters())) == 0
    assert _grads(t["L_E"], list(net.head_q.parameters())) == 0


def test_loss_combines_the_four_terms_with_their_weights():
    net = _small_net()
    x, y = torch.rand(8, 1, 7, 7), torch.randint(0, 4, (8,))
    net.eval()  # no dropout here anyway; deterministic
    t = QLayerLoss().terms(net, x, y)
    assert torch.isclose(t["L_Q->E"], t["L_E->Q"])  # same distance, different stop-gradients
    full = QLayerLoss(c1=1, c2=2, alpha=0.5, beta=0.25)(net, x, y)
    assert torch.isclose(full, t["L_Q"] + 2 * t["L_E"] + 0.5 * t["L_Q->E"] + 0.25 * t["L_E->Q"])
    with pytest.raises(ValueError):
        QLayerLoss(alpha=-1)


def test_inactive_concepts_move_with_strategy_1_and_are_reinitialised_with_strategy_2():
    torch.manual_seed(0)
    for strategy in (1, 2):
        q = QLayer(4, heads=1, concepts=5)
        with torch.no_grad():
            q.concepts[0, 4] = 50.0  # far from every panel: never chosen
        q.train()
        panels = torch.rand(64, 4)
        q(panels)
        assert q.inactive()[0, 4] and int(q.inactive().sum()) >= 1
        far = q.concepts[0, 4].detach().clone()
        d_before = torch.cdist(far[None], panels).min()
        n = q.update_inactive(panels, strategy=strategy, steps=50, lr=0.5)
        assert n >= 1
        moved = q.concepts[0, 4].detach()
        d_after = torch.cdist(moved[None], panels).min()
        if strategy == 1:
            assert d_after < d_before - 1.0
        else:
            assert d_after < 1e-5  # exactly a panel
        assert q.usage.sum() == 0  # counts reset for the next epoch
    with pytest.raises(ValueError):
        q.update_inactive(panels, strategy=3)


def test_active_concepts_are_untouched_by_the_inactive_update():
    torch.manual_seed(1)
    q = QLayer(4, heads=1, concepts=5)
    with torch.no_grad():
        q.concepts[0, 4] = 50.0
    q.train()
    panels = torch.rand(64, 4)
    q(panels)
    active = ~q.inactive()[0]
    before = q.concepts[0][active].detach().clone()
    q.update_inactive(panels, strategy=1, steps=5)
    assert torch.allclose(q.concepts[0][active], before)


def test_q_path_input_gradient_is_zero_without_bpda_and_nonzero_with_it():
    net = qlayer_cnn("base").eval()
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    y = torch.randint(0, 10, (4,))

    def grad(model):
        (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
        return g

    assert torch.equal(grad(net), torch.zeros_like(x))
    assert grad(net.view("q", "identity")).abs().sum() > 0
    assert grad(net.view("e")).abs().sum() > 0
    assert grad(net.view("shortcut")).abs().sum() > 0
    # BPDA changes the backward pass only
    assert torch.equal(net.view("q", "identity")(x), net(x))
    o = net.forward_all(x)
    assert torch.allclose(net.view("shortcut")(x), net.head_q(o["ze"]))
    # the E-path and the shortcut skip the nearest-concept search; same logits as through the full layer
    assert torch.allclose(net.view("e")(x), net.head_e(o["ze"]))
    assert torch.allclose(net(x), o["yq"])


@pytest.mark.parametrize("variant", ["base", "large"])
def test_soft_assignment_view(variant):
    """The designed attack's view: the exact Q-path forward, a non-zero gradient, and a soft assignment
    that tends to the nearest concept as the temperature falls (and to a mean of concepts as it rises)."""
    torch.manual_seed(0)
    net = qlayer_cnn(variant).eval()
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    y = torch.randint(0, 10, (4,))
    soft = net.view("q", "soft")
    assert torch.equal(soft(x), net(x))
    (g,) = torch.autograd.grad(F.cross_entropy(soft(x), y), x)
    assert g.abs().sum() > 0
    out = net.qlayer(net.encoder(x))
    cold = net.qlayer.soft(out.ze, 1e-7)
    assert torch.allclose(cold, out.zq, atol=1e-5)
    hot = net.qlayer.soft(out.ze, 1e6)
    assert (hot - out.zq).abs().max() > 10 * (cold - out.zq).abs().max()
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            net.view("q", "soft", temperature=bad)
    with pytest.raises(ValueError):
        net.view("e", "soft")
    assert list(net.attack_views())[0] == "straight-through"  # the cascade's targeted attack uses the first view


@pytest.mark.parametrize("variant,heads,shape", [("base", 1, (64, 10, 10)), ("large", 4, (256, 10, 10)),
                                                  ("inner", 4, (256, 24, 24))])
def test_models_of_the_paper(variant, heads, shape):
    net = qlayer_cnn(variant)
    assert net.qlayer.heads == heads and net.qlayer.nc == 64
    o = net.forward_all(torch.rand(2, 1, 28, 28))
    assert o["zq"].shape[1:] == shape and o["yq"].shape == (2, 10)
    assert net.head_q is not net.head_e
    shared = qlayer_cnn(variant, shared=True)
    assert shared.head_q is shared.head_e and shared.shared


def test_training_counts_concept_usage_and_bad_arguments_raise():
    net = _small_net()
    net.train()
    net.forward_all(torch.rand(5, 1, 7, 7))
    assert int(net.qlayer.usage.sum()) == 2 * 5 * 3 * 3  # heads x panels
    net.qlayer.reset_usage()
    with torch.no_grad():
        net.qlayer.concepts[1].add_(torch.randn(8, 6))  # heads choose differently
    index = net.forward_all(torch.rand(5, 1, 7, 7))["index"]
    for k in range(2):  # each head's counts land in its own row
        assert torch.equal(net.qlayer.usage[k], torch.bincount(index[k], minlength=8))
    assert not torch.equal(net.qlayer.usage[0], net.qlayer.usage[1])
    net.qlayer.reset_usage()
    net.view("e")(torch.rand(5, 1, 7, 7))  # the E-path alone quantizes nothing, so counts nothing
    assert int(net.qlayer.usage.sum()) == 0
    net.forward_all(torch.rand(5, 1, 7, 7))
    net.eval()
    net.forward_all(torch.rand(5, 1, 7, 7))
    assert int(net.qlayer.usage.sum()) == 2 * 5 * 3 * 3  # evaluation does not count
    with pytest.raises(ValueError):
        QLayer(0)
    with pytest.raises(ValueError):
        net.view("z")
    with pytest.raises(ValueError):
        net.view("e", "identity")
    with pytest.raises(ValueError):
        qlayer_cnn("huge")
    with pytest.raises(ValueError, match="expected features"):
        QLayer(5)(torch.rand(2, 4, 3, 3))


def test_training_with_the_loss_and_the_inactive_concept_hook():
    torch.manual_seed(0)
    net = _small_net(heads=2, concepts=16)
    with torch.no_grad():
        net.qlayer.concepts[0, 15] = 100.0  # an inactive concept
    x = torch.rand(256, 1, 7, 7)
    y = (x.mean((1, 2, 3)) * 4).clamp(max=3.999).long()
    data = TensorData(x, y, "synthetic", "train", synthetic=True)
    c0 = net.qlayer.concepts.detach().clone()
    enc0 = [p.detach().clone() for p in net.encoder.parameters()]
    res = train(net, data, None, TrainConfig(epochs=2, batch_size=64, optimizer="radam", select="last"),
                device=torch.device("cpu"), progress=False, loss_fn=QLayerLoss(),
                on_epoch_end=InactiveConceptUpdate(strategy=1, steps=20, lr=1.0, images=128))
    assert res.history[0]["inactive_concepts"] >= 1
    assert (net.qlayer.concepts.detach() - c0).abs().max() > 0  # concepts learn
    assert any((p.detach() - q).abs().max() > 0 for p, q in zip(net.encoder.parameters(), enc0))
    assert net.qlayer.concepts[0, 15].abs().max() < 100.0 - 1.0  # the inactive concept moved
    with pytest.raises(ValueError):
        InactiveConceptUpdate(strategy=0)

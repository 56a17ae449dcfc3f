"""qutils.certify: both bounds on input binarization must be sound and exact where they claim to be.

Each test would fail if the code were wrong: a bound above a margin some input of the box reaches
(unsound), an enumeration that misses a vertex, a certificate for an image an attack breaks, a
"broken" input outside the ball or not fooling the deployed model.
"""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn

from qutils.attacks import ThresholdFlip
from qutils.certify import (BROKEN, CERTIFIED, MISCLASSIFIED, UNKNOWN, certify, crown_margin_lower_bound,
                            linear_margin_lower_bound, margin_lower_bound, reachable)
from qutils.defenses import BitDepthReduction, InputTransformModel, QuSecNet, constant_quantization


def _margin(net, v, y):
    with torch.no_grad():
        z = net(v)
    own = z.gather(1, y.view(-1, 1)).squeeze(1)
    other = z.scatter(1, y.view(-1, 1), float("-inf")).max(1).values
    return own - other


def _chain_net(seed=0, c=1, size=6, classes=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(6 * 2 * 2, 12), nn.ReLU(), nn.Linear(12, classes)).eval()


def _box(seed, shape=(1, 1, 6, 6), free=8):
    g = torch.Generator().manual_seed(seed)
    lo = (torch.rand(shape, generator=g) > 0.5).float()
    hi = lo.clone()
    idx = torch.randperm(lo.numel(), generator=g)[:free]
    lo.view(-1)[idx], hi.view(-1)[idx] = 0.0, 1.0
    return lo, hi, idx


@pytest.mark.parametrize("seed", range(4))
def test_ibp_and_crown_are_sound_on_every_vertex_and_inside_the_box(seed):
    """No bound exceeds the margin of any of the box's 2**8 vertices or of 500 random points in it."""
    net = _chain_net(seed)
    lo, hi, idx = _box(seed)
    y = torch.tensor([seed % 4])
    ibp = float(margin_lower_bound(net, lo, hi, y))
    crown = float(crown_margin_lower_bound(net, lo, hi, y))
    linear = float(linear_margin_lower_bound(net, lo, hi, y))
    verts = lo.repeat(256, 1, 1, 1)
    for k, bits in enumerate(itertools.product((0.0, 1.0), repeat=8)):
        verts[k].view(-1)[idx] = torch.tensor(bits)
    inside = lo + (hi - lo) * torch.rand(500, *lo.shape[1:], generator=torch.Generator().manual_seed(seed))
    true_min = float(torch.cat([_margin(net, verts, y.expand(256)), _margin(net, inside, y.expand(500))]).min())
    assert ibp <= true_min + 1e-5
    assert crown <= true_min + 1e-5
    assert linear <= true_min + 1e-5
    # CROWN is the tighter bound on these untrained networks (measured: by a wide margin)
    assert crown >= ibp - 1e-5


def test_linear_bounds_are_sound_through_batch_norm_and_average_pooling():
    """Batch norm with negative scales (its negative part takes the upper function to the lower one)
    and average pooling: the forward linear bound and CROWN stay below every vertex's margin."""
    torch.manual_seed(1)
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, -2.0, 0.5, -0.7]))
        bn.bias.copy_(torch.randn(4))
        bn.running_mean.copy_(torch.randn(4))
        bn.running_var.copy_(torch.rand(4) + 0.5)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), bn, nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 3 * 3, 10), nn.ReLU(), nn.Linear(10, 4)).eval()
    for seed in range(3):
        lo, hi, idx = _box(10 + seed)
        y = torch.tensor([seed])
        verts = lo.repeat(256, 1, 1, 1)
        for k, bits in enumerate(itertools.product((0.0, 1.0), repeat=8)):
            verts[k].view(-1)[idx] = torch.tensor(bits)
        true_min = float(_margin(net, verts, y.expand(256)).min())
        assert float(linear_margin_lower_bound(net, lo, hi, y)) <= true_min + 1e-5
        assert float(crown_margin_lower_bound(net, lo, hi, y)) <= true_min + 1e-5
        # a box with no free pixel is one image: the bound is its margin
        assert float(linear_margin_lower_bound(net, lo, lo, y)) == pytest.approx(float(_margin(net, lo, y)), abs=1e-4)


def test_crown_is_exact_on_a_network_without_relu():
    """With no ReLU the network is affine: CROWN's bound is the margin's minimum over the box,
    attained at a vertex; interval bounds through two linear layers are looser."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(9, 7), nn.Linear(7, 3)).eval()
    lo, hi, idx = _box(5, shape=(1, 1, 3, 3), free=6)
    y = torch.tensor([1])
    verts = lo.repeat(64, 1, 1, 1)
    for k, bits in enumerate(itertools.product((0.0, 1.0), repeat=6)):
        verts[k].view(-1)[idx] = torch.tensor(bits)
    true_min = float(_margin(net, verts, y.expand(64)).min())
    assert float(crown_margin_lower_bound(net, lo, hi, y)) == pytest.approx(true_min, abs=1e-5)
    assert float(linear_margin_lower_bound(net, lo, hi, y)) == pytest.approx(true_min, abs=1e-5)
    assert float(margin_lower_bound(net, lo, hi, y)) < true_min - 1e-3


def _tiny_defense(seed):
    """A QuSecNet (CQ, two levels: threshold 0.5) on 1x3x3 images, with a random chain classifier."""
    torch.manual_seed(seed)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(9, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    return QuSecNet(constant_quantization(2), clf).eval(), clf


def _brute_force(clf, x, y, eps):
    """True iff some binary image reachable from ``x`` within ``eps`` is not classified ``y``."""
    q = constant_quantization(2, mode="hard")
    lo, hi = q((x - eps).clamp(0, 1)), q((x + eps).clamp(0, 1))
    free = (lo != hi).view(-1).nonzero().view(-1)
    for bits in itertools.product((0.0, 1.0), repeat=len(free)):
        v = lo.clone()
        v.view(-1)[free] = torch.tensor(bits)
        with torch.no_grad():
            if int(clf(v).argmax(1)) != int(y):
                return True
    return False


@pytest.mark.parametrize("enum_limit,bound", [(0, "ibp"), (0, "crown"), (0, "linear"), (20, "ibp"), (3, "auto")])
def test_verdicts_equal_brute_force_on_tiny_images(enum_limit, bound):
    """Pure branch and bound (enum_limit 0), pure enumeration (20) and a mix give the verdict an
    exhaustive search over every reachable binary image gives, on 40 random images."""
    verdicts = set()
    for seed in range(40):
        net, clf = _tiny_defense(seed % 5)
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(1, 1, 3, 3, generator=g)
        with torch.no_grad():
            y = clf(constant_quantization(2, mode="hard")(x)).argmax(1)
        eps = 0.25
        (c,) = certify(net, x, y, eps, enum_limit=enum_limit, node_budget=10_000, bound=bound)
        assert c.status in (CERTIFIED, BROKEN)
        assert (c.status == BROKEN) == _brute_force(clf, x, y, eps), (seed, c)
        verdicts.add(c.status)
        if c.status == BROKEN:
            assert float((c.x_adv - x).abs().max()) <= eps + 1e-6
            assert int(net.deployed()(c.x_adv).argmax(1)) != int(y)
    assert verdicts == {CERTIFIED, BROKEN}  # the cases exercise both answers


def _hand_built(weight_on_free: float):
    """Two classes, ``z_0 - z_1 = sum of bits - 3.5`` except that pixels 3 and 4 weigh ``weight_on_free``."""
    lin = nn.Linear(6, 2)
    with torch.no_grad():
        w = torch.ones(6)
        w[3:5] = weight_on_free
        lin.weight.copy_(torch.stack([w, torch.zeros(6)]))
        lin.bias.copy_(torch.tensor([-3.5, 0.0]))
    return QuSecNet(constant_quantization(2), nn.Sequential(nn.Flatten(), lin)).eval()


def test_a_hand_built_network_whose_answer_is_known():
    """Pixels 1, 1, 1, 0.45, 0.45, 0 (three bits on): class 1. Within 0.04 no bit can change, so it
    is certified; within 0.1 pixels 3 and 4 can reach 0.55 > 0.5, one of them on gives four bits and
    class 0 (broken), unless those pixels pull towards class 1 (certified)."""
    x = torch.tensor([1.0, 1.0, 1.0, 0.45, 0.45, 0.0]).view(1, 1, 2, 3)
    y = torch.tensor([1])
    lo, hi = reachable(constant_quantization(2, mode="hard"), x, 0.1)
    assert (lo != hi).view(-1).nonzero().view(-1).tolist() == [3, 4]
    assert certify(_hand_built(1.0), x, y, 0.04)[0].status == CERTIFIED
    c = certify(_hand_built(1.0), x, y, 0.1)[0]
    assert c.status == BROKEN and c.free == 2
    assert torch.allclose(c.x_adv.view(-1)[:3], x.view(-1)[:3]) and float(c.x_adv.view(-1)[5]) == 0.0
    assert float(c.x_adv.view(-1)[3:5].max()) == pytest.approx(0.55)
    assert certify(_hand_built(-1.0), x, y, 0.1)[0].status == CERTIFIED
    assert certify(_hand_built(1.0), x, torch.tensor([0]), 0.1)[0].status == MISCLASSIFIED


def test_no_image_is_both_certified_and_broken(trained_cnn, mnist_test):
    """On the trained fixture CNN behind a two-level CQ layer, at eps 0.1: no image certified is
    broken by the designed attack (threshold flips) or by PGD through the straight-through view;
    every image the search breaks is broken by a real input within the ball; the certified share is
    a lower bound of the attacked one."""
    from qutils.attacks import PGD

    net = QuSecNet(constant_quantization(2), trained_cnn).eval()
    x, y = mnist_test.x[:16], mnist_test.y[:16]
    eps = 0.1
    certs = certify(net, x, y, eps, node_budget=20, bound="ibp")  # CROWN on this CNN: seconds per box
    status = [c.status for c in certs]
    dep = net.deployed()
    attacked_ok = torch.ones(len(x), dtype=torch.bool)
    for adv in (ThresholdFlip(eps, net, steps=50, flips=2)(dep, x, y),
                PGD(eps, steps=40)(net.view("hard", "identity"), x, y)):
        assert float((adv - x).abs().max()) <= eps + 1e-6
        with torch.no_grad():
            attacked_ok &= dep(adv).argmax(1) == y
    for i, c in enumerate(certs):
        if c.status == CERTIFIED:
            assert bool(attacked_ok[i]), f"image {i} certified but an attack broke it"
        if c.status == BROKEN:
            assert float((c.x_adv - x[i:i + 1]).abs().max()) <= eps + 1e-6
            with torch.no_grad():
                assert int(dep(c.x_adv).argmax(1)) != int(y[i])
    assert status.count(CERTIFIED) >= 1 and status.count(BROKEN) + status.count(UNKNOWN) >= 1
    assert status.count(CERTIFIED) <= int(attacked_ok.sum())


def test_bit_depth_reduction_is_certified_like_cq():
    """Feature squeezing's 1-bit depth rounds at 0.5, as CQ's two levels do: the same verdicts."""
    torch.manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(9, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    fs = InputTransformModel(BitDepthReduction(1), clf).eval()
    cq = QuSecNet(constant_quantization(2), clf).eval()
    x = torch.rand(12, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = clf((x > 0.5).float()).argmax(1)
    a = [c.status for c in certify(fs, x, y, 0.2, node_budget=1000)]
    b = [c.status for c in certify(cq, x, y, 0.2, node_budget=1000)]
    assert a == b


def test_bad_input_raises(trained_cnn, mnist_test):
    x, y = mnist_test.x[:2], mnist_test.y[:2]
    net = QuSecNet(constant_quantization(2), trained_cnn).eval()
    with pytest.raises(ValueError, match="eps"):
        certify(net, x, y, -0.1)
    with pytest.raises(ValueError, match="two-level"):
        certify(QuSecNet(constant_quantization(3), trained_cnn).eval(), x, y, 0.1)
    with pytest.raises(ValueError, match="input-quantization"):
        certify(trained_cnn, x, y, 0.1)
    with pytest.raises(ValueError, match="bound"):
        certify(net, x, y, 0.1, bound="lp")
    with pytest.raises(ValueError):
        certify(net, x * 2, y, 0.1)
    pooled = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 13 * 13, 10))
    for b in ("crown", "linear"):
        with pytest.raises(ValueError, match="cannot bound layer MaxPool2d"):
            certify(QuSecNet(constant_quantization(2), pooled.eval()), x, y, 0.1, bound=b)
    # "auto" falls back to interval bounds for a network CROWN does not handle
    assert len(certify(QuSecNet(constant_quantization(2), pooled.eval()), x, y, 0.05, bound="auto")) == 2


def test_two_sided_bounds_bracket_the_exact_robust_accuracy():
    """On tiny images brute force gives the exact robust accuracy. With a search budget too small to
    decide every image, the certified share is at or below it and the attacked share (an attack that
    breaks nothing, so only the search's verdicts count) at or above it; with a large budget both
    equal it. An attack that breaks a certified image is a bug, and raises."""
    from qutils.certify import bounds_table, two_sided

    net, clf = _tiny_defense(3)
    x = torch.rand(30, 1, 3, 3, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        y = clf(constant_quantization(2, mode="hard")(x)).argmax(1)
    eps = 0.1
    exact = sum(not _brute_force(clf, x[i:i + 1], y[i], eps) for i in range(len(x))) / len(x)
    nothing = torch.ones(len(x), dtype=torch.bool)  # an attack that broke nothing
    tight = two_sided(net, x, y, eps, nothing, "no attack", node_budget=10_000, enum_limit=0)
    assert tight.lower.value == tight.upper.value == pytest.approx(exact)
    assert 0.2 < exact < 0.8, exact  # the images exercise both verdicts
    loose = two_sided(net, x, y, eps, nothing, "no attack", node_budget=1, enum_limit=0)
    assert loose.lower.value <= exact <= loose.upper.value
    assert loose.counts()[UNKNOWN] >= 1 and loose.upper.value - loose.lower.value == pytest.approx(
        loose.counts()[UNKNOWN] / len(x))
    # the attacks' verdict lowers the upper bound image by image; contradicting a certificate raises
    cert = torch.tensor([c.status == CERTIFIED for c in tight.certificates])
    some_unknown = torch.tensor([c.status == UNKNOWN for c in loose.certificates])
    attacked = two_sided(net, x, y, eps, ~some_unknown, "an attack", node_budget=1, enum_limit=0)
    assert attacked.upper.value == pytest.approx(loose.lower.value)
    with pytest.raises(RuntimeError, match="certified images were broken"):
        two_sided(net, x, y, eps, ~cert, "a wrong attack", node_budget=10_000, enum_limit=0)
    with pytest.raises(ValueError, match="entries"):
        two_sided(net, x, y, eps, nothing[:3])
    # the table: one row per binarizing model and radius, the plain classifier skipped
    t = bounds_table({"CQ": net, "plain": clf}, x, y, (eps, 0.2), lambda name, m, e: (nothing, "no attack"),
                     node_budget=10_000, enum_limit=0)
    assert list(t.model) == ["CQ", "CQ"] and list(t.eps) == [eps, 0.2]
    assert (t.n_certified + t.n_broken + t.n_unknown + t.n_misclassified == len(x)).all()
    assert t.certified.iloc[0] == pytest.approx(exact) and t.certified.iloc[1] < t.certified.iloc[0]
    with pytest.raises(ValueError, match="binarizes"):
        bounds_table({"plain": clf}, x, y, (eps,), lambda *a: (nothing, ""))


def test_search_budget_checks_its_radii_and_gives_each_its_boxes():
    from qutils.certify import SearchBudget

    b = SearchBudget(10, (0.1, 0.3), (40, 10))
    assert b.nodes_at(0.1) == 40 and b.nodes_at(0.3) == 10
    assert SearchBudget(10, (0.1, 0.3), 7).nodes_at(0.25) == 7  # one budget for every radius
    with pytest.raises(ValueError, match="no radius 0.2"):
        b.nodes_at(0.2)
    with pytest.raises(ValueError, match="2 budgets for 3 radii"):
        SearchBudget(10, (0.1, 0.2, 0.3), (40, 10))
    with pytest.raises(ValueError):
        SearchBudget(10, (-0.1,), 5)
    with pytest.raises(ValueError):
        SearchBudget(0, (0.1,), 5)
    with pytest.raises(ValueError, match="at least one radius"):
        SearchBudget(10, (), 5)


def test_cascade_bounds_use_the_cascade_at_its_radius_and_count_what_the_attacks_missed():
    """At the chapter's radius the attacks' verdict is its cascade's (per image), elsewhere the light
    cascade's; each radius gets its own node budget; an image the attacks left correct and the search
    broke is counted as missed, and the upper bound is the attacks' share less those."""
    from types import SimpleNamespace

    from qutils.certify import SearchBudget, cascade_bounds

    net, clf = _tiny_defense(3)
    x = torch.rand(30, 1, 3, 3, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        y = clf(constant_quantization(2, mode="hard")(x)).argmax(1)
    nothing = torch.ones(20, dtype=torch.bool)  # an "attack" that broke nothing, on the first 20 images
    calls = []

    def light(name, m, xs, ys, e):
        calls.append((name, e, len(xs)))
        return torch.ones(len(xs), dtype=torch.bool)

    budget = SearchBudget(20, (0.1, 0.2), (10_000, 1), 0)
    t = cascade_bounds({"CQ": net, "plain": clf}, x, y, 0.1, budget, {"CQ": SimpleNamespace(robust=nothing)}, light,
                       "light")
    assert calls == [("CQ", 0.2, 20)]  # the cascade's verdict at 0.1; the light cascade at 0.2 only
    assert list(t.attack) == ["the adaptive cascade", "light"] and (t.n == 20).all()
    exact = sum(not _brute_force(clf, x[i:i + 1], y[i], 0.1) for i in range(20)) / 20
    r = t.iloc[0]
    assert r.certified == r.attacked == pytest.approx(exact)  # a large budget decides every image
    assert r.n_missed == r.n_broken == round(20 * (1 - exact))  # the attack broke nothing: the search found all
    assert r.survived == 1.0 and (t.survived * 20 - t.n_missed == (t.attacked * 20).round()).all()
    assert t.iloc[1].n_unknown > 0  # one box per image at 0.2 leaves images undecided
    with pytest.raises(ValueError, match="no cascade result"):
        cascade_bounds({"CQ": net}, x, y, 0.1, budget, {}, None)

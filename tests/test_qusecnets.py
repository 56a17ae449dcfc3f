"""QuSecNets' quantization layer, the baselines it is compared with, and the chapter's helpers."""
import json
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn as nn
import torch.nn.functional as F

from qutils.attacks import FGSM, PGD, Adaptive, all_targets
from qutils.defenses import (BitDepthReduction, BoundedReLU, GaussianAugmentation, InputTransformModel, MedianSmoothing,
                             QuantizationLayer, QuSecNet, brelu_cnn, constant_quantization, constant_thresholds,
                             qusecnets_cost, variable_quantization)
from qutils.evaluate import Accuracy, robust_accuracy
from qutils.exercise import check
from qutils.experiments import qusecnets as X
from qutils.models import build
from qutils.profiles import get_profile
from qutils.results import Results, load_results

XS = torch.linspace(0, 1, 2001).view(-1, 1, 1, 1)


def _perturbed_vq(levels, shape=None, seed=0):
    q = QuantizationLayer(levels, 5.0, trainable=True, shape=shape, mode="hard")
    with torch.no_grad():
        q.gap_logits.add_(torch.randn(q.gap_logits.shape, generator=torch.Generator().manual_seed(seed)))
    return q


# --- the layer ------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [2, 3, 4, 5, 8, 16])
def test_hard_mode_has_exactly_n_levels_in_unit_interval_and_is_monotone(levels):
    for q in (constant_quantization(levels, mode="hard"), _perturbed_vq(levels)):
        y = q(XS).flatten()
        vals = y.unique()
        assert len(vals) == levels
        assert torch.allclose(vals, torch.arange(levels) / (levels - 1))
        assert (torch.diff(y) >= 0).all()


@pytest.mark.parametrize("levels", [2, 3, 4])
def test_soft_mode_is_monotone_in_unit_interval_and_tends_to_hard(levels):
    q = constant_quantization(levels, z=50)
    y = q(XS).flatten()
    assert (torch.diff(y) >= 0).all() and y.min() >= 0 and y.max() <= 1
    steep = QuantizationLayer(levels, z=2000.0)(XS).flatten()
    hard = q.view("hard")(XS).flatten()
    far = (XS.flatten().unsqueeze(1) - constant_thresholds(levels)).abs().min(1).values > 0.01
    assert (steep - hard)[far].abs().max() < 1e-6


def test_constant_quantization_is_rounding_to_the_levels():
    # away from exact ties (torch.round rounds half to even), hard CQ == round(x (n-1)) / (n-1)
    x = torch.rand(4000).view(-1, 1, 1, 1)
    for n in (2, 3, 4, 8):
        assert torch.equal(constant_quantization(n, mode="hard")(x), torch.round(x * (n - 1)) / (n - 1))
    assert torch.equal(constant_quantization(2, mode="hard")(x), BitDepthReduction(1)(x))


def test_per_pixel_thresholds_quantize_each_pixel_with_its_own():
    q = _perturbed_vq(3, shape=(1, 4, 4), seed=3)
    t = q.thresholds.detach()
    assert t.shape == (2, 1, 4, 4)
    assert (t[1] > t[0]).all() and (t > 0).all() and (t < 1).all()
    x = torch.rand(64, 1, 4, 4)
    expected = ((x >= t[0]).float() + (x >= t[1]).float()) / 2
    assert torch.equal(q(x), expected)


def test_vq_thresholds_move_during_training_stay_ordered_and_get_gradient():
    torch.manual_seed(0)
    net = QuSecNet(variable_quantization(4, z=5, shape=(1, 8, 8)), nn.Sequential(nn.Flatten(), nn.Linear(64, 3)))
    x = torch.rand(256, 1, 8, 8)
    y = (x.mean((1, 2, 3)) * 3).clamp(max=2.999).long()
    t0 = net.quantizer.thresholds.detach().clone()
    loss = F.cross_entropy(net(x), y)
    (g,) = torch.autograd.grad(loss, net.quantizer.gap_logits)
    assert g.abs().sum() > 0, "no gradient reaches the thresholds"
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    t1 = net.quantizer.thresholds.detach()
    assert (t1 - t0).abs().max() > 0.01, "thresholds did not move"
    assert (torch.diff(t1, dim=0) > 0).all(), "thresholds lost their order"
    assert (t1 > 0).all() and (t1 < 1).all()


def test_cq_thresholds_are_fixed():
    q = constant_quantization(3)
    assert list(q.parameters()) == []
    assert torch.allclose(q.thresholds, torch.tensor([0.25, 0.75]))


def test_gradients_autograd_zero_in_hard_mode_nonzero_with_bpda():
    torch.manual_seed(0)
    net = QuSecNet(constant_quantization(2), build("cleverhans_cnn")).eval()
    x = torch.rand(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))

    def grad_at(model, inputs):
        xx = inputs.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xx), y), xx)
        return g

    def grad(model):
        return grad_at(model, x)

    assert torch.equal(grad(net.view("hard")), torch.zeros_like(x))
    assert (grad(net.view("hard", "identity")) != 0).float().mean() > 0.9
    assert (grad(net.view("hard", "sigmoid", 10.0)) != 0).float().mean() > 0.9
    # on binary pixels (0.5 from the threshold) the soft layer's gradient is ~1e-9 of the
    # straight-through one. At black pixels its sign is the same (FGSM through the soft layer is
    # not masked there); at white pixels float32 saturates, sigmoid(25) == 1, and it is exactly 0.
    xb = (x > 0.5).float()
    soft, ste = grad_at(net, xb), grad_at(net.view("hard", "identity"), xb)
    assert soft.abs().max() < 1e-6 * ste.abs().max()
    black, white = xb == 0, xb == 1
    assert (soft[black] != 0).all() and torch.equal(soft[black].sign(), ste[black].sign())
    assert (soft[white] == 0).all()
    # BPDA views share the forward pass of the hard layer exactly
    assert torch.equal(net.view("hard", "identity")(x), net.view("hard")(x))


def test_fgsm_through_hard_layer_returns_clean_image_and_bpda_does_not():
    torch.manual_seed(0)
    net = QuSecNet(constant_quantization(2), build("cleverhans_cnn")).eval()
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    assert torch.equal(FGSM(0.3)(net.view("hard"), x, y), x)
    adv = Adaptive(FGSM(0.3), net.view("hard", "identity"))(net.view("hard"), x, y)
    assert (adv - x).abs().max() > 0.29


def test_views_share_thresholds_and_weights():
    net = QuSecNet(variable_quantization(2, shape=(1, 28, 28)), build("cleverhans_cnn"))
    v = net.view("hard", "identity")
    with torch.no_grad():
        net.quantizer.gap_logits[0].add_(1.0)
    assert torch.equal(v.quantizer.thresholds, net.quantizer.thresholds)
    assert v.model is net.model and net.quantizer.mode == "soft"


def test_layer_rejects_bad_arguments():
    for bad in (dict(levels=1), dict(levels=2.5), dict(z=0), dict(z=-1), dict(z=math.inf), dict(mode="round"),
                dict(backward="identity"), dict(shape=(28, 28))):
        with pytest.raises(ValueError):
            QuantizationLayer(**bad)
    q = QuantizationLayer(2, trainable=True, shape=(1, 28, 28))
    with pytest.raises(ValueError, match="per pixel"):
        q(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError):
        QuSecNet(BitDepthReduction(1), build("cleverhans_cnn"))
    with pytest.warns(UserWarning, match="5 <= z <= 40"):
        variable_quantization(2, z=50)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        QuSecNet(constant_quantization(2), build("cleverhans_cnn"))(torch.rand(2, 1, 28, 28) * 2)


def test_cifar_shaped_qusecnet_runs_on_synthetic_images():
    net = QuSecNet(variable_quantization(2, shape=(3, 32, 32)), build("cleverhans_cnn", in_channels=3, input_size=32))
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_qusecnets_cost_is_the_brier_score():
    y = torch.tensor([0, 2])
    perfect = F.one_hot(y, 3).float() * 100
    assert qusecnets_cost(perfect, y) < 1e-12
    uniform = torch.zeros(2, 3)
    # p = 1/3 everywhere: ((2/3)^2 + 2 (1/3)^2) / 3 = 2/9
    assert torch.isclose(qusecnets_cost(uniform, y), torch.tensor(2 / 9))
    logits = torch.zeros(2, 3, requires_grad=True)
    qusecnets_cost(logits, y).backward()
    assert logits.grad[0, 0] < 0 and logits.grad[0, 1] > 0
    with pytest.raises(ValueError):
        qusecnets_cost(torch.zeros(3), y)


# --- the baselines --------------------------------------------------------------------------
def test_bit_depth_one_gives_two_values():
    assert BitDepthReduction(1)(torch.rand(10, 1, 28, 28)).unique().tolist() == [0.0, 1.0]


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_median_smoothing_matches_scipy_and_preserves_constant_images(size):
    x = torch.rand(3, 2, 9, 11)
    ref = ndi.median_filter(x.numpy(), size=(1, 1, size, size), mode="reflect")
    assert np.array_equal(MedianSmoothing(size)(x).numpy(), ref)
    const = torch.full((2, 1, 6, 6), 0.37)
    assert torch.equal(MedianSmoothing(size)(const), const)


def test_median_smoothing_removes_a_single_outlier_and_rejects_bad_input():
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 3] = 1.0
    assert MedianSmoothing(3)(x).max() == 0
    with pytest.raises(ValueError):
        MedianSmoothing(0)
    with pytest.raises(ValueError):
        MedianSmoothing(2)(torch.rand(28, 28))


def test_brelu_bounds_activations_and_gda_stays_in_the_box():
    assert torch.equal(BoundedReLU(1.0)(torch.tensor([-2.0, 0.5, 3.0])), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError):
        BoundedReLU(0)
    net = brelu_cnn("cleverhans_cnn", t=1.0)
    assert sum(isinstance(m, BoundedReLU) for m in net.modules()) == 3
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())
    gda = GaussianAugmentation(0.3)
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    xn = gda.noisy(x)
    assert xn.min() >= 0 and xn.max() <= 1 and 0.15 < (xn - x).std() < 0.3
    assert GaussianAugmentation(0.0).noisy(x).equal(x)
    assert gda.cache_key != GaussianAugmentation(0.1).cache_key  # different noise, different checkpoint
    with pytest.raises(ValueError):
        GaussianAugmentation(-1)


# --- chapter helpers ------------------------------------------------------------------------
def test_all_targets_pairs_each_image_with_every_other_class():
    x, y = torch.rand(3, 1, 4, 4), torch.tensor([0, 5, 9])
    xr, yr, t = all_targets(x, y, 10)
    assert xr.shape[0] == yr.shape[0] == t.shape[0] == 27
    assert (t != yr).all()
    for i in range(3):
        assert sorted(t[9 * i:9 * i + 9].tolist()) == sorted(set(range(10)) - {int(y[i])})
        assert torch.equal(xr[9 * i], x[i])
    with pytest.raises(ValueError):
        all_targets(x, torch.tensor([0, 1, 10]), 10)


def test_targeted_accuracy_against_true_labels(trained_cnn, mnist_test):
    x, y = mnist_test.x[:40], mnist_test.y[:40]
    xs, ys, ts = all_targets(x[:4], y[:4], 10)
    from qutils.attacks import CWL2

    cw = CWL2(targeted=True, steps=20, binary_search_steps=1, initial_const=10, stepsize=0.2)
    not_target = robust_accuracy(trained_cnn, cw, xs, ts)
    still_true = robust_accuracy(trained_cnn, cw, xs, ts, true_labels=ys)
    assert still_true.correct <= not_target.correct  # "true label" implies "not the target"
    with pytest.raises(ValueError):
        robust_accuracy(trained_cnn, PGD(0.1, steps=2), x, y, true_labels=y)


def test_threshold_crossable_counts_pixels_within_eps():
    x = torch.tensor([0.0, 0.2, 0.45, 0.5, 0.7, 1.0]).view(1, 1, 2, 3)
    assert X.threshold_crossable(x, [0.5], 0.3) == pytest.approx(4 / 6)
    assert X.threshold_crossable(x, [0.5], 0.0) == pytest.approx(1 / 6)


def test_config_for_scales_with_profile_and_names_datasets():
    assert X.config_for("mnist", get_profile("book")).eps == 0.3
    assert X.config_for("fashion-mnist", get_profile("book")).eps == 0.1
    assert X.config_for("cifar10", get_profile("full")).epochs == 10
    assert X.config_for("mnist", get_profile("smoke")).epochs == 1
    with pytest.raises(ValueError):
        X.config_for("imagenet", get_profile("book"))


def test_results_file_round_trip(tmp_path):
    res = Results("unit", get_profile("book"), "cpu", config={"eps": math.inf})
    res.add(Accuracy(3, 4, "CW-L2", "white-box", "L2", math.inf, 10), defense="CQ")
    res.add_table("t", [{"a": 1.0, "b": float("nan")}])
    p = res.save(tmp_path / "unit.json")
    d = load_results(p)
    assert d["accuracies"][0]["accuracy"] == 0.75 and d["accuracies"][0]["eps"] == "inf"
    assert d["config"]["eps"] == "inf" and d["tables"]["t"][0]["b"] == "nan"
    assert d["profile"]["name"] == "book" and d["code"]
    json.loads(p.read_text())  # strict JSON (no bare Infinity / NaN)
    with pytest.raises(ValueError):
        res.add(0.75)
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing.json")
    assert Results("unit", get_profile("smoke")).save() is None  # smoke never overwrites the book's results
    with pytest.raises(ValueError):
        Results("a/b", get_profile("book"))


def test_exercise_check_fails_on_wrong_answers(capsys):
    check("x", [0.125, 0.375], [0.125, 0.375])
    assert "correct" in capsys.readouterr().out
    check("x", None, [1.0])
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(AssertionError):
        check("x", [0.1, 0.4], [0.125, 0.375])
    with pytest.raises(AssertionError):
        check("x", [0.125], [0.125, 0.375])
    with pytest.raises(AssertionError):
        check("x", "abc", [1.0])


def test_a_chapters_exercise_check_uses_its_title_and_tolerance_and_computes_nothing_unanswered(capsys):
    from qutils.exercise import Exercise, checker

    calls = []

    def reference(which, scale):
        calls.append(which)
        return [0.5 * scale, 1.0]

    check_exercise = checker({"half": Exercise("exercise 1: halves", atol=0.01)}, reference)
    check_exercise("half", None, 2.0)
    assert capsys.readouterr().out == "exercise 1: halves: not answered yet\n" and calls == []
    check_exercise("half", [1.005, 1.0], 2.0)  # within the exercise's tolerance, not check's default 1e-6
    assert capsys.readouterr().out == "exercise 1: halves: correct\n" and calls == ["half"]
    with pytest.raises(AssertionError, match="exercise 1: halves: not quite .+tolerance 0.01"):
        check_exercise("half", [1.02, 1.0], 2.0)
    with pytest.raises(ValueError, match=r"no exercise 'halves'; the chapter's are \['half'\]"):
        check_exercise("halves", [1.0, 1.0], 2.0)
    with pytest.raises(ValueError, match="reads 'exercise N: what'"):
        Exercise("halves")
    with pytest.raises(ValueError, match="tolerances must be >= 0"):
        Exercise("exercise 2: x", atol=-1e-3)


def test_input_transform_defenses_keep_gradient_or_mask_it_as_documented():
    torch.manual_seed(0)
    plain = build("cleverhans_cnn").eval()
    x, y = torch.rand(4, 1, 28, 28), torch.randint(0, 10, (4,))

    def grad(model):
        xx = x.clone().requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(model(xx), y), xx)[0]

    assert grad(InputTransformModel(MedianSmoothing(2), plain)).abs().sum() > 0
    assert grad(InputTransformModel(BitDepthReduction(1), plain)).abs().sum() == 0


# --- the attack designed for input quantization -----------------------------------------------
def test_threshold_flip_changes_only_crossable_pixels_and_stays_in_the_ball(trained_cnn, mnist_test):
    from qutils.attacks import ThresholdFlip

    net = QuSecNet(constant_quantization(2, 50.0), trained_cnn).eval()
    x, y = mnist_test.x[:60], mnist_test.y[:60]
    atk = ThresholdFlip(0.2, net, steps=20, flips=4)
    xa = atk(net.deployed(), x, y)
    assert float((xa - x).abs().max()) <= 0.2 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    hard = net.quantizer.view("hard")
    changed = hard(xa) != hard(x)
    crossable = (x - 0.5).abs() <= 0.2
    assert not bool((changed & ~crossable).any())  # no pixel farther than eps from the threshold moved level
    acc = robust_accuracy(net.deployed(), atk, x, y).value
    clean = (net.deployed()(x).argmax(1) == y).float().mean().item()
    assert acc < clean  # it breaks some images the deployed model got right


def test_threshold_flip_refuses_models_without_an_input_quantizer(trained_cnn):
    from qutils.attacks import ThresholdFlip

    with pytest.raises(ValueError, match="input-quantization defense"):
        ThresholdFlip(0.1, trained_cnn)
    with pytest.raises(ValueError, match="per-pixel quantizer"):
        ThresholdFlip(0.1, InputTransformModel(MedianSmoothing(2), trained_cnn))


def test_the_chapter_ledger_registers_every_paper_number():
    from qutils.claims import Claim

    assert all(isinstance(c, Claim) for c in X.CLAIMS)
    assert {c.value for c in X.CLAIMS} >= {1.48, 97.51, 88.0, 90.0, 54.0, 50.0, 24.66}
    # every MNIST claim has a measurement or a stated reason
    for i, c in enumerate(X.CLAIMS):
        if c.dataset == "mnist":
            assert i in X.MEASURED_BY


def test_the_two_pages_ledgers_cover_every_claim_once():
    """The reproduction page records the claims the adaptive test does not answer, the adaptive page
    the FGSM claims at the headline radius; together every claim once, with the right numbers."""
    import pandas as pd

    from qutils.cascade import CascadeResult
    from qutils.claims import REFUTED

    cfg = X.config_for("mnist", get_profile("smoke"))
    tabs = {"fgsm": pd.DataFrame([
                {**Accuracy(k, 100).as_dict(), "defense": d, "setting": "white-box", "eps": 0.3}
                for d, k in ((X.NO_DEFENSE, 2), ("CQ n=2", 97))]),
            "cw": pd.DataFrame([{"defense": d, "setting": s, "targeted": False, **Accuracy(k, 100).as_dict()}
                                for d, s, k in ((X.NO_DEFENSE, "white-box", 0), ("CQ n=2", "white-box", 85),
                                                ("CQ n=2", "black-box", 90))])}
    tabs = {k: v.drop(columns=["params"], errors="ignore") for k, v in tabs.items()}

    def result(paper, worst):
        stages = [{"stage": "FGSM, the paper's attack", "role": "paper's attack", "after": Accuracy(paper, 100)},
                  {"stage": "Square", "role": "gradient-free", "after": Accuracy(worst, 100)}]
        return CascadeResult(Accuracy(99, 100), Accuracy(worst, 100), torch.zeros(100, dtype=torch.bool), [], stages)

    adaptive = {X.NO_DEFENSE: result(3, 0), "CQ n=2": result(97, 40)}
    rep = X.ledger(cfg, tabs, part="reproduction")
    ada = X.ledger(cfg, {"fgsm": tabs["fgsm"]}, adaptive, part="adaptive")  # the adaptive page measures FGSM only
    whole = X.ledger(cfg, tabs, adaptive)
    assert set(rep.records) | set(ada.records) == set(whole.records)
    assert not set(rep.records) & set(ada.records)
    assert len(ada.records) == 2  # FGSM at 0.3: the undefended CNN's 1.48% and CQ's 97.51%
    cq = next(r for r in ada.records.values() if r.claim.model == "CQ n=2")
    assert cq.ours.value == 97.0 and cq.adaptive.value == 40.0  # ours: the paper's FGSM row
    assert cq.status == REFUTED
    with pytest.raises(ValueError, match="unknown part"):
        X.ledger(cfg, tabs, adaptive, part="everything")
    # the reproduction part reads the C&W table too; a page that saves it under another name fails here
    with pytest.raises(ValueError, match=r"tables \['cw'\] in measured; it has \['C&W', 'fgsm'\]"):
        X.ledger(cfg, {"fgsm": tabs["fgsm"], "C&W": tabs["cw"]}, part="reproduction")
    with pytest.raises(ValueError, match=r"tables \['fgsm'\]"):  # the whole ledger reads both
        X.ledger(cfg, {"cw": tabs["cw"]}, adaptive)
    with pytest.raises(TypeError, match="dict of the page's tables"):
        X.ledger(cfg, tabs["cw"], part="reproduction")
    with pytest.raises(TypeError, match=r"measured\['cw'\] must be a data frame"):
        X.ledger(cfg, {**tabs, "cw": tabs["cw"].to_dict()}, part="reproduction")


def test_the_adaptive_pages_paper_protocol_equals_the_reproduction(trained_cnn, mnist_test):
    """The adaptive page measures the paper's FGSM again instead of rerunning reproduce(): the same
    rows, to the image (both pages' claims quote one number)."""
    import dataclasses

    from qutils.defenses import constant_quantization

    cfg = dataclasses.replace(X.config_for("mnist", get_profile("smoke")), eval_images=60, cw_images=4,
                              cw_sources=1, cw_steps=3)
    defs = {X.NO_DEFENSE: trained_cnn, "CQ n=2": QuSecNet(constant_quantization(2), trained_cnn).eval()}
    x, y = mnist_test.x[:80], mnist_test.y[:80]
    tabs = X.reproduce(defs, trained_cnn, x, y, cfg, strategies=[], progress=False)
    ours = X.paper_protocol(defs, x, y, cfg)["fgsm"]
    for name in defs:
        a = X.pick(tabs["fgsm"], defense=name, setting="white-box", eps=cfg.eps)
        b = X.pick(ours, defense=name, setting="white-box", eps=cfg.eps)
        assert (a.correct, a.n) == (b.correct, b.n) and a.n == 60


def test_the_zoo_trains_a_named_subset_and_refuses_unknown_names():
    from qutils.experiments import qusecnets as X
    from qutils.profiles import get_profile

    cfg = X.config_for("mnist", get_profile("smoke"))
    with pytest.raises(ValueError, match="no models \\['CQ n=9'\\]"):
        X.train_zoo(cfg, get_profile("smoke"), names=["No defense", "CQ n=9"], progress=False)


def test_binarization_bounds_bracket_the_cascade_image_by_image(trained_cnn, mnist_test):
    """The chapter's two-sided bounds: only binarizing models get a row; per row certified <= attacked;
    at the chapter's radius the upper bound uses the cascade it is given (never above it), at another
    radius the light cascade; the search's verdicts and the certified count add up."""
    import dataclasses

    from qutils.defenses import constant_quantization

    cfg = dataclasses.replace(X.config_for("mnist", get_profile("smoke")), certify_images=12, certify_nodes=5,
                              eps=0.1)
    cq = QuSecNet(constant_quantization(2), trained_cnn).eval()
    defs = {X.NO_DEFENSE: trained_cnn, "CQ n=2": cq}
    x, y = mnist_test.x[:20], mnist_test.y[:20]
    results = X.adaptive({"CQ n=2": cq}, x, y, cfg, light=True, progress=False)
    t = X.binarization_bounds(defs, x, y, cfg, results, epsilons=(0.05, 0.1))
    assert list(t.model) == ["CQ n=2", "CQ n=2"] and list(t.eps) == [0.05, 0.1] and (t.n == 12).all()
    assert (t.certified <= t.attacked).all() and (t.gap >= 0).all()
    assert list(t.attack) == ["APGD-CE + threshold flip", "the adaptive cascade"]
    at_eps = t[t.eps == 0.1].iloc[0]
    alone = int(results["CQ n=2"].robust[:12].sum()) / 12  # exact: a float32 mean of 7/12 lies below 7/12
    assert at_eps.attacked <= alone + 1e-12
    assert (t.n_certified + t.n_broken + t.n_unknown + t.n_misclassified == 12).all()
    assert (t.n_certified / 12 == t.certified).all()
    # the upper bound is what the attacks left, less what the search broke among those (what they missed)
    assert ((t.survived * 12).round() - t.n_missed == (t.attacked * 12).round()).all()
    assert at_eps.survived == alone

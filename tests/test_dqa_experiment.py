"""The DQA chapter's experiments package (qutils.experiments.dqa): settings, claims, ledger and the
measurements that do not need trained models, and the designed attack (qutils.attacks.AnnealedBPDA)."""
import pandas as pd
import pytest
import torch
import torch.nn as nn

from qutils.attacks import PGD, AnnealedBPDA
from qutils.claims import NO_DATA, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED
from qutils.defenses.dqa import dqa_lenet
from qutils.evaluate import Accuracy, robust_accuracy
from qutils.experiments import dqa as X
from qutils.profiles import get_profile


def test_config_per_dataset_and_profile():
    book = X.config_for("mnist", get_profile("book"))
    assert book.eps == 0.3 and book.pgd_steps == 40 and book.pgd_stepsize == 0.01  # table 4
    assert X.config_for("fashion_mnist", get_profile("book")).eps == 0.1
    assert X.config_for("cifar10", get_profile("full")).arch == "resnet18"  # table 2
    smoke = X.config_for("mnist", get_profile("smoke"))
    assert smoke.adv_train_subset < book.adv_train_subset and smoke.adaptive_images < book.adaptive_images
    with pytest.raises(ValueError, match="DQA chapter"):
        X.config_for("svhn", get_profile("book"))
    assert book.names()[0] == X.FULL_PRECISION and len(book.names()) == 7
    # issue 28.1: the book's cascade at AutoAttack's standard strength, checked for convergence
    assert book.at_standard and book.convergence_images <= book.adaptive_images
    assert X.config_for("mnist", get_profile("full")).at_standard and not smoke.at_standard


def test_names_round_trip_and_bad_names_raise():
    for kind in ("fixed", "dynamic"):
        for b in (1, 2, 3):
            assert X.parse_name(X.name_of(kind, b)) == (kind, b)
    assert X.parse_name(X.FULL_PRECISION) is None
    for bad in ("Stochastic 2-bit", "Fixed", "fixed two-bit"):
        with pytest.raises(ValueError, match="not a DQA model name"):
            X.parse_name(bad)


def test_build_model_keys_differ_for_every_model():
    cfg = X.config_for("mnist", get_profile("smoke"))
    keys = [repr(sorted(X.build_model(n, cfg)[1].items())) for n in cfg.names()]
    assert len(set(keys)) == len(keys)  # no two models share a checkpoint


def test_claims_cover_the_papers_tables():
    srcs = {c.source for c in X.CLAIMS}
    assert {"table 1", "table 2", "table 3", "table 5", "table 6", "table 4 (quoted)"} <= srcs
    assert len({c.key for c in X.CLAIMS}) == len(X.CLAIMS)
    t1 = [c for c in X.CLAIMS if c.source == "table 1"]
    assert len(t1) == 21  # 7 models x (clean, PGD, FGSM)
    head = [c for c in t1 if c.model == "Dynamic 2-bit" and c.attack == "PGD"]
    assert head[0].value == 98.75 and head[0].eps == 0.3 and head[0].steps == 40


def _fake_table1(value: float) -> pd.DataFrame:
    rows = []
    for name in X.config_for("mnist", get_profile("smoke")).names():
        for attack, g in (("none", "-"), ("PGD", "autograd"), ("PGD", "straight-through"), ("FGSM", "autograd"),
                          ("FGSM", "straight-through")):
            a = Accuracy(int(value * 1000), 1000, attack, "white-box", "Linf", 0.0 if attack == "none" else 0.3,
                         {"none": 0, "PGD": 40, "FGSM": 1}[attack])
            rows.append({"model": name, "gradient": g, **{k: v for k, v in a.as_dict().items() if k != "params"}})
    return pd.DataFrame(rows)


def test_ledger_parts_split_the_claims_and_record_every_mnist_claim():
    cfg = X.config_for("mnist", get_profile("smoke"))
    t1 = _fake_table1(0.985)

    class R:  # a cascade result with a low worst case
        worst = Accuracy(300, 1000)

    adaptive = {n: R() for n in cfg.names()}
    rep = X.ledger(cfg, {"table 1": t1}, part="reproduction").frame()
    ada = X.ledger(cfg, {"table 1": t1}, adaptive, part="adaptive").frame()
    whole = X.ledger(cfg, {"table 1": t1}, adaptive).frame()
    assert len(rep) + len(ada) == len(whole) == len(X.CLAIMS)
    assert set(rep.key).isdisjoint(ada.key)
    assert (ada.status != NOT_MEASURED).all() and len(ada) == 7
    cifar = whole[whole.dataset == "cifar10"]
    assert (cifar.status == NO_DATA).all()
    quoted = whole[whole.source == "table 4 (quoted)"]
    assert (quoted.status == NOT_MEASURED).all() and quoted.reason.str.len().gt(0).all()
    # the 30% worst case lies far below 98.75: refuted
    row = ada[ada.model == "Dynamic 2-bit"].iloc[0]
    assert row.status == "refuted by the adaptive attack"
    # far from the paper: not reproduced
    low = X.ledger(cfg, {"table 1": _fake_table1(0.5)}, part="reproduction").frame()
    assert (low[low.dataset == "mnist"].status.isin([NOT_REPRODUCED, NOT_MEASURED])).all()


def test_ledger_uses_the_seed_range():
    cfg = X.config_for("mnist", get_profile("smoke"))
    t1 = _fake_table1(0.95)  # 95.0 [93.5, 96.2]: the paper's 98.8 clean is outside
    seeds = pd.DataFrame([{"model": "Dynamic 2-bit", "attack": "none", "gradient": "-", "accuracy": a,
                           "ci_low": a - 0.01, "ci_high": a + 0.01} for a in (0.95, 0.99)])
    led = X.ledger(cfg, {"table 1": t1, "seeds": seeds}, part="reproduction").frame()
    clean = led[(led.model == "Dynamic 2-bit") & (led.attack == "none")].iloc[0]
    assert clean.status == REPRODUCED and clean.seed_min == 95.0 and clean.seed_max == 99.0


def test_ledger_bad_arguments():
    cfg = X.config_for("mnist", get_profile("smoke"))
    with pytest.raises(ValueError, match="part"):
        X.ledger(cfg, {"table 1": _fake_table1(0.9)}, part="everything")
    with pytest.raises(ValueError, match=r"the claims need the tables \['table 1'\]"):
        X.ledger(cfg, {"table1": _fake_table1(0.9)})
    with pytest.raises(TypeError, match="dict of the page's tables"):
        X.ledger(cfg, None)
    with pytest.raises(ValueError, match="adaptive results"):
        X.ledger(cfg, {"table 1": _fake_table1(0.9)}, part="adaptive")
    # Fashion-MNIST has no claims of its own: an empty ledger, CIFAR-10's not repeated
    assert len(X.ledger(X.config_for("fashion_mnist", get_profile("smoke")), {"table 1": _fake_table1(0.9)}).frame()) == 0


def test_finite_differences_see_zero_on_a_staircase_and_not_on_a_ramp():
    torch.manual_seed(0)
    x, y = torch.rand(4, 1, 28, 28), torch.randint(0, 10, (4,))
    ramp = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    step = dqa_lenet("fixed", 1)
    fd = X.finite_differences({"ramp": ramp, "step": step}, x, y, steps=(1e-4,), coords=32)
    assert fd[fd.model == "ramp"]["zero estimates (%)"].iloc[0] < 5
    assert fd[fd.model == "step"]["zero estimates (%)"].iloc[0] > 90


def test_batch_scope_per_sample_is_batch_independent():
    torch.manual_seed(0)
    net = dqa_lenet("fixed", 2)
    x, y = torch.rand(30, 1, 28, 28), torch.randint(0, 10, (30,))
    out = X.batch_scope(net, x, y, batch_size=10)
    assert out["changed (per-sample scope)"] == 0.0
    assert all(q.scope == "sample" for q in net.quantizers())  # the original is left alone
    with pytest.raises(ValueError, match="fixed quantizers"):
        X.batch_scope(dqa_lenet("dynamic", 2), x, y)


def test_views_of_a_full_precision_model_are_the_model():
    m = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    v = X.views(m)
    assert v["autograd"] is m and v["straight-through"] is m


def test_annealed_bpda_stays_in_the_ball_and_beats_autograd_on_a_staircase():
    torch.manual_seed(0)
    net = dqa_lenet("fixed", 1).eval()
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        y = net.deployed()(x).argmax(1)  # labels the network gets right
    atk = AnnealedBPDA(0.1, lambda z: net.view("sigmoid", z), (1.0, 4.0), steps_per_view=10)
    x_adv = atk(net.deployed(), x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    annealed = robust_accuracy(net.deployed(), atk, x, y).value
    naive = robust_accuracy(net.deployed(), PGD(0.1, steps=20), x, y).value
    assert annealed < naive
    assert torch.equal(atk(net.deployed(), x, y), x_adv)  # seeded
    with pytest.raises(ValueError, match="steepness"):
        AnnealedBPDA(0.1, lambda z: net, ())
    with pytest.raises(ValueError, match="views"):
        AnnealedBPDA(0.1, net)


def test_cifar10_full_configuration_builds_resnet18_models():
    """Table 2's models (a `full` configuration: no CIFAR-10 offline), checked on synthetic images."""
    cfg = X.config_for("cifar10", get_profile("full"))
    fp, key_fp = X.build_model(X.FULL_PRECISION, cfg)
    dq, key_dq = X.build_model("Dynamic 2-bit", cfg)
    assert key_fp["arch"] == "resnet18" and key_dq["arch"] == "dqa-resnet18"
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    assert fp.eval()(x).shape == (2, 10)
    out = dq.deployed().eval()(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.count_nonzero(g) == 0  # deployed exactly: no input gradient
    assert abs(cfg.eps - 8 / 255) < 1e-12 and cfg.pgd_steps == 7  # table 4's CIFAR-10 PGD


def test_the_chapters_exercises_check_the_reference_under_each_title(capsys):
    """The pages check each exercise by name; the two that need no model check right and wrong answers
    by hand-computed values (equation 3's evenly spaced levels, equation 8's levels from thresholds)."""
    cfg = X.config_for("mnist", get_profile("smoke"))
    assert set(X.check_exercise.exercises) == set(X.EXERCISES) == {"levels-3bit", "paper-levels", "fgsm-zero", "st-fgsm"}
    X.check_exercise("levels-3bit", [-1, -5 / 7, -3 / 7, -1 / 7, 1 / 7, 3 / 7, 5 / 7, 1], None, None, None, cfg)
    X.check_exercise("paper-levels", [-1, -0.6, -0.1, 0.2, 0.5, 0.7, 0.9, 1], None, None, None, cfg)
    assert capsys.readouterr().out == ("exercise 1: the 3-bit levels: correct\n"
                                       "exercise 2: equation 8's levels: correct\n")
    with pytest.raises(AssertionError, match="exercise 2: equation 8's levels: expected shape"):
        X.check_exercise("paper-levels", [-1, -0.6, -0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1], None, None, None, cfg)
    X.check_exercise("st-fgsm", None, None, None, None, cfg)  # not answered: runs no attack on the missing models
    assert capsys.readouterr().out == "exercise 4: straight-through FGSM on Fixed 1-bit: not answered yet\n"

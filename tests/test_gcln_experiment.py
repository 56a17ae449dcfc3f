"""The GCLN chapter's experiment code: settings, cache keys, claims and ledger, the CIFAR-10/SVHN configuration."""
import pandas as pd
import pytest
import torch

from qutils import models
from qutils.attacks import Transfer
from qutils.claims import NO_DATA
from qutils.defenses.gcln import GCLN
from qutils.evaluate import Accuracy, accuracy_row
from qutils.experiments import gcln as X
from qutils.profiles import get_profile


@pytest.mark.parametrize("profile", ["smoke", "book", "full"])
@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10", "svhn"])
def test_config_for_every_profile(dataset, profile):
    cfg = X.config_for(dataset, get_profile(profile))
    assert cfg.dataset == dataset and cfg.eps > 0 and cfg.eval_images > 0
    assert all(q > 0 for q in cfg.qs) and set(cfg.qs) <= set(cfg.sweep_qs())
    assert list(cfg.epsilons) == sorted(cfg.epsilons) and cfg.lowfreq_keep <= cfg.block
    size = 28 if dataset in ("mnist", "fashion_mnist") else 32
    assert (size + 2 * cfg.pad) % cfg.block == 0


def test_config_keeps_the_papers_ratios():
    book = X.config_for("mnist", get_profile("book"))
    assert book.eps == 0.3 and book.attack_steps == 10 and book.stepsize == pytest.approx(0.3 / 8)
    assert [255 * q for q in book.qs] == pytest.approx([0.3 * 255 * 5 / 8, 0.3 * 255 * 10 / 8])
    cifar = X.config_for("cifar10", get_profile("full"))
    assert [255 * q for q in cifar.qs] == pytest.approx([5, 10])  # the paper's Qs at its 8/255
    assert cifar.stepsize == pytest.approx(1 / 255)
    svhn = X.config_for("svhn", get_profile("full"))
    assert svhn.eps == pytest.approx(12 / 255) and svhn.stepsize == pytest.approx(3 / 255)
    assert X.config_for("fashion_mnist", get_profile("book")).eps == 0.1
    assert book.model_name(book.qs[1]) == "GCLN (Qs=96)"
    with pytest.raises(ValueError, match="unknown dataset"):
        X.config_for("imagenet", get_profile("book"))


def test_cleaner_cache_keys_differ_by_step_target_and_features():
    cfg = X.config_for("mnist", get_profile("smoke"))
    torch.manual_seed(0)
    a, b = models.build("cnn_a"), models.build("lenet")
    k = [X.cleaner_cache_config(q, a, b, cfg) for q in cfg.sweep_qs()]
    k.append(X.cleaner_cache_config(cfg.qs[0], b, a, cfg))
    assert len({repr(sorted(d.items())) for d in k}) == len(k), "two cleaners would share a checkpoint"


def test_cleaner_builds_for_cifar_and_svhn_shapes():
    for ds in ("cifar10", "svhn"):
        cfg = X.config_for(ds, get_profile("full"))
        g, d = X.build_cleaner(cfg, cfg.qs[0])
        x = torch.rand(2, 3, 32, 32)
        assert g(x).shape == x.shape and d(x).shape == (2,)
        target = models.build(cfg.target, in_channels=3)
        feats = models.build(cfg.feature_net, in_channels=3, input_size=32)
        assert GCLN(g, target).eval()(x).shape == (2, 10) and feats.features(x).dim() == 4


def test_paper_access_crafts_on_the_classifier_behind_an_input_defense():
    cfg = X.config_for("mnist", get_profile("smoke"))
    g, _ = X.build_cleaner(cfg, cfg.qs[0])
    target = models.build("cnn_a")
    m = GCLN(g, target)
    pgd = X.paper_attacks(cfg)["PGD"]
    a = X.paper_access(pgd, m)
    assert isinstance(a, Transfer) and a.other is target
    assert X.paper_access(pgd, target) is pgd
    assert set(X.paper_attacks(cfg)) == {"FGS", "PGD", "BIM", "C&W"}
    assert X.paper_attacks(cfg)["PGD"].steps == cfg.attack_steps


def test_claims_registry_and_parts():
    assert len(X.CLAIMS) == len({c.key for c in X.CLAIMS})
    n_values = sum(v is not None for t in ("table 1", "table 3", "table 4")
                   for row in X.PAPER[t]["rows"].values() for v in row) + len(X.PAPER["table 2"]["rows"])
    assert len(X.CLAIMS) == n_values  # every number in the tables, once
    parts = {p: [c for c in X.CLAIMS if X.part_of(c) == p] for p in X.PARTS}
    assert sum(len(v) for v in parts.values()) == len(X.CLAIMS)
    assert {c.model for c in parts["adaptive"]} == {"GCLN (Qs=5)", "GCLN (Qs=10)"}
    assert all(c.dataset == "svhn" for c in parts["second dataset"])
    with pytest.raises(ValueError, match="unknown part"):
        X.ledger(None, part="everything")


def _row(model, table, column, k):
    return {**accuracy_row(Accuracy(k, 100)), "model": model, "table": table, "column": column}


def test_ledger_reasons_carry_the_port():
    cfg = X.config_for("mnist", get_profile("smoke"))
    roles = X.roles(cfg)
    measured = pd.DataFrame([_row(roles["GCLN (Qs/eps=10/8)"], "table 1", "FGS", 71),
                             _row("No defense", "table 1", "clean", 98)])
    ports = X.port_table(measured, None, cfg, roles)
    assert len(ports) == 2 and set(ports.role) == {"GCLN (Qs/eps=10/8)", "No defense"}
    led = X.ledger(ports, part="reproduction")
    df = led.frame()
    assert (df.status == NO_DATA).all() and (df.reason.str.len() > 0).all()
    fgs = df[(df.model == "GCLN (Qs=10)") & (df.attack == "FGS") & (df.source == "table 1")].iloc[0]
    assert "Port to mnist" in fgs.reason and "71.0" in fgs.reason
    other = df[(df.model == "PixelDefend") & (df.source == "table 1")].iloc[0]
    assert "quotes" in other.reason and "Port" not in other.reason


def test_feature_squeezing_is_bounded_behind_the_chapters_cascade_and_checked_for_convergence(trained_cnn, mnist_test):
    """GCLN's chapter bounds its one binarizing model (feature squeezing, 1 bit) from both sides: the
    cascade it ran at the chapter's radius, its light cascade elsewhere (with the threshold flip the
    chapter now designs for it); the upper bound never exceeds what the attacks left. The convergence
    check reruns the cascade with twice the budget on the first images and can only lower the worst case."""
    import dataclasses

    from qutils.defenses import BitDepthReduction, InputTransformModel

    cfg = dataclasses.replace(X.config_for("mnist", get_profile("smoke")), eps=0.1, certify_images=10,
                              certify_epsilons=(0.05, 0.1), convergence_images=6)
    fs = InputTransformModel(BitDepthReduction(1), trained_cnn).eval()
    models_ = {"No defense": trained_cnn, "Feature squeezing": fs}
    x, y = mnist_test.x[:12], mnist_test.y[:12]
    stages = X.cascade_stages(fs, cfg)
    assert "threshold flip (designed)" in [s.label for s in stages]
    results = X.adaptive(models_, x, y, cfg, progress=False)
    t = X.binarization_bounds(models_, x, y, cfg, results)
    assert list(t.model) == ["Feature squeezing"] * 2 and list(t.eps) == [0.05, 0.1] and (t.n == 10).all()
    assert list(t.attack) == ["the light cascade", "the adaptive cascade"]
    at = t[t.eps == 0.1].iloc[0]
    assert at.survived == pytest.approx(float(results["Feature squeezing"].robust[:10].float().mean()))
    assert ((t.survived * 10).round() - t.n_missed == (t.attacked * 10).round()).all()
    assert (t.certified <= t.attacked).all()
    conv = X.convergence(models_, x, y, cfg, results).set_index("model")
    assert (conv.n == 6).all() and (conv["change (points)"] >= 0).all()
    for name, r in conv.iterrows():
        assert r["worst, stronger"].correct <= r["worst"].correct == int(results[name].robust[:6].sum())
    assert "x 2" in conv.stronger.iloc[0]


def test_the_chapters_exercises_check_the_reference_under_each_title(capsys):
    """Every exercise the pages check by name has a reference; the cheap ones check right and wrong answers."""
    cfg = X.config_for("mnist", get_profile("smoke"))
    assert set(X.check_exercise.exercises) == set(X.EXERCISES) == {"grid", "dc", "skip-g", "noise", "lowfreq"}
    X.check_exercise("grid", [0.5, -0.5, 1.0], None, None, None, cfg)
    X.check_exercise("dc", 4.0, None, None, None, cfg)  # an 8x8 block of 0.5: DC = 8 * 0.5 (orthonormal DCT)
    assert capsys.readouterr().out == "exercise 1: rounding: correct\nexercise 2: the DC coefficient: correct\n"
    with pytest.raises(AssertionError, match="exercise 2: the DC coefficient: not quite"):
        X.check_exercise("dc", 0.5, None, None, None, cfg)
    with pytest.raises(ValueError, match="no exercise 'nope'"):
        X.exercise_reference("nope", None, None, None, cfg)

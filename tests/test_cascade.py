"""The adaptive cascade: each attack only on the survivors gives the same worst case as every
attack on every image."""
import pytest
import torch

from qutils.attacks import APGD, BIM, FGSM, PGD, Adaptive, Square
from qutils.cascade import CLEAN_ERROR, ROBUST, Stage, adaptive_evaluation, adaptive_stages, cascade
from qutils.defenses import QuSecNet, constant_quantization
from qutils.evaluate import predict, wilson_interval


def _every_attack_on_every_image(model, attacks, x, y):
    ok = predict(model, x) == y
    for a in attacks:
        ok &= predict(model, a(model, x, y)) == y
    return ok


def test_cascade_equals_every_attack_on_every_image_for_deterministic_attacks(trained_cnn_f64, mnist_test):
    trained_cnn = trained_cnn_f64  # survivors are batched differently: compared in float64 (see the fixture)
    x, y = mnist_test.x[:120].double(), mnist_test.y[:120]
    attacks = [FGSM(0.1), BIM(0.1, steps=10), APGD(0.1, steps=10, random_start=False)]
    res = cascade(trained_cnn, [Stage(a.name, a) for a in attacks], x, y, batch_size=50, progress=False)
    full = _every_attack_on_every_image(trained_cnn, attacks, x, y)
    assert torch.equal(res.robust, full)
    assert res.worst.correct == int(full.sum())
    # every image is accounted for once, and the rows add up
    counts = res.breakdown()
    assert counts.get(ROBUST, 0) == res.worst.correct
    assert counts.get(CLEAN_ERROR, 0) == len(x) - res.clean.correct
    t = res.table()
    assert t["broken"].sum() == res.clean.correct - res.worst.correct
    assert list(t["attacked"])[1:] == list(t["robust"])[:-1]  # a later stage sees only the survivors
    assert (t["seconds"] >= 0).all()


def test_cascade_with_random_attacks_agrees_within_the_interval(trained_cnn, mnist_test):
    x, y = mnist_test.x[:100], mnist_test.y[:100]
    attacks = [PGD(0.1, steps=10), Square(0.1, queries=50)]
    res = cascade(trained_cnn, [Stage(a.name, a) for a in attacks], x, y, progress=False)
    k = int(_every_attack_on_every_image(trained_cnn, attacks, x, y).sum())
    lo, hi = wilson_interval(k, len(x))
    assert lo <= res.worst.value <= hi


def test_adaptive_stages_follow_the_protocol():
    torch.manual_seed(0)
    net = QuSecNet(constant_quantization(2, 50.0), __import__("qutils.models", fromlist=["build"]).build("cnn_a"))
    paper = Stage("FGSM (paper)", FGSM(0.3), "paper's attack")
    stages = adaptive_stages(net, 0.3, steps=5, targets=2, square_queries=20, paper_attack=paper)
    labels = [s.label for s in stages]
    assert labels[0] == "FGSM (paper)" and labels[-1].startswith("Square")
    assert sum(l.startswith("APGD-CE") for l in labels) == len(net.attack_views())
    assert [l for l in labels if l.startswith("APGD-T")] == ["APGD-T (straight-through)"]  # the first view
    every = adaptive_stages(net, 0.3, steps=5, targets=2, square_queries=20, targeted_views="all")
    assert sum(s.label.startswith("APGD-T") for s in every) == len(net.attack_views())
    # views with the deployed forward stop early; the soft layer (another function) does not
    by_label = {s.label: s.attack for s in stages}
    assert isinstance(by_label["APGD-CE (straight-through)"], Adaptive)
    assert by_label["APGD-CE (straight-through)"].attack.early_stop
    assert not by_label["APGD-CE (soft layer)"].attack.early_stop


def test_adaptive_evaluation_breaks_a_quantized_model_that_plain_gradients_cannot(trained_cnn, mnist_test):
    """Bit-depth reduction in front of a plain CNN: autograd sees a zero gradient, the cascade's
    straight-through APGD does not."""
    from qutils.defenses import BitDepthReduction, InputTransformModel

    x, y = mnist_test.x[:60], mnist_test.y[:60]
    fs = InputTransformModel(BitDepthReduction(3), trained_cnn).eval()
    plain = cascade(fs, [Stage("APGD autograd", APGD(0.15, steps=10))], x, y, progress=False)
    res = adaptive_evaluation(fs, x, y, 0.15, steps=10, targets=1, square_queries=30, progress=False)
    assert res.worst.value < plain.worst.value
    assert res.worst.value <= res.clean.value


def test_cascade_rejects_bad_stages_and_inputs(trained_cnn, mnist_test):
    x, y = mnist_test.x[:10], mnist_test.y[:10]
    with pytest.raises(ValueError, match="at least one stage"):
        cascade(trained_cnn, [], x, y)
    with pytest.raises(ValueError, match="unique"):
        cascade(trained_cnn, [Stage("a", FGSM(0.1)), Stage("a", FGSM(0.2))], x, y)
    with pytest.raises(ValueError, match="Attack"):
        Stage("x", "fgsm")
    with pytest.raises(ValueError, match="labels must be"):
        cascade(trained_cnn, [Stage("a", FGSM(0.1))], x, y + 10)


def _result(paper_k, worst_k, n=200):
    import torch

    from qutils.cascade import CascadeResult
    from qutils.evaluate import Accuracy

    return CascadeResult(Accuracy(n, n), Accuracy(worst_k, n), torch.zeros(n, dtype=torch.bool), [],
                         [{"stage": "paper's attack", "role": "paper's attack", "after": Accuracy(paper_k, n)}])


def test_gain_and_compare_tables():
    from qutils.cascade import compare_table, gain_table

    res = {"defense": _result(180, 20), "baseline": _result(100, 100), "twin": _result(178, 25)}
    g = gain_table(res).set_index("model")
    assert g.loc["defense", "drop (points)"] == pytest.approx(80) and g.loc["baseline", "drop (points)"] == 0
    c = compare_table(res, "defense", ["baseline", "twin", "absent"]).set_index("defense against")
    assert list(c.index) == ["baseline", "twin"]
    assert c.loc["baseline", "paper's attack"] == "higher" and c.loc["baseline", "adaptive worst case"] == "lower"
    assert c.loc["twin", "paper's attack"] == "no significant difference"


def test_convergence_table_counts_what_more_budget_broke():
    """The stronger cascade's verdict is added image by image on its first images: an image survives
    only if it survived both; the change is in points on those images, converged below the tolerance."""
    from qutils.cascade import CascadeResult, convergence_table
    from qutils.metrics import Accuracy

    def result(robust):
        r = torch.tensor(robust)
        return CascadeResult(Accuracy(len(r), len(r)), Accuracy(int(r.sum()), len(r)), r, ["x"] * len(r))

    base = {"A": result([True, True, False, True, True, True, False, True]),
            "B": result([True] * 8)}
    strong = {"A": result([True, False, True, True]),  # breaks image 1; "saves" image 2 (no: both must hold)
              "B": result([True] * 4)}
    t = convergence_table(base, strong, "x 2").set_index("model")
    assert t.loc["A", "n"] == 4 and t.loc["A", "newly broken"] == 1
    assert t.loc["A", "worst"].correct == 3 and t.loc["A", "worst, stronger"].correct == 2
    assert t.loc["A", "change (points)"] == pytest.approx(25.0) and not t.loc["A", "converged"]
    assert t.loc["B", "change (points)"] == 0 and t.loc["B", "converged"]
    with pytest.raises(ValueError, match="no cascade result"):
        convergence_table({"A": base["A"]}, strong, "x 2")
    with pytest.raises(ValueError, match="ran on 8 images"):
        convergence_table({"A": result([True] * 4)}, {"A": base["A"]}, "x 2")


def test_the_convergence_table_glues_what_the_prose_quotes(monkeypatch):
    """report.convergence(conv, prefix) glues the images, the stronger budget, the largest change and
    the verdict under the page's prefix, from the table itself; a blank prefix is refused."""
    from qutils import report
    from qutils.cascade import CascadeResult, convergence_table
    from qutils.metrics import Accuracy

    def result(robust):
        r = torch.tensor(robust)
        return CascadeResult(Accuracy(len(r), len(r)), Accuracy(int(r.sum()), len(r)), r, ["x"] * len(r))

    conv = convergence_table({"A": result([True] * 4), "B": result([True] * 4)},
                             {"A": result([True, False, True, True]), "B": result([True] * 4)}, "x 2")
    glued = {}
    monkeypatch.setattr(report, "glue", lambda k, v, display=False: glued.__setitem__(k, v))
    report.convergence(conv, prefix="pg")
    assert glued == {"pg-conv-n": 4, "pg-conv-what": "x 2", "pg-conv-max": "25.0",
                     "pg-conv-verdict": "A did not converge: its worst case is an upper bound that more attack "
                                        "still lowers"}
    glued.clear()
    report.convergence(conv)
    assert glued == {}
    with pytest.raises(ValueError, match="prefix"):
        report.convergence(conv, prefix=" ")


def test_a_stronger_config_doubles_every_attack_budget_and_nothing_else():
    import dataclasses

    from qutils.experiments import dqa, gcln, qlayer, qusecnets, sqa
    from qutils.profiles import get_profile

    for M in (qusecnets, qlayer, dqa, sqa, gcln):
        cfg = M.config_for("mnist", get_profile("book"))
        s = cfg.stronger()
        assert s.adaptive_steps == 2 * cfg.adaptive_steps and s.square_queries == 2 * cfg.square_queries
        assert s.apgd_targets == min(9, 2 * cfg.apgd_targets)
        for f in ("flip_steps", "anneal_steps", "eot"):
            if hasattr(cfg, f):
                assert getattr(s, f) == 2 * getattr(cfg, f), (M.__name__, f)
        changed = {f.name for f in dataclasses.fields(cfg) if getattr(s, f.name) != getattr(cfg, f.name)}
        assert changed <= {cfg.STEPS_FIELD, "apgd_targets", *cfg.BUDGET_FIELDS}, (M.__name__, changed)
        assert s.eps == cfg.eps and s.seed == cfg.seed
    cfg = gcln.config_for("mnist", get_profile("book"))
    assert cfg.stronger(4).apgd_targets == 9  # capped at the other classes
    with pytest.raises(ValueError):
        cfg.stronger(1)


def test_standard_strength_is_autoattacks_budget():
    """A config is at standard strength only with APGD 100 steps, 9 targets and Square 5000 queries (or
    more); each shortfall is named. QuSecNets' book cascade runs at it, the smoke profile does not."""
    import dataclasses

    from qutils.experiments import gcln, qusecnets
    from qutils.profiles import get_profile

    book = qusecnets.config_for("mnist", get_profile("book"))
    assert book.at_standard and book.below_standard == []
    assert book.stronger().at_standard  # more budget stays at standard
    light = dataclasses.replace(book, pgd_steps=99)
    assert not light.at_standard and light.below_standard == ["APGD 99 steps (standard 100)"]
    light = dataclasses.replace(book, apgd_targets=3, square_queries=1000)
    assert light.below_standard == ["APGD-T 3 targets (standard 9)", "Square 1000 queries (standard 5000)"]
    smoke = gcln.config_for("mnist", get_profile("smoke"))
    assert not smoke.at_standard and len(smoke.below_standard) == 3
    assert book.budget.startswith("APGD 100 steps, 9 targets, Square 5000 queries")
    assert "threshold flip 100 steps" in book.budget


def test_convergence_check_runs_the_stronger_cascade_on_the_first_images():
    """convergence_check hands the chapter's adaptive function the doubled config and the first
    ``convergence_images`` images, and compares its verdicts with the cascades as run."""
    import dataclasses

    from qutils.cascade import CascadeResult, convergence_check
    from qutils.experiments import qusecnets
    from qutils.metrics import Accuracy
    from qutils.profiles import get_profile

    cfg = dataclasses.replace(qusecnets.config_for("mnist", get_profile("book")), convergence_images=4)
    seen = {}

    def result(robust):
        r = torch.tensor(robust)
        return CascadeResult(Accuracy(len(r), len(r)), Accuracy(int(r.sum()), len(r)), r, ["x"] * len(r))

    def adaptive(models, x, y, c, n=None, progress=True, **kw):
        seen.update(cfg=c, n=n, kw=kw, progress=progress)
        return {"A": result([True, False, True, True][:n])}

    base = {"A": result([True] * 6)}
    t = convergence_check(adaptive, {"A": None}, None, None, cfg, base, source="s")
    assert seen["n"] == 4 and seen["kw"] == {"source": "s"} and not seen["progress"]
    assert seen["cfg"].pgd_steps == 2 * cfg.pgd_steps and seen["cfg"].square_queries == 2 * cfg.square_queries
    row = t.set_index("model").loc["A"]
    assert row["newly broken"] == 1 and not row.converged and row.stronger.endswith("(x 2)")
    from qutils.chapter import CascadeSettings

    @dataclasses.dataclass
    class NoCheck(CascadeSettings):  # a chapter config that declares no convergence check
        apgd_steps: int = 10

    with pytest.raises(ValueError, match="convergence_images"):
        convergence_check(adaptive, {}, None, None, NoCheck(), base)

    import pandas as pd

    from qutils.report import convergence_verdict

    assert convergence_verdict(t) == "A did not converge: its worst case is an upper bound that more attack still lowers"
    two = pd.concat([t, t.assign(model="B")], ignore_index=True)
    assert convergence_verdict(two).startswith("A, B did not converge: their worst cases are upper bounds")
    assert convergence_verdict(t.assign(converged=True)).endswith("the cascade converged")

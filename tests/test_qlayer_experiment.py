"""The Q-Layer chapter's experiment driver: model specs, adversarial training on the E-path, the
paper-versus-ours tables, figure 2's divergence."""
import math

import numpy as np
import pandas as pd
import pytest

from qutils import report
import torch

from qutils.defenses.qlayer import EPath, QLayerNet
from qutils.experiments import qlayer as ql
from qutils.profiles import get_profile
from qutils.train import TrainConfig, _adversarial_batch, train
from qutils.data import TensorData
from qutils.evaluate import accuracy


def cfg(ds="mnist", profile="smoke"):
    return ql.config_for(ds, get_profile(profile))


def test_config_per_dataset_and_profile():
    m, f = cfg("mnist", "book"), cfg("fashion_mnist", "book")
    assert m.epsilons == (0.2, 0.3) and m.adv_eps == 0.2  # section 4.1.1
    assert f.epsilons == (0.1, 0.2) and f.adv_eps == 0.1
    assert len(m.seeds) >= 2 and len(cfg("mnist", "full").seeds) == 3  # appendix B: three initialisations
    assert len(cfg("mnist", "full").ablation_seeds) == 3 and cfg("mnist", "book").ablation_seeds == (0,)
    with pytest.raises(ValueError, match="MNIST and Fashion-MNIST"):
        ql.config_for("cifar10", get_profile("smoke"))


def test_model_specs():
    c = cfg()
    grid = ql.build_model("K=2, nc=16", c)
    assert isinstance(grid, QLayerNet) and grid.qlayer.heads == 2 and grid.qlayer.nc == 16
    inner = ql.build_model("Q-inner + adv", c)
    assert inner.qlayer.heads == 4  # section 4.4: the parameter setting of Q-large
    spec = ql.spec("Q-inner", c)  # appendix B: MNIST Q-inner uses alpha = beta = 1e-4 and strategy 2
    assert spec["loss"].alpha == pytest.approx(1e-4) and spec["hook"].strategy == 2
    assert ql.spec("Q-inner", cfg("fashion_mnist"))["hook"].strategy == 1
    assert ql.build_model("Q-large, shared", c).shared
    assert not isinstance(ql.build_model("CNN", c), QLayerNet)
    assert ql.spec("Q-base + adv", c)["adv"] and not ql.spec("Q-base", c)["adv"]
    with pytest.raises(ValueError, match="unknown model"):
        ql.build_model("Q-huge", c)


def test_adversarial_training_crafts_on_the_e_path():
    """On the Q-path the input gradient is zero, so FGSM returns the clean batch: adversarial
    training would silently be clean training. Crafted on the E-path, the batch moves by eps."""
    torch.manual_seed(0)
    net = ql.build_model("Q-base", cfg())
    x, y = torch.rand(8, 1, 28, 28) * 0.5 + 0.25, torch.randint(0, 10, (8,))
    tc = TrainConfig(epochs=1, batch_size=8, adv="fgsm", adv_eps=0.2)
    assert torch.equal(_adversarial_batch(tc, net, x, y, 0), x)
    xa = _adversarial_batch(tc, EPath()(net), x, y, 0)
    assert (xa - x).abs().max() == pytest.approx(0.2, abs=1e-6)
    assert ((xa - x).abs() > 0.1).float().mean() > 0.9


def test_train_uses_craft_on():
    calls = []

    def spy(model):
        calls.append(1)
        return model.view("e")

    torch.manual_seed(0)
    net = ql.build_model("Q-base", cfg())
    data = TensorData(torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,)), "mnist", "train")
    train(net, data, None, TrainConfig(epochs=1, batch_size=8, adv="fgsm", adv_eps=0.1, select="last"),
          device=torch.device("cpu"), progress=False, loss_fn=ql.spec("Q-base", cfg())["loss"], craft_on=spy)
    assert len(calls) == 2  # once per batch


def test_kl_divergence():
    p = np.array([10, 20, 30])
    assert ql.kl_divergence(p, p) == pytest.approx(0.0)
    assert ql.kl_divergence(p, p[::-1]) > 0
    # without smoothing, the textbook value
    assert ql.kl_divergence([1, 1], [1, 3], smoothing=0) == pytest.approx(0.5 * math.log(0.5 / 0.25)
                                                                             + 0.5 * math.log(0.5 / 0.75))
    assert math.isfinite(ql.kl_divergence([5, 0], [0, 5]))  # smoothing keeps empty bins finite
    with pytest.raises(ValueError):
        ql.kl_divergence([1, 2], [1, 2, 3])


def test_concept_usage_counts_every_panel():
    torch.manual_seed(0)
    net = ql.build_model("Q-large", cfg()).eval()
    x = torch.rand(6, 1, 28, 28)
    counts, index = ql.concept_usage(net, x, batch_size=4)
    assert counts.shape == (4, 64) and index.shape == (4, 6, 100)  # 10 x 10 panels per image
    assert (counts.sum(1) == 6 * 100).all()
    # the same indices as the layer itself assigns
    assert torch.equal(index.reshape(4, -1), net.qlayer(net.encoder(x)).index)


def test_distribution_shift_is_zero_without_perturbation():
    torch.manual_seed(0)
    net = ql.build_model("Q-base", cfg()).eval()
    x, y = torch.rand(20, 1, 28, 28), torch.randint(0, 10, (20,))
    same = ql.distribution_shift(net, net.view("e"), x, y, 0.0)
    assert same["kl_pixels"] == pytest.approx(0) and same["kl_concepts"] == pytest.approx(0)
    assert same["pixels_changed"] == 0 and same["concepts_changed"] == 0
    moved = ql.distribution_shift(net, net.view("e"), x, y, 0.3)
    assert moved["pixels_changed"] > 0.5 and moved["kl_pixels"] > 0


def _frame(rows):
    base = {"threat_model": "-", "norm": "Linf", "steps": 1, "correct": 0}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_compare_puts_ours_next_to_the_paper():
    ours = _frame([
        {"model": "CNN", "path": "-", "source": "-", "attack": "none", "eps": 0.0, "accuracy": 0.99, "ci_low": 0.98,
         "ci_high": 0.995, "n": 1000},
        {"model": "Q-base", "path": "Q-path", "source": "S", "attack": "FGSM", "eps": 0.3, "accuracy": 0.5,
         "ci_low": 0.45, "ci_high": 0.55, "n": 500},
        {"model": "Q-base", "path": "E-path", "source": "S", "attack": "FGSM", "eps": 0.3, "accuracy": 0.1,
         "ci_low": 0.05, "ci_high": 0.15, "n": 500},
        {"model": "Q-base", "path": "Q-path", "source": "other", "attack": "FGSM", "eps": 0.3, "accuracy": 0.9,
         "ci_low": 0.85, "ci_high": 0.95, "n": 500},
    ])
    t = ql.compare(ours, "1a", source="S").data.set_index("model")
    assert list(t.columns) == list(ql.PAPER["1a"]["columns"])
    assert t.loc["CNN", "clean"] == "98.73 | 99.0 [98.0,\u00a099.5]"
    assert t.loc["Q-base", "FGSM 0.3"] == "52.69 | 50.0 [45.0,\u00a055.0]"  # the Q-path, from source S only
    assert t.loc["Q-base", "BIM 0.3"] == "38.22 | –"  # not measured: the paper's number alone
    assert "Q-large" not in t.index  # rows we measured nothing of are left out
    long = ql.compare_long(ours, "6a E-path", path="E-path", source="S")
    row = long[long.column == "FGSM 0.3"].iloc[0]
    assert row.paper == 37.65 and row.ours == 10.0 and not row["paper inside our CI"]
    with pytest.raises(ValueError, match="unknown table"):
        ql.compare(ours, "12")


def test_compare_splits_a_wide_table_per_radius():
    """Table 2a has 7 columns of numbers: it comes as one table per radius, each narrow enough for
    the text column, and every cell of the paper's table appears exactly once."""
    ours = _frame([{"model": "CNN", "path": "-", "source": "-", "attack": "CW-Linf", "eps": 0.3, "accuracy": 0.25,
                    "ci_low": 0.2, "ci_high": 0.3, "n": 500}])
    panels = ql.compare(ours, "2a")
    assert isinstance(panels, report.Panels) and [p.caption for p in panels.parts] == ["ε = 0.2", "ε = 0.3"]
    first, second = (p.data for p in panels.parts)
    assert list(first.columns) == ["model", "clean", "FGSM", "BIM", "CW"]
    assert list(second.columns) == ["model", "FGSM", "BIM", "CW"]
    assert second.set_index("model").loc["CNN", "CW"] == "39.95 | 25.0 [20.0,\u00a030.0]"
    assert first.set_index("model").loc["CNN", "CW"] == "58 | –"
    assert sum(p.data.shape[1] - 1 for p in panels.parts) == len(ql.PAPER["2a"]["columns"])
    html = panels._repr_html_()
    assert html.count("<table") == 2 and "ε = 0.3" in html
    assert not isinstance(ql.compare(ours, "1a"), report.Panels)  # five columns fit


def test_paper_tables_are_consistent():
    """The rows the paper prints twice agree (a transcription check)."""
    P = ql.PAPER
    assert P["6a Q-path"]["rows"]["Q-large"] == {k: P["1a"]["rows"]["Q-large"][k] for k in P["6a Q-path"]["columns"]}
    assert P["3a"]["rows"]["Q-large"] == P["1a"]["rows"]["Q-large"]
    assert P["6b Q-path"]["rows"]["Q-base + adv"] == P["2a"]["rows"]["Q-base + adv"]
    assert P["8a"]["rows"]["K=1"]["nc=64"] == P["1a"]["rows"]["Q-base"]["FGSM 0.3"]
    assert P["8b"]["rows"]["K=4"]["nc=64"] == P["1a"]["rows"]["Q-large + adv"]["FGSM 0.3"]
    for t in P.values():
        for row in t["rows"].values():
            assert set(row) == set(t["columns"]) and all(0 <= v <= 100 for v in row.values())


def test_white_box_rejects_unknown_view():
    with pytest.raises(ValueError, match="via"):
        ql.white_box({}, torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), cfg(), via="q")


def _spread_concepts(net, x):
    with torch.no_grad():  # concepts spread over the panels (strategy 2's initialisation), so that panels differ
        panels = net.qlayer.panels(net.encoder(x))
        net.qlayer.concepts[0] = panels[torch.randperm(len(panels))[:64]]


def test_adaptive_cascade_breaks_an_untrained_q_base():
    """The cascade on a Q-base: the paper's attack (E-path FGSM) first, then APGD through the
    straight-through view and the others; the worst case is at most every stage's accuracy, and the
    deployed Q-path's own gradient is exactly zero while every view's is not."""
    torch.manual_seed(0)
    net = ql.build_model("Q-base", cfg()).eval()
    x = torch.rand(20, 1, 28, 28)
    _spread_concepts(net, x)
    y = net(x).argmax(1)  # every image "correct" before the attack
    res = ql.adaptive({"Q-base": net}, x, y, cfg(), eps=0.3, progress=False)["Q-base"]
    stages = [s["stage"] for s in res.stages]
    assert stages[0].startswith("FGSM on the E-path") and any("straight-through" in s for s in stages)
    assert any("designed" in s for s in stages) and stages[-1].startswith("Square")
    assert res.clean.value == 1.0 and res.worst.value < 1.0
    assert res.worst.value <= min(s["accuracy"] for s in res.stages) + 1e-12
    g = ql.gradient_table({"Q-base": net}, x[:8], y[:8]).set_index("view")
    assert g.loc["Q-path, autograd", "gradient L1 norm"] == 0
    assert (g.drop("Q-path, autograd")["gradient L1 norm"] > 0).all()
    assert g.loc["straight-through", "cosine with straight-through"] == pytest.approx(1.0, abs=1e-5)
    summary = ql.adaptive_table({"Q-base": res})
    assert summary.loc[0, "worst"] == res.worst.value and summary.loc[0, "paper"] == res.stages[0]["accuracy"]


def test_cascade_transfers_from_the_undefended_cnn_by_default():
    """Issue 28.1: every Q-Layer cascade has a transfer stage from the chapter's undefended CNN (when
    the models hold it), the CNN's own cascade none; an explicit ``source`` replaces it."""
    torch.manual_seed(0)
    c = cfg()
    nets = {"CNN": ql.build_model("CNN", c).eval(), "Q-base": ql.build_model("Q-base", c).eval()}
    x = torch.rand(6, 1, 28, 28)
    y = nets["Q-base"](x).argmax(1)
    res = ql.adaptive(nets, x, y, c, eps=0.3, progress=False)
    transfer = [s for s in res["Q-base"].stages if s["stage"].startswith("transfer")]
    assert len(transfer) == 1 and "undefended CNN" in transfer[0]["attack"]
    assert not any(s["stage"].startswith("transfer") for s in res["CNN"].stages)
    alone = ql.adaptive({"Q-base": nets["Q-base"]}, x, y, c, eps=0.3, progress=False)["Q-base"]
    assert not any(s["stage"].startswith("transfer") for s in alone.stages)


def test_claims_are_registered_once_and_split_by_notebook():
    from qutils.claims import Ledger

    Ledger(ql.CLAIMS)  # raises on a key registered twice
    c = cfg("mnist", "book")
    tables = ("1a", "2a", "6a E-path", "6b E-path", "7a", "11 Q-path")
    every = {x.key for x in ql.claims_of(c, tables)}
    head = {x.key for x in ql.claims_of(c, tables, "headline")}
    rest = {x.key for x in ql.claims_of(c, tables, "rest")}
    assert head | rest == every and not head & rest and head and rest
    assert all(x.eps == 0.3 and "E-path output" not in x.model for x in ql.claims_of(c, tables, "headline"))
    assert all(x.dataset == "fashion_mnist" for x in ql.claims_of(cfg("fashion_mnist"), ("1b", "2b", "7b")))
    assert not ql.claims_of(cfg("fashion_mnist"), tables)  # MNIST tables have no Fashion-MNIST claims
    with pytest.raises(ValueError, match="part"):
        ql.claims_of(c, tables, "some")


def test_ledger_joins_our_number_and_the_worst_case():
    from qutils.claims import NOT_MEASURED, NOT_REPRODUCED, REFUTED
    from qutils.evaluate import Accuracy

    c = cfg("mnist", "book")
    paper = ql.PAPER["1a"]["rows"]["Q-base"]["FGSM 0.3"]  # 52.69
    bb = _frame([{"model": "Q-base", "path": "Q-path", "source": ql.SOURCE_A, "attack": "FGSM", "eps": 0.3,
                  "accuracy": 0.53, "ci_low": 0.49, "ci_high": 0.57, "n": 500, "correct": 265},
                 {"model": "Q-large", "path": "Q-path", "source": ql.SOURCE_A, "attack": "FGSM", "eps": 0.3,
                  "accuracy": 0.2, "ci_low": 0.17, "ci_high": 0.24, "n": 500, "correct": 100}])

    class R:  # the part of a CascadeResult the ledger reads
        worst = Accuracy(5, 500, "worst", "white-box", "Linf", 0.3, 40)

    claims = [x for x in ql.claims_of(c, ("1a",), "headline") if x.attack == "FGSM"]
    led = ql.ledger(c, {"black_box": bb}, claims, adaptive={"Q-base": R()})
    df = led.frame().set_index("model")
    assert df.loc["Q-base", "paper_value"] == paper and df.loc["Q-base", "status"] == REFUTED
    assert df.loc["Q-base", "adaptive"] == pytest.approx(1.0)  # percent
    assert df.loc["Q-large", "status"] == NOT_REPRODUCED  # 65.19 is far outside [17, 24]
    assert df.loc["CNN", "status"] == NOT_MEASURED and df.loc["CNN", "reason"]


def test_grid_reuses_q_base_and_q_large():
    names = ql.grid_names(cfg("mnist", "book"))
    assert names[(1, 64)] == "Q-base" and names[(4, 64)] == "Q-large" and names[(4, 16)] == "K=4, nc=16"
    assert ql.grid_names(cfg("mnist", "full"))[(2, 16)] == "K=2, nc=16"
    assert len(names) == 6 and len(ql.grid_names(cfg("mnist", "full"))) == 9
    assert ql.grid_names(cfg("mnist", "book"), adv=True)[(1, 64)] == "Q-base + adv"
    grid = pd.DataFrame([{"K": 1, "nc": 64, "accuracy": 0.5, "ci_low": 0.45, "ci_high": 0.55},
                         {"K": 2, "nc": 16, "accuracy": 0.6, "ci_low": 0.55, "ci_high": 0.65}])
    t = ql.compare_grid(grid).data.set_index("heads")
    assert t.loc["K=1", "nc=64"] == "52.69 | 50.0 [45.0,\u00a055.0]" and t.loc["K=2", "nc=16"].startswith("60.38 | ")


def test_black_box_from_the_e_path_equals_the_white_box_e_path_attack():
    """Crafting on a source that *is* the target's E-path must give the white-box E-path numbers
    (both tables craft once and score every path), and a CNN is attacked directly."""
    import dataclasses

    torch.manual_seed(0)
    c = dataclasses.replace(cfg(), eval_images=16, white_images=16, epsilons=(0.1,), bim_steps=2, cw_steps=2)
    net = ql.build_model("Q-base", c).eval()
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    bb = ql.black_box({"Q": net}, {"self E-path": net.view("e")}, x, y, c, progress=False)
    wb = ql.white_box({"Q": net}, x, y, c, via="e", progress=False)
    for atk in ("FGSM", "BIM"):
        for path in ("Q-path", "E-path"):
            a = ql.pick(bb, model="Q", path=path, attack=atk, eps=0.1, source="self E-path")
            b = ql.pick(wb, model="Q", path=path, attack=atk, eps=0.1)
            assert a.correct == b.correct and a.n == b.n == 16
    assert set(wb.attack) == {"none", "FGSM", "BIM", "CW-Linf"}
    assert (ql.pick(wb, model="Q", path="E-path", attack="none").value
            == accuracy(net.view("e"), x, y).value)


def test_seed_runs_are_the_cached_runs_behind_the_kept_model(tmp_path, monkeypatch):
    """seed_runs loads every initialisation train_zoo trained (no retraining), one of which is the
    kept model, and different seeds are different networks."""
    import dataclasses

    import qutils.train

    monkeypatch.setenv("QUTILS_CACHE", str(tmp_path))
    c = dataclasses.replace(cfg(), seeds=(0, 1))
    zoo = ql.train_zoo(c, get_profile("smoke"), names=["Q-base"], device=torch.device("cpu"), progress=False)

    def no_training(*a, **k):
        raise AssertionError("seed_runs retrained a model that train_zoo had cached")

    monkeypatch.setattr(qutils.train, "train", no_training)
    runs = ql.seed_runs(zoo, "Q-base", c, get_profile("smoke"), device=torch.device("cpu"))
    assert sorted(runs) == [0, 1]
    kept = int(zoo.seeds[(zoo.seeds.model == "Q-base") & zoo.seeds.kept].seed.iloc[0])
    same = lambda a, b: all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert same(runs[kept], zoo["Q-base"]) and not same(runs[0], runs[1])


def test_black_box_reuses_crafted_examples_only_for_the_same_images():
    import dataclasses

    torch.manual_seed(0)
    c = dataclasses.replace(cfg(), eval_images=8, epsilons=(0.1,), bim_steps=2)
    net = ql.build_model("Q-base", c).eval()
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            calls.append(1)
            return self.m(x)

    src = Counting(ql.build_model("CNN", c).eval())
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    crafted = {}
    first = ql.black_box({"Q": net}, {"src": src}, x, y, c, progress=False, crafted=crafted)
    n = len(calls)
    again = ql.black_box({"Q again": net}, {"src": src}, x, y, c, progress=False, crafted=crafted)
    assert len(calls) == n  # the source is not queried again
    pd.testing.assert_series_equal(first.accuracy, again.accuracy)
    with pytest.raises(ValueError, match="other images"):
        ql.black_box({"Q": net}, {"src": src}, x.flip(0), y, c, progress=False, crafted=crafted)


def test_the_comparisons_table_glues_the_counts_the_prose_quotes(monkeypatch):
    """show_comparisons(df, prefix) glues how many comparisons support the paper and how many there
    are, counted from the table; without a prefix it glues nothing; a blank prefix is refused."""
    from qutils.metrics import Accuracy

    df = pd.DataFrame({"comparison": ["a", "b", "c"], "A": [Accuracy(9, 10)] * 3, "B": [Accuracy(1, 10)] * 3,
                       "supported": ["yes", "no", "yes"]})
    glued = {}
    monkeypatch.setattr(report, "glue", lambda k, v, display=False: glued.__setitem__(k, v))
    ql.tables.show_comparisons(df, prefix="qx")
    assert glued == {"qx-supported": 2, "qx-n-comparisons": 3}
    glued.clear()
    ql.tables.show_comparisons(df)
    assert glued == {}
    with pytest.raises(ValueError, match="prefix"):
        ql.tables.show_comparisons(df, prefix="")

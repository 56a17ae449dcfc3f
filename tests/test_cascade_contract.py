"""One builder for every chapter's cascade: the protocol carries what chapters special-cased.

* Every chapter's cascade, built by :func:`qutils.cascade.adaptive_stages` through the chapter's
  ``cascade_stages``, has exactly the stages it had before the builder took over (labels, order,
  roles, every attack's settings, the model each one crafts on): ``tests/data/cascade_stages.json``,
  recorded from the hand-built cascades (SQA's included) before the change.
* EOT goes where a view draws, and nowhere else; targeted attacks take the first view that does not.
* Designed attacks come from the defense; stages are found by their role, never by their position.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).parent))
import stage_snapshot  # noqa: E402

from qutils.attacks import APGD, FGSM, Square  # noqa: E402
from qutils.cascade import Stage, adaptive_stages, cascade, gain_table, summary_table  # noqa: E402
from qutils.defenses.protocol import AttackView, Baseline, Defense  # noqa: E402


@pytest.fixture(scope="module")
def snapshot():
    return stage_snapshot.snapshot()


@pytest.mark.parametrize("chapter", ["qusecnets", "qlayer", "dqa", "sqa", "gcln"])
def test_every_chapter_builds_the_cascade_it_had(snapshot, chapter):
    golden = json.loads(stage_snapshot.GOLDEN.read_text())[chapter]
    got = snapshot[chapter]
    assert len(got) == len(golden)
    for call_got, call_golden in zip(got, golden):
        assert [m["model"] for m in call_got] == [m["model"] for m in call_golden]
        for m_got, m_golden in zip(call_got, call_golden):
            assert [s["label"] for s in m_got["stages"]] == [s["label"] for s in m_golden["stages"]]
            assert m_got == m_golden


def test_eot_only_on_the_views_that_draw(snapshot):
    """SQA: the straight-through view of a drawing network gets EOT, its expectation view none, a
    deterministic baseline none; APGD-T goes through the expectation view (the first that does not draw)."""
    sqa_net, *baselines = snapshot["sqa"][0]
    by_label = {s["label"]: s["attack"] for s in sqa_net["stages"]}
    eot = by_label["APGD-CE, EOT 2 (straight-through)"]["eot"]
    assert eot > 1
    assert by_label["APGD-CE (expectation view)"]["attack"]["eot"] == 1
    assert by_label["APGD-T (expectation view)"]["attack"]["eot"] == 1
    for b in baselines:
        assert all(s["attack"].get("eot", 1) == 1 for s in b["stages"] if s["role"] == "adaptive")


class _Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    def forward(self, x):
        return self.net(x + 0.01 * torch.randn_like(x))


class _RandomDefense(Defense):
    """A defense whose every view draws, with one designed attack that needs an option."""

    random = True

    def __init__(self):
        self.model = _Noisy()

    def deployed(self):
        return self.model

    def attack_views(self):
        return {"own": AttackView(self.model, "autograd", "draws"),
                "other": AttackView(self.model.net, "smooth", "the noise-free network", random=False, title="clean view")}

    def designed_attacks(self, eps, steps, seed=0, square=None, **options):
        if square is None:
            raise ValueError("needs square")
        return {"Square (designed)": Square(eps, queries=square, seed=seed)}


def test_builder_reads_randomness_titles_and_designed_attacks_from_the_protocol():
    d = _RandomDefense()
    stages = adaptive_stages(d, 0.1, steps=3, targets=1, square_queries=0, eot=5, designed={"square": 7})
    labels = [s.label for s in stages]
    assert labels == ["APGD-CE, EOT 5 (own)", "APGD-CE (clean view)", "APGD-T (clean view)", "Square (designed)"]
    assert stages[0].attack.eot == 5 and stages[1].attack.attack.eot == 1 and stages[2].attack.attack.eot == 1
    assert stages[-1].role == "designed" and stages[-1].attack.queries == 7
    # no designed options: no designed attack; an option the defense needs and lacks: a clear error
    assert all(s.role != "designed" for s in adaptive_stages(d, 0.1, steps=3, square_queries=0, designed=None))
    with pytest.raises(ValueError, match="needs square"):
        adaptive_stages(d, 0.1, steps=3, square_queries=0, designed={})
    # every view draws: APGD-T through the first, with EOT
    d.attack_views = lambda: {"own": AttackView(d.model, "autograd", "draws")}
    assert [s.label for s in adaptive_stages(d, 0.1, steps=3, square_queries=0, eot=4)] == \
        ["APGD-CE, EOT 4 (own)", "APGD-T, EOT 4 (own)"]
    with pytest.raises(ValueError, match="ce_views"):
        adaptive_stages(d, 0.1, ce_views="some")
    with pytest.raises(ValueError, match="paper's attack"):
        adaptive_stages(d, 0.1, paper_attack=Stage("FGSM", FGSM(0.1), "adaptive"))


def test_baselines_have_no_designed_attack_and_every_defense_needs_its_options():
    from qutils.defenses import BitDepthReduction, InputTransformModel, MedianSmoothing
    from qutils.defenses.dqa import dqa_lenet
    from qutils.defenses.sqa import sqa_vanilla
    from qutils.models import build

    net = build("cnn_a")
    assert Baseline(net).designed_attacks(0.3, 10, anything=1) == {}
    fs = InputTransformModel(BitDepthReduction(1), net)
    assert fs.designed_attacks(0.3, 10) == {}  # the threshold flip only where the chapter sets it
    assert list(fs.designed_attacks(0.3, 10, flips=2, flip_steps=3)) == ["threshold flip (designed)"]
    assert InputTransformModel(MedianSmoothing(3), net).designed_attacks(0.3, 10, flips=2) == {}
    with pytest.raises(ValueError, match="anneal_z"):
        dqa_lenet("dynamic", 2).designed_attacks(0.3, 10)
    with pytest.raises(ValueError, match="eot"):
        sqa_vanilla("small").designed_attacks(0.3, 10)
    assert sqa_vanilla("small", mode="mean").designed_attacks(0.3, 10, eot=4) == {}  # nothing draws


def test_stages_are_found_by_role_not_position(trained_cnn, mnist_test):
    x, y = mnist_test.x[:40], mnist_test.y[:40]
    paper = Stage("FGSM (paper)", FGSM(0.2), "paper's attack")
    apgd = Stage("APGD-CE", APGD(0.2, steps=5))
    first = cascade(trained_cnn, [paper, apgd], x, y, progress=False)
    later = cascade(trained_cnn, [apgd, paper], x, y, progress=False)
    assert first.paper_stage() == later.paper_stage() == "FGSM (paper)"
    # run second, FGSM alone would break at least as many images as it breaks among APGD's survivors
    assert later.paper_accuracy().value >= first.worst.value
    row = summary_table({"cnn": later}).iloc[0]
    assert row["paper"] == later.paper_accuracy().value
    assert row["decisive"] == "APGD-CE"
    none = cascade(trained_cnn, [apgd], x, y, progress=False)
    assert none.paper_stage() is None and math.isnan(summary_table({"cnn": none}).iloc[0]["paper"])
    with pytest.raises(ValueError, match="paper's attack"):
        gain_table({"cnn": none})

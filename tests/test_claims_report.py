"""The claims registry (a claim needs a source and a value; the status rule) and the reporting helpers."""
import math

import pandas as pd
import pytest

from qutils import report
from qutils.claims import (HOLDS, NO_DATA, NOT_COMPARABLE, NOT_MEASURED, NOT_REPRODUCED, REFUTED, REPRODUCED,
                           STATUSES, Claim, Estimate, Ledger, mark_baselines, port_verdict, status_of)
from qutils.evaluate import Accuracy


def _claim(**kw):
    base = dict(paper="qusecnets", source="figure 9", dataset="mnist", model="CQ n=2", attack="FGSM", value=97.51,
                eps=0.3)
    base.update(kw)
    return Claim(**base)


@pytest.mark.parametrize("kw,match", [
    (dict(source=""), "source"), (dict(source=None), "source"), (dict(value=None), "value"),
    (dict(value=float("nan")), "finite"), (dict(value=120.0), r"\[0, 100\]"), (dict(paper="No Body"), "lowercase identifier"),
    (dict(dataset="imagenet"), "imagenet"), (dict(eps=-0.1), "eps"), (dict(model=""), "model"),
])
def test_a_claim_needs_a_source_and_a_value(kw, match):
    with pytest.raises(ValueError, match=match):
        _claim(**kw)


def test_status_rule():
    c = _claim(value=90.0)
    assert status_of(c) == NOT_MEASURED
    assert status_of(_claim(dataset="cifar10")) == NO_DATA
    near = Accuracy(900, 1000)  # 90.0 [88.0, 91.7]
    far = Accuracy(500, 1000)
    assert status_of(c, near) == REPRODUCED
    assert status_of(c, far) == NOT_REPRODUCED
    assert status_of(c, far, seed_range=(45.0, 91.0)) == REPRODUCED  # inside the seeds' spread
    assert status_of(c, near, adaptive=Accuracy(0, 1000)) == REFUTED
    assert status_of(c, near, adaptive=Accuracy(890, 1000)) == HOLDS  # within 5 points
    assert status_of(c, far, adaptive=Accuracy(0, 1000)) == REFUTED  # refuted whether or not reproduced
    assert status_of(c, None, adaptive=Accuracy(0, 1000)) == REFUTED


@pytest.mark.parametrize("adaptive,expect", [
    (Estimate(84.0, 82.0, 85.1), HOLDS),  # upper bound 4.9 below 90: holds
    (Estimate(83.0, 81.0, 84.9), REFUTED),  # 5.1 below: refuted on a model that meets its bar
    (Estimate(99.0, 98.0, 100.0), HOLDS),  # above the claim: not contradicted
])
def test_the_margin_of_a_refutation(adaptive, expect):
    assert status_of(_claim(value=90.0), Accuracy(900, 1000), adaptive) == expect


def test_a_refutation_never_rests_on_our_training_budget():
    """On an under-trained model (clean 95 vs the paper's 99: 4 points short), the adaptive bound must
    lie more than 5 + 4 points below the claim to refute it; between 5 and 9 points the claim is not
    comparable; a model within its bar gets no such allowance."""
    c = _claim(value=90.0)
    assert status_of(c, None, Estimate(80.0, 78.0, 82.0), clean=(95.0, 99.0)) == NOT_COMPARABLE  # 8 below
    assert status_of(c, None, Estimate(78.0, 76.0, 80.9), clean=(95.0, 99.0)) == REFUTED  # 9.1 below
    assert status_of(c, None, Estimate(80.0, 78.0, 82.0), clean=(98.7, 99.0)) == REFUTED  # within MNIST's 0.5


def test_a_baselines_claim_is_never_refuted():
    """A claim about a reference model measures the paper's attack, not a defense: the adaptive number
    does not decide it, the reproduction does."""
    c = mark_baselines([_claim(value=40.0, model="CNN")], ["CNN"])[0]
    assert c.baseline and c.key == _claim(value=40.0, model="CNN").key
    assert status_of(c, Accuracy(400, 1000), adaptive=Accuracy(0, 1000)) == REPRODUCED
    assert status_of(c, Accuracy(50, 1000), adaptive=Accuracy(0, 1000)) == NOT_REPRODUCED
    assert port_verdict(c, Accuracy(0, 1000), "MNIST port") == ""
    with pytest.raises(ValueError, match="CNN2"):
        mark_baselines([_claim()], ["CNN2"])  # a typo would leave a baseline refutable


def test_port_verdict():
    c = _claim(dataset="cifar10", value=86.0)
    assert status_of(c) == NO_DATA  # the port does not change the status
    assert port_verdict(c, Estimate(2.7, 1.4, 5.2), "MNIST port") == "refuted on the MNIST port"
    assert port_verdict(c, Estimate(84.0, 81.0, 86.5), "MNIST port") == "holds on the MNIST port"
    assert port_verdict(_claim(dataset="cifar10", attack="none"), Estimate(2.7, 1.4, 5.2), "MNIST port") == ""
    assert port_verdict(c, None, "MNIST port") == ""


def test_ledger_records_counts_and_refuses_mistakes():
    a, b, c = _claim(), _claim(model="VQ"), _claim(dataset="cifar10")
    led = Ledger([a, b, c])
    with pytest.raises(ValueError, match="twice"):
        led.add(_claim())
    with pytest.raises(ValueError, match="no such claim"):
        led.record(_claim(model="other"), Accuracy(1, 2))
    with pytest.raises(ValueError, match="needs a reason"):
        led.record(b)
    led.record(a, Accuracy(975, 1000), adaptive=Accuracy(10, 1000), section="adaptive-test")
    led.record(b, reason="the VQ model is not in the book profile")
    df = led.frame()
    assert list(df["status"]) == [REFUTED, NOT_MEASURED, NO_DATA]
    assert df.loc[0, "ours"] == pytest.approx(97.5) and df.loc[0, "ours_n"] == 1000
    counts = led.counts()
    assert set(counts) == set(STATUSES) and sum(counts.values()) == 3
    # in words: the statuses' order, zeros left out, one claim each
    assert led.in_words() == "; ".join(f"1 {s}" for s in STATUSES if s in (REFUTED, NOT_MEASURED, NO_DATA))
    assert Ledger().in_words() == "no claims"


def test_estimate_of_an_accuracy_is_in_percent():
    e = Estimate.of(Accuracy(50, 100, "PGD", "white-box", "Linf", 0.3, 40))
    assert e.value == 50.0 and e.ci_low < 50 < e.ci_high and e.n == 100
    assert "eps=0.3" in e.what and "40 steps" in e.what


def test_report_formats_compactly():
    a = Accuracy(975, 1000)
    assert report.acc(a) == "97.5 [96.3,\u00a098.3]"  # the interval never breaks inside
    assert report.acc(a, n=True).endswith("(n=1000)")
    assert report.cell(float("nan")) == report.EMPTY and report.acc(None) == report.EMPTY
    assert report.cell(97.5, 96.4, 98.3, percent=True) == "97.5 [96.4,\u00a098.3]"
    assert report.paper_vs_ours(97.51, a) == "97.51 | 97.5 [96.3,\u00a098.3]"
    with pytest.raises(ValueError):
        report.acc(0.9)


def test_show_has_no_index_nan_or_long_numbers():
    df = pd.DataFrame({"model": ["CNN", "Q-base"], "eps": [0.05, 0.3], "accuracy": [0.20469999, math.nan],
                       "ci_low": [0.18, math.nan], "ci_high": [0.23, math.nan], "n": [1000.0, 1000.0],
                       "note": [None, "x"]})
    html = report.show(df, intervals={"accuracy (%)": ("accuracy", "ci_low", "ci_high")}).to_html()
    assert "NaN" not in html and "None" not in html and "nan" not in html
    assert "20.5 [18.0,\u00a023.0]" in html and "0.05" in html and "5.0e-02" not in html
    assert ">0<" not in html and "1000.0" not in html  # no index column, counts as integers
    with pytest.raises(ValueError, match="no columns"):
        report.show(df, columns=["missing"])


def test_overview_reads_every_chapter_file_and_counts_its_claims(tmp_path):
    from qutils.profiles import get_profile
    from qutils.results import Results, overview

    led = Ledger([_claim(), _claim(model="VQ"), _claim(dataset="cifar10")])
    led.record(_claim(), Accuracy(975, 1000))
    led.record(_claim(model="VQ"), Accuracy(10, 1000))
    res = Results("unit_chapter", get_profile("book"), "cpu")
    res.add(Accuracy(1, 2), defense="x")
    led.save(res)
    res.save(tmp_path / "unit_chapter.json")
    (tmp_path / "bench.json").write_text("{}")  # not a chapter file: skipped
    df = overview(tmp_path)
    assert list(df["results file"]) == ["unit_chapter.json"]
    row = df.iloc[0]
    assert row["claims"] == 3 and row[REPRODUCED] == 1 and row[NOT_REPRODUCED] == 1 and row[NO_DATA] == 1
    assert row["accuracies"] == 1 and row["profile"] == "book"


def test_status_not_comparable_only_for_a_claim_not_reproduced_on_an_under_trained_model():
    from qutils.claims import NOT_COMPARABLE

    c = Claim("dqa", "table 1", "mnist", "M", "PGD", 50.0, eps=0.3)
    far, near = Estimate(10.0, 8.0, 12.0, 500), Estimate(50.0, 45.0, 55.0, 500)
    assert status_of(c, far, clean=(97.0, 99.0)) == NOT_COMPARABLE
    assert status_of(c, far, clean=(98.6, 99.0)) == NOT_REPRODUCED  # within MNIST's 0.5 points
    assert status_of(c, near, clean=(90.0, 99.0)) == REPRODUCED
    assert status_of(c, None, clean=(90.0, 99.0)) == NOT_MEASURED
    with pytest.raises(ValueError):
        status_of(c, far, clean=(float("nan"), 99.0))


def test_bars():
    from qutils.bars import under_trained, weak_baseline

    assert under_trained("mnist", 98.7, 99.24) and not under_trained("mnist", 98.74, 99.24)
    assert not under_trained("fashion_mnist", 83.3, 84.76) and under_trained("fashion_mnist", 83.2, 84.76)
    assert weak_baseline("mnist", 0.3, 84.9) and not weak_baseline("mnist", 0.3, 85.0)
    assert weak_baseline("fashion_mnist", 0.1, 69.0) and not weak_baseline("mnist", 0.1, 10.0)  # no bar there
    with pytest.raises(ValueError):
        under_trained("mnist", 101.0, 99.0)


@pytest.mark.parametrize("eps,text", [(0.3, "0.3"), (0.05, "0.05"), (8 / 255, "8/255"), (0.0313725, "8/255"),
                                      (2 / 255, "2/255"), (0.2, "0.2"), (0.123456, "0.1235"), (None, "–")])
def test_radius_as_the_paper_writes_it(eps, text):
    assert report.radius(eps) == text


def test_claims_table_links_the_source_and_gives_the_reason():
    led = Ledger([Claim("sqa", "table 2", "cifar10", "RES34", "PGD", 40.0, eps=8 / 255)])
    frame = led.frame().assign(section="15_sqa_adaptive.html", reason="no offline data")
    t = report.claims_table(frame, reason=True, links=True)
    assert t.loc[0, "claim"] == "RES34: PGD ε = 8/255 (cifar10)"
    assert t.loc[0, "source"] == '<a href="15_sqa_adaptive.html">table 2</a>' and t.loc[0, "reason"] == "no offline data"
    assert "reason" not in report.claims_table(frame).columns


def test_show_code_shows_the_code_that_runs():
    import inspect

    from qutils.attacks.bpda import _BPDAFunction

    md = report.show_code(_BPDAFunction).data
    assert md.startswith("```python\nclass _BPDAFunction(torch.autograd.Function):") and md.endswith("\n```")
    assert inspect.getsource(_BPDAFunction.backward).strip().splitlines()[-1].strip() in md


def test_the_code_the_adaptive_pages_show_fits_the_text_column():
    """Issue 28.5/28.6: every function an adaptive page displays (pages 03a, 06, 12, 18; the EOT
    pair for page 15) is no wider than the column; a wider one is refused with its line numbers."""
    import json
    import re
    from pathlib import Path

    from qutils.attacks import EOTPGD
    from qutils.attacks.anneal import AnnealedBPDA
    from qutils.attacks.base import Attack
    from qutils.attacks.bpda import _BPDAFunction
    from qutils.defenses.dqa import FixedQuantizedActivation
    from qutils.defenses.gcln import QuantizedTransform
    from qutils.defenses.qlayer import QLayer, QLayerNet

    shown = {"_BPDAFunction": _BPDAFunction, "QuantizedTransform.quantize": QuantizedTransform.quantize,
             "FixedQuantizedActivation.forward": FixedQuantizedActivation.forward,
             "AnnealedBPDA._run": AnnealedBPDA._run, "QLayerNet.forward": QLayerNet.forward,
             "QLayer.soft": QLayer.soft, "Attack._forward": Attack._forward, "EOTPGD._run": EOTPGD._run}
    called = set()
    for nb in Path(__file__).resolve().parents[1].glob("notebooks/*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            called |= set(re.findall(r"show_code\(([\w.]+)\)", "".join(cell["source"])))
    assert called <= set(shown), called - set(shown)  # every function a page shows is checked here
    for name, obj in shown.items():
        md = report.show_code(obj).data
        assert max(len(line) for line in md.splitlines()) <= report.CODE_WIDTH, name
    with pytest.raises(ValueError, match="wider than 40 characters"):
        report.show_code(EOTPGD._run, width=40)


def test_bounds_table_and_figure_show_both_bounds_and_what_the_attacks_missed():
    """report.bounds turns cascade_bounds' fractions into percentages with intervals and keeps the
    counts whole; the figure draws one panel per radius with the attacks' share as a cross."""
    import matplotlib.pyplot as plt

    from qutils import plot

    t = pd.DataFrame({"model": ["FS", "FS"], "eps": [0.1, 0.3], "n": [100, 100], "certified": [0.55, 0.0],
                      "certified_lo": [0.45, 0.0], "certified_hi": [0.64, 0.037], "attacked": [0.92, 0.69],
                      "attacked_lo": [0.85, 0.59], "attacked_hi": [0.96, 0.77], "survived": [0.93, 0.72],
                      "n_missed": [1, 3], "n_unknown": [37, 69], "seconds": [41.6, 20.2]})
    html = report.bounds(t).to_html()
    assert "55.0 [45.0,\u00a064.0]" in html and "69.0 [59.0,\u00a077.0]" in html
    assert ">72.0<" in html and ">0.72<" not in html  # the attacks alone, in percent
    assert ">3<" in html and ">42<" in html and "41.6" not in html  # counts and seconds whole
    assert "max-width: 12ch" in html  # headers wrap: nine columns fit the text column
    fig = plot.binarization_bounds(t)
    try:
        assert len(fig.axes) == 2 and [a.get_title() for a in fig.axes] == ["L\u221e, \u03b5 = 0.1", "L\u221e, \u03b5 = 0.3"]
        labels = fig.legends[0].texts
        assert "the attacks alone" in [x.get_text() for x in labels]
    finally:
        plt.close(fig)


@pytest.mark.parametrize("text", ["40, 100", "40 or 100", "1e3", "[1, 2]", "0.3", "100-500", "it's \"quoted\"", "None"])
def test_a_glued_string_renders_as_itself(text):
    """myst-nb renders ``{glue:text}`` by reading the glued repr with ``ast.literal_eval``: a string
    it would read as a tuple, a number or a list must come back as the same string."""
    from myst_nb.core.variables import format_plain_text

    from qutils.report import _Plain

    assert format_plain_text(repr(_Plain(text)), "") == text

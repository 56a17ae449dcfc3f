"""The book's claims ledger (qutils.ledger): every registered claim once, with a status or a reason,
the committed CSV equal to what the results files give, clear errors on missing or stale results."""
import json

import pandas as pd
import pytest

from qutils import ledger as L
from qutils.chapters import PAPERS
from qutils.claims import NOT_MEASURED, STATUSES


def test_registry_holds_every_papers_claims_once():
    reg = L.registry()
    assert len(reg) == len({c.key for c in reg})
    assert {c.paper for c in reg} == set(PAPERS)


def test_every_claim_has_a_status_or_a_reason():
    frame = L.book_ledger()
    assert len(frame) == len(L.registry()) and frame.key.is_unique
    assert frame.status.isin(STATUSES).all()
    unmeasured = frame[frame.status == NOT_MEASURED]
    assert (unmeasured.reason.fillna("").str.strip().str.len() > 0).all()
    measured = frame[frame.status != NOT_MEASURED]
    assert (measured.chapter.fillna("").str.len() > 0).all()  # every recorded claim names its page


def test_committed_csv_equals_the_results_files():
    csv = pd.read_csv(L.csv_path(), keep_default_na=True)
    frame = L.book_ledger()
    assert list(csv.columns) == L.CSV_COLUMNS
    assert list(csv.key) == list(frame.key), "results/claims.csv is stale: re-run notebooks/21_claims_ledger"
    assert list(csv.status) == list(frame.status)
    for col in ("paper_value", "ours", "adaptive"):
        pd.testing.assert_series_equal(csv[col].astype(float), frame[col].astype(float), rtol=1e-5,
                                       check_names=False)


def test_missing_results_file_names_its_chapter(results_copy):
    d = results_copy
    (d / "gcln_adaptive.json").unlink()
    with pytest.raises(FileNotFoundError, match="18_gcln_adaptive"):
        L.book_ledger(d)


def test_the_most_informative_record_wins_and_stale_claims_raise(results_copy):
    d = results_copy
    adaptive = json.loads((d / "sqa_adaptive.json").read_text())
    rec = adaptive["tables"]["claims"][0]
    reproduction = json.loads((d / "sqa.json").read_text())
    weaker = {**rec, "adaptive": None, "adaptive_ci_low": None, "adaptive_ci_high": None, "status": "not reproduced"}
    reproduction["tables"]["claims"].append(weaker)  # the same claim, recorded again without the adaptive number
    (d / "sqa.json").write_text(json.dumps(reproduction))
    row = L.book_ledger(d).set_index("key").loc[rec["key"]]
    assert row.adaptive == pytest.approx(rec["adaptive"]) and row.chapter == "15_sqa_adaptive"
    stale = {**rec, "key": "sqa | table 9 | mnist | NOTHING | PGD"}
    adaptive["tables"]["claims"].append(stale)
    (d / "sqa_adaptive.json").write_text(json.dumps(adaptive))
    with pytest.raises(ValueError, match="no paper registers"):
        L.book_ledger(d)


def test_counts_cover_every_status_and_paper():
    t = L.counts(L.book_ledger())
    assert list(t.paper) == [p for p in PAPERS]
    assert set(STATUSES) <= set(t.columns)
    assert (t[list(STATUSES)].sum(axis=1) == t.claims).all()


def test_no_claim_on_an_under_trained_model_is_filed_not_reproduced():
    """Issue 27's rule on the book's own results: where our clean accuracy of a model misses the paper's
    by more than the tolerance, none of that model's claims reads "not reproduced"."""
    from qutils.bars import under_trained
    from qutils.claims import NOT_COMPARABLE, NOT_REPRODUCED

    frame = L.book_ledger()
    weak = {k for k, pair in L.clean_of(frame).items() if under_trained(k[1], *pair)}
    assert weak, "the committed results hold under-trained models; the rule has something to mark"
    keys = list(zip(frame.paper, frame.dataset, frame.model))
    on_weak = frame[[k in weak for k in keys]]
    assert not (on_weak.status == NOT_REPRODUCED).any()
    marked = on_weak[on_weak.status == NOT_COMPARABLE]
    assert len(marked) and marked.reason.str.startswith("under-trained: clean ").all()


def _rows(ours_clean, ours_fgsm, dataset="mnist"):
    base = {"paper": "dqa", "dataset": dataset, "model": "M", "unit": "%", "reason": "", "threat_model": "white-box"}
    frame = pd.DataFrame([
        {**base, "key": "a", "attack": "none", "paper_value": 99.0, "ours": ours_clean, "status": "not reproduced"},
        {**base, "key": "b", "attack": "FGSM", "paper_value": 80.0, "ours": ours_fgsm,
         "status": "reproduced" if ours_fgsm == 80.0 else "not reproduced", "reason": "table 1"},
        {**base, "key": "c", "model": "other", "attack": "FGSM", "paper_value": 80.0, "ours": 10.0,
         "status": "not reproduced"},
    ])
    return frame.assign(ours_ci_low=frame.ours, ours_ci_high=frame.ours, adaptive=float("nan"),
                        adaptive_ci_low=float("nan"), adaptive_ci_high=float("nan"))


@pytest.mark.parametrize("ours_clean,dataset,expect", [(98.4, "mnist", True), (98.6, "mnist", False),
                                                      (97.6, "fashion_mnist", False), (97.4, "fashion_mnist", True)])
def test_the_rule_uses_the_datasets_tolerance(ours_clean, dataset, expect):
    from qutils.claims import NOT_COMPARABLE

    out = L.apply_rule(_rows(ours_clean, 20.0, dataset)).set_index("key")
    assert (out.loc["b", "status"] == NOT_COMPARABLE) == expect
    assert (out.loc["a", "status"] == NOT_COMPARABLE) == expect
    assert out.loc["c", "status"] == "not reproduced"  # another model: untouched
    if expect:
        assert out.loc["b", "reason"] == f"under-trained: clean {ours_clean:.1f} vs the paper's 99.00; table 1"


def test_a_reproduced_claim_stays_reproduced_on_an_under_trained_model():
    out = L.apply_rule(_rows(90.0, 80.0)).set_index("key")
    assert out.loc["b", "status"] == "reproduced"


def test_the_rule_is_applied_to_every_record_whatever_it_was_written_with():
    """A record written with another rule's status (an old results file) reads by today's rule."""
    rows = _rows(98.8, 80.0)
    rows.loc[1, ["adaptive", "adaptive_ci_low", "adaptive_ci_high"]] = [10.0, 8.0, 12.0]
    rows.loc[1, "status"] = "reproduced, broken by the adaptive attack"
    out = L.apply_rule(rows).set_index("key")
    assert out.loc["b", "status"] == "refuted by the adaptive attack"
    assert out.loc["b", "reason"].startswith("the adaptive attack's 95% upper bound, 12.0%, is 68.0 points below")


def test_ports_of_the_book():
    """GCLN's claims are on CIFAR-10 and SVHN: not runnable here, each GCLN robustness claim with its
    port's verdict; the baselines' claims get none; the counts say how many a port refuted."""
    frame = L.book_ledger()
    gcln = frame[frame.paper == "gcln"]
    assert (gcln.status == "not runnable here (data)").all()
    ported = gcln[gcln.port.str.len() > 0]
    assert len(ported) and ported.model.str.startswith("GCLN").all()
    assert (ported.attack != "none").all() and ported.port_value.notna().all()
    refuted = ported.port.str.startswith("refuted")
    assert (ported[refuted].port_ci_high < ported[refuted].paper_value - 5).all()
    t = L.counts(frame).set_index("paper")
    assert t.loc["gcln", L.REFUTED_ON_PORT] == refuted.sum()


def test_the_landing_pages_overview_counts_each_ledger_claim_once():
    from qutils.results import overview

    frame = L.book_ledger()
    table = overview(ledger=frame)
    assert table.claims.sum() == (frame.chapter.fillna("") != "").sum()
    assert (table[list(STATUSES)].sum(axis=1) == table.claims).all()

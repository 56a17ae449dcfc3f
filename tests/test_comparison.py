"""The side-by-side chapter (qutils.comparison, notebooks/20_side_by_side): its numbers are the chapters'
results files (never typed twice), a missing or stale file gives a clear error, and the page trains and
attacks nothing."""
import json
import math
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from qutils import comparison as C
from qutils import report
from qutils.results import results_dir

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
DATASETS = list(C.COMMON_EPS)


def _raw(name):
    return json.loads((results_dir() / f"{name}.json").read_text())


def _radius_from_raw(paper, config):
    """The adaptive test's radius, read from the raw settings as each chapter documents it (independently
    of comparison's rebuilding of the chapter's configuration)."""
    if paper == "qlayer":
        return max(config["epsilons"])  # the larger of the paper's two radii
    if paper == "sqa":
        return config["pgd_eps"]  # table 1's PGD radius
    return config["eps"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_leaderboard_numbers_equal_the_results_files(dataset):
    board = C.leaderboard(dataset)
    expected_rows = sum(len(s.models) for s in C.SOURCES[dataset])
    assert len(board) == expected_rows
    for s in C.SOURCES[dataset]:
        raw = _raw(s.results)
        table = {r.get("defense", r.get("model")): r for r in raw["tables"]["adaptive"]}
        mine = board[board.results == s.results].set_index("model")
        assert set(mine.index) == set(s.models)
        eps = _radius_from_raw(s.paper, raw["config"])
        for model in s.models:
            r, b = table[model], mine.loc[model]
            for k in ("clean", "clean_lo", "clean_hi", "paper", "paper_lo", "paper_hi", "worst", "worst_lo",
                      "worst_hi"):
                assert b[k] == r[k], (s.results, model, k)
            assert b.n == r["n"] and b.decisive == r["decisive"] and b.eps == eps
            assert b["drop"] == pytest.approx(100 * (r["paper"] - r["worst"]))
            assert b.common == math.isclose(eps, C.COMMON_EPS[dataset])
            ref = s.reference_of(model) if s.models[model][0] == C.DEFENSE else ""
            if ref:
                assert b.clean_cost == pytest.approx(100 * (table[ref]["clean"] - r["clean"]))
            else:
                assert math.isnan(b.clean_cost)


@pytest.mark.parametrize("dataset", DATASETS)
def test_leaderboard_ranks_common_radius_first_by_worst_case(dataset):
    board = C.leaderboard(dataset)
    common = board.common.to_list()
    assert common == sorted(common, reverse=True)  # no row at another radius among the ranked ones
    # every ranked row was attacked at AutoAttack's strength and has a convergence record that passed
    assert board[board.ranked].standard.all() and (board[board.ranked].converged == True).all()  # noqa: E712
    ranked = board[board.common].ranked.to_list()
    assert ranked == sorted(ranked, reverse=True)  # at the common radius the ranked rows come first
    for group in (board[board.ranked], board[board.common & ~board.ranked], board[~board.common]):
        w = group.worst.to_list()
        assert w == sorted(w, reverse=True)
    # the worst case is never above the paper's attack (the cascade starts with it) nor the clean accuracy
    assert (board.worst <= board.paper + 1e-12).all() and (board.worst <= board.clean + 1e-12).all()
    assert ((board.worst_lo <= board.worst) & (board.worst <= board.worst_hi)).all()


def test_rows_at_another_radius_are_said_so():
    mnist, fmnist = C.leaderboard("mnist"), C.leaderboard("fashion_mnist")
    assert set(mnist[~mnist.common].paper_id) == {"sqa"} and set(mnist[~mnist.common].eps) == {0.2}
    assert set(fmnist[~fmnist.common].paper_id) == {"qlayer"} and set(fmnist[~fmnist.common].eps) == {0.2}


@pytest.mark.parametrize("dataset", DATASETS)
def test_security_curves_are_the_chapters_adaptive_curves(dataset):
    curves = C.security_curves(dataset)
    for s in C.SOURCES[dataset]:
        mine = curves[curves.paper_id == s.paper]
        if s.curves is None:
            assert mine.empty
            continue
        raw = pd.DataFrame(_raw(s.results)["tables"][s.curves])
        for _, r in mine.iterrows():
            if s.curve_models is None:
                src = raw[(raw.model == r.model) & (raw.attack == "adaptive worst case") & (raw.eps == r.eps)]
            else:
                src = raw[(raw.attack == r.attack) & (raw.eps == r.eps)]
                assert s.curve_models[r.attack] == r.model
            assert len(src) == 1 and src.accuracy.iloc[0] == r.accuracy and src.n.iloc[0] == r.n
        assert set(mine.model) <= set(s.models)
    # every defense with a curve drops as epsilon grows (monotone up to sampling noise of 10 points)
    for _, g in curves.groupby(["paper_id", "model"]):
        acc = g.sort_values("eps").accuracy.to_numpy()
        assert (acc[1:] <= acc[:-1] + 0.1).all()


@pytest.mark.parametrize("dataset", DATASETS)
def test_headline_is_the_leaderboards_top(dataset):
    board = C.leaderboard(dataset)
    h = C.headline(dataset)
    common = board[board.common]
    d = common[common.role == C.DEFENSE]
    q = common[common.role.isin([C.DEFENSE, C.OTHER])]
    if q.ranked.any():  # the best ranked quantizer heads the line, though an unranked one may score higher
        q = q[q.ranked]
    assert h["best"].worst == q.worst.max() and h["best"].role in (C.DEFENSE, C.OTHER)
    assert h["best"].ranked == q.ranked.any()
    assert h["largest_drop"]["drop"] == d["drop"].max()
    pgd = common[common.role == C.PGD_TRAINED]
    assert h["best_pgd"].worst == pgd.worst.max() and h["pgd_range"] == (pgd.worst.min(), pgd.worst.max())
    base = common[common.role.isin([C.PGD_TRAINED, C.FGSM_TRAINED, C.UNDEFENDED])]
    assert h["best_baseline"].worst == base.worst.max()


def test_missing_results_file_names_its_notebook(results_copy):
    d = results_copy
    (d / "dqa_fashion_mnist.json").unlink()
    with pytest.raises(FileNotFoundError, match="13_dqa_fashion_mnist"):
        C.leaderboard("fashion_mnist", d)
    with pytest.raises(FileNotFoundError, match="13_dqa_fashion_mnist"):
        C.security_curves("fashion_mnist", d)
    C.leaderboard("mnist", d)  # the other dataset does not need it


def test_stale_results_raise(results_copy):
    d = results_copy
    raw = json.loads((d / "gcln_adaptive.json").read_text())
    for r in raw["tables"]["adaptive"]:
        if r["model"] == "GCLN (Qs=96)":
            r["model"] = "GCLN (Qs=97)"
    (d / "gcln_adaptive.json").write_text(json.dumps(raw))
    with pytest.raises(KeyError, match="GCLN \\(Qs=96\\)"):
        C.leaderboard("mnist", d)
    raw = json.loads((d / "sqa_adaptive.json").read_text())
    raw["config"]["a_setting_no_chapter_has"] = 1
    (d / "sqa_adaptive.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="15_sqa_adaptive"):
        C.leaderboard("mnist", d)


def test_the_rank_rule():
    assert C.rank_note(True, True, True) == ""
    assert C.rank_note(True, True, False) == C.NOT_CONVERGED
    assert C.rank_note(True, True, None) == C.NOT_CHECKED
    assert C.rank_note(True, False, True) == C.LIGHT  # converged, but below AutoAttack's strength
    assert C.rank_note(False, True, True) == "another radius"
    # a labelled model is measured and listed, never ranked as if comparable; the attack's reasons come first
    assert C.rank_note(True, True, True, "under-trained") == "under-trained"
    assert C.rank_note(True, True, True, "weak baseline") == "weak baseline"
    assert C.rank_note(True, False, True, "under-trained") == C.LIGHT


def _set(raw, cfg_changes, converged):
    raw["config"].update(cfg_changes)
    models = [r.get("model", r.get("defense")) for r in raw["tables"]["adaptive"]]
    raw["tables"]["convergence"] = [{"model": m, "converged": converged(m)} for m in models]


def test_only_standard_converged_rows_are_ranked(results_copy):
    """The comparison ranks a row only if its chapter attacked it at AutoAttack's strength and its
    convergence check passed, on a model without a label; a stronger-looking number from a light or
    unconverged cascade, or on a weaker model, is listed below the ranked rows, with its reason."""
    d = results_copy
    raw = json.loads((d / "gcln_adaptive.json").read_text())
    _set(raw, {"apgd_steps": 100, "apgd_targets": 9, "square_queries": 5000}, lambda m: m != "GCLN (Qs=48)")
    (d / "gcln_adaptive.json").write_text(json.dumps(raw))
    raw = json.loads((d / "qusecnets_adaptive.json").read_text())
    _set(raw, {"pgd_steps": 40, "apgd_targets": 1, "square_queries": 1000}, lambda m: True)
    (d / "qusecnets_adaptive.json").write_text(json.dumps(raw))
    board = C.leaderboard("mnist", d)
    gcln = board[board.paper_id == "gcln"].set_index("model")
    assert gcln.loc["Feature squeezing"].ranked
    # the PGD-trained CNN_A keeps 29% at eps 0.3: a weak baseline, listed with its label, never ranked
    pgd = board[(board.paper_id == "gcln") & (board.model == "PGD-trained")].iloc[0]
    assert pgd.label == "weak baseline" and not pgd.ranked and pgd.rank_note == "weak baseline"
    from qutils.side_by_side import model_name

    assert model_name(pgd) == "GCLN · PGD-trained (weak baseline; not ranked)"
    assert gcln.loc["GCLN (Qs=48)"].rank_note == C.NOT_CONVERGED and not gcln.loc["GCLN (Qs=48)"].ranked
    qs = board[board.paper_id == "qusecnets"]
    assert (qs.rank_note == C.LIGHT).all() and "APGD 40 steps (standard 100)" in qs.below_standard.iloc[0]
    ranked = set(board[board.ranked].paper_id)  # other chapters may be ranked by their own files
    assert "gcln" in ranked and "qusecnets" not in ranked
    first_unranked = int((~board.ranked).to_numpy().argmax())
    assert board.ranked.iloc[:first_unranked].all() and not board.ranked.iloc[first_unranked:].any()
    assert board.worst.iloc[first_unranked] > board[board.ranked].worst.min()  # an unranked row scores higher
    h = C.headline("mnist", d)
    assert h["best"].model == "Feature squeezing" and h["best"].ranked
    from qutils import side_by_side as S

    assert "not ranked: light attack" in S.model_name(qs.iloc[0])
    assert "not ranked" not in S.model_name(gcln.reset_index().iloc[0])
    with pytest.raises(ValueError, match="converged"):
        raw = json.loads((d / "gcln_adaptive.json").read_text())
        raw["tables"]["convergence"] = [{"model": "No defense", "newly broken": 0}]
        (d / "gcln_adaptive.json").write_text(json.dumps(raw))
        C.leaderboard("mnist", d)


def test_bad_names_raise():
    with pytest.raises(ValueError, match="dataset"):
        C.leaderboard("cifar100")
    with pytest.raises(ValueError, match="unknown exercise"):
        C.exercise_reference("nope", C.leaderboard("mnist"))


def test_exercise_references_on_a_known_board():
    board = pd.DataFrame({
        "common": [True, True, True, True, False], "role": [C.DEFENSE] * 3 + [C.PGD_TRAINED, C.DEFENSE],
        "worst": [0.70, 0.66, 0.30, 0.90, 0.95], "worst_lo": [0.65, 0.61, 0.25, 0.85, 0.90],
        "worst_hi": [0.75, 0.71, 0.35, 0.95, 0.99], "clean_cost": [5.0, 1.0, 0.0, float("nan"), 0.0]})
    assert C.exercise_reference("ties", board) == 1  # 0.66's interval overlaps the top's; 0.30's does not
    assert C.exercise_reference("cheap", board) == 0.66  # the top costs 5 points; other-radius rows excluded


def _outputs(name):
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    text = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            text.append("".join(data.get("text/html", "")) + "".join(data.get("text/plain", "")))
            text.append("".join(out.get("text", "")))
    return "\n".join(text)


def test_committed_pages_show_the_results_files_numbers():
    """A re-run chapter whose side-by-side page was not re-executed fails here: the page's tables must
    hold the worst case of every leaderboard row, and the landing page the headline."""
    page = _outputs("20_side_by_side")
    for ds in DATASETS:
        for _, r in C.leaderboard(ds).iterrows():
            assert report.cell(r.worst, r.worst_lo, r.worst_hi) in page, (ds, r.model)
    intro = _outputs("00_intro")
    for ds in DATASETS:
        h = C.headline(ds)
        for r in (h["best"], h["best_baseline"]):
            assert report.cell(r.worst, r.worst_lo, r.worst_hi) in intro


class _Trained(Exception):
    pass


def test_side_by_side_notebook_trains_and_attacks_nothing(monkeypatch, tmp_path, capsys):
    """Run the page's code in this process with every way to train or attack a model disabled: any
    gradient, any optimizer step, the training loop and the checkpoint cache raise."""
    import torch

    import qutils.cache
    import qutils.train

    def refuse(*args, **kwargs):
        raise _Trained("the side-by-side page must read results, not train or attack")

    monkeypatch.setattr(torch.Tensor, "backward", refuse)
    monkeypatch.setattr(torch.autograd, "backward", refuse)
    monkeypatch.setattr(torch.autograd, "grad", refuse)
    monkeypatch.setattr(torch.optim.Optimizer, "zero_grad", refuse)
    monkeypatch.setattr(qutils.train, "train", refuse)
    monkeypatch.setattr(qutils.train, "get_trained", refuse)
    monkeypatch.setattr(qutils.cache, "cached_state", refuse)
    monkeypatch.setenv("QUTILS_CACHE", str(tmp_path / "empty-cache"))
    nb = json.loads((ROOT / "notebooks" / "20_side_by_side.ipynb").read_text())
    ns = {"__name__": "__side_by_side__"}
    ran = 0
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "20_side_by_side", "exec"), ns)
            ran += 1
    assert ran >= 10 and "boards" in ns and set(ns["boards"]) == set(DATASETS)
    assert not (tmp_path / "empty-cache").exists()
    # the guard itself works: training would have raised
    with pytest.raises(_Trained):
        torch.zeros(1, requires_grad=True).sum().backward()


def test_binarization_bounds_are_the_chapters_and_add_up():
    """The side-by-side page's table 6 is the chapters' bounds tables, row for row; per row the lower
    bound is at most the upper, the upper at most the attacks' share alone, and the difference is the
    images the search broke that the attacks had missed."""
    t = C.binarization_bounds("mnist")
    raw = [(s.paper, r) for s in C.SOURCES["mnist"] for r in _raw(s.results)["tables"].get("binarization_bounds", [])]
    assert len(t) == len(raw) and {p for p, _ in raw} >= {"qusecnets", "gcln"}
    for (paper, r), (_, row) in zip(raw, t.iterrows()):
        assert row.paper_id == paper and row.model == r["model"] and row.eps == r["eps"]
        assert row.certified == r["certified"] and row.attacked == r["attacked"]
        assert row.n_missed == r["n_missed"] if "n_missed" in r else math.isnan(row.n_missed)
    assert (t.certified <= t.attacked + 1e-12).all()
    c = t.dropna(subset=["n_missed"])  # rows written since the search counts what the attacks missed
    # 1e-6: a file written before certify.Bounds stored survived as an exact fraction holds a float32 mean
    # (0.9499999881 for 95/100); one image is 1/n >= 1e-3, so a real violation still fails
    assert len(c) >= 1 and (c.attacked <= c.survived + 1e-6).all()
    assert ((c.survived * c.n).round() - c.n_missed == (c.attacked * c.n).round()).all()
    assert C.binarization_bounds("fashion_mnist").empty  # no chapter bounds a Fashion-MNIST model


def test_every_results_file_read_here_has_its_notebook():
    """The missing-file errors name ``notebooks/NN_<name>.ipynb``: a renamed notebook would leave them blank."""
    from qutils.chapters import CHAPTERS
    from qutils.results import notebook_of

    names = {s.results for sources in C.SOURCES.values() for s in sources} | {n for ch in CHAPTERS for n in ch.results}
    for name in names:
        assert notebook_of(name).endswith(name) and (ROOT / "notebooks" / f"{notebook_of(name)}.ipynb").exists()
    assert notebook_of("no_such_chapter") == ""


def test_the_side_by_side_page_glues_every_value_its_prose_quotes(monkeypatch):
    """Every ``{glue}`` reference in the page's prose is glued by qutils.side_by_side.glue (a renamed or
    dropped key would leave a hole in the rendered page), and the values are the leaderboards'."""
    import re

    from qutils import side_by_side as S

    glued = {}
    monkeypatch.setattr(report, "glue", lambda name, value, display=False: glued.__setitem__(name, value))
    boards = {ds: C.leaderboard(ds) for ds in DATASETS}
    S.glue(boards)
    S.glue_bounds(C.binarization_bounds("mnist"), boards)
    nb = json.loads((ROOT / "notebooks" / "20_side_by_side.ipynb").read_text())
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    quoted = {m.split(":")[0] for m in re.findall(r"\{glue(?::\w+)?\}`([^`]+)`", prose)}
    assert quoted and quoted <= set(glued), sorted(quoted - set(glued))
    for ds in DATASETS:
        top = C.headline(ds)["best"]
        assert glued[f"sbs-{ds}-top-worst"] == report.cell(top.worst, top.worst_lo, top.worst_hi)
        assert glued[f"sbs-{ds}-models"] == len(boards[ds])


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_every_model_below_its_bar_carries_its_label(dataset):
    """Issue 27: a model below its paper's clean bar reads "under-trained", a PGD-trained baseline below
    the robust bar "weak baseline", in the leaderboard and in the name the pages show."""
    from qutils.bars import clean_tolerance, weak_baseline
    from qutils.side_by_side import model_name

    board = C.leaderboard(dataset)
    for _, r in board.iterrows():
        below = r.paper_clean == r.paper_clean and 100 * r.clean < r.paper_clean - clean_tolerance(dataset)
        assert ("under-trained" in r.label) == below, (r.model, r.clean, r.paper_clean)
        weak = r.role == C.PGD_TRAINED and weak_baseline(dataset, r.eps, 100 * r.worst)
        assert ("weak baseline" in r.label) == weak, (r.model, r.worst)
        assert model_name(r, ranked=False).endswith(f"({r.label})") == bool(r.label)
    assert board.label.str.len().gt(0).any()  # the committed results hold models below their bars


def test_the_label_rule_on_made_up_rows():
    from qutils.comparison import _label

    row = {"paper_clean": 99.0, "clean": 0.984, "role": C.PGD_TRAINED, "eps": 0.3, "worst": 0.9}
    assert _label(row, "mnist") == "under-trained"
    assert _label({**row, "clean": 0.986}, "mnist") == ""
    assert _label({**row, "clean": 0.986, "worst": 0.5}, "mnist") == "weak baseline"
    assert _label({**row, "worst": 0.5}, "mnist") == "under-trained, weak baseline"
    assert _label({**row, "paper_clean": float("nan"), "role": C.DEFENSE, "worst": 0.1}, "mnist") == ""


def test_the_light_rows_sentence_reads_with_and_without_light_rows():
    """Page 20 says how many rows at the common radius got a light attack, with an example; once every
    chapter runs the standard cascade it says that none did (it used to glue nothing, and the book
    build failed on the missing key)."""
    import pandas as pd

    from qutils.side_by_side import light_text

    none = light_text(pd.DataFrame(columns=["defense", "below_standard"]), 28)
    assert none == "none of the 28 rows any more"
    light = pd.DataFrame({"defense": ["SQA", "DQA"], "below_standard": ["APGD 40 steps (standard 100)", "x"]})
    assert light_text(light, 28) == "2 of the 28 rows, for instance SQA's APGD 40 steps (standard 100)"


def test_the_steps_read_as_english():
    from qutils.side_by_side import _either

    assert [_either(v) for v in ([100], [40, 100], [40, 60, 100])] == ["100", "40 or 100", "40, 60 or 100"]

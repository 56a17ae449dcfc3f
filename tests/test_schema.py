"""The adaptive results tables have a declared shape, checked where a chapter writes them."""
import json
from pathlib import Path

import pytest

from qutils.attacks import FGSM, PGD
from qutils.cascade import Stage, cascade, summary_table
from qutils.profiles import get_profile
from qutils.results import Results
from qutils.schema import ADAPTIVE, LABEL, STAGE_COLUMNS, SUMMARY_COLUMNS, label_column, validate_table

RESULTS = Path(__file__).resolve().parent.parent / "results"


@pytest.fixture(scope="module")
def tables(trained_cnn, mnist_test):
    x, y = mnist_test.x[:30], mnist_test.y[:30]
    r = cascade(trained_cnn, [Stage("FGSM (paper)", FGSM(0.2), "paper's attack"), Stage("PGD", PGD(0.2, 5))], x, y,
                progress=False)
    return summary_table({"cnn": r}), r.table()


def test_what_the_cascade_writes_is_valid_and_round_trips(tables):
    summary, stages = tables
    assert list(summary.columns) == [LABEL, *SUMMARY_COLUMNS]
    assert list(stages.columns) == list(STAGE_COLUMNS)
    res = Results("schema_test", get_profile("smoke"))
    res.add_table(ADAPTIVE, summary)
    res.add_table("cascade: cnn", stages)
    assert label_column(res.tables[ADAPTIVE]) == LABEL


@pytest.mark.parametrize("broken, message", [
    (lambda s, t: (s.drop(columns=["worst_hi"]), t), "missing columns \\['worst_hi'\\]"),
    (lambda s, t: (s.rename(columns={"model": "defense"}), t), "label column must be 'model'"),
    (lambda s, t: (s.rename(columns={"model": "name"}), t), "needs the label column"),
    (lambda s, t: (s.assign(worst=s.clean + 0.5, worst_hi=1.0), t), "fraction inside its interval|exceeds clean"),
    (lambda s, t: (s, t.assign(role="transfer")), "unknown stage role 'transfer'"),
    (lambda s, t: (s, t.drop(columns=["role"])), "missing columns \\['role'\\]"),
    (lambda s, t: (s, t.assign(ci_low=t.accuracy + 0.1)), "inside its interval"),
])
def test_a_renamed_or_wrong_table_fails_where_it_is_written(tables, broken, message):
    summary, stages = broken(*tables)
    res = Results("schema_test", get_profile("smoke"))
    with pytest.raises(ValueError, match=message):
        res.add_table(ADAPTIVE, summary)
        res.add_table("cascade: cnn", stages)


def test_other_tables_are_free_and_empty_declared_tables_are_not():
    validate_table("anything", [{"a": 1}])
    with pytest.raises(ValueError, match="empty"):
        validate_table(ADAPTIVE, [])


def test_every_committed_results_file_follows_the_schema():
    """Read back as the comparison reads them (a label column written before the schema is accepted there)."""
    checked = 0
    for path in sorted(RESULTS.glob("*.json")):
        tables = json.loads(path.read_text()).get("tables", {})
        for name, rows in tables.items():
            validate_table(name, rows, legacy=True)
            checked += name == ADAPTIVE or name.startswith("cascade: ")
    assert checked > 50

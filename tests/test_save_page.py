"""A page's results in one call: what save_page writes is what the summaries read back."""
import json

import pytest

from qutils.attacks import FGSM, PGD
from qutils.cascade import Stage, cascade
from qutils.profiles import get_profile
from qutils.results import save_page
from qutils.schema import ADAPTIVE, LABEL


class _Session:
    profile = get_profile("book")
    device = "cpu"


def test_save_page_writes_tables_cascades_accuracies_and_the_ledger(trained_cnn, mnist_test, tmp_path, monkeypatch):
    import qutils.results as R

    monkeypatch.setattr(R, "results_dir", lambda: tmp_path)
    x, y = mnist_test.x[:30], mnist_test.y[:30]
    with_paper = cascade(trained_cnn, [Stage("FGSM (paper)", FGSM(0.2), "paper's attack"), Stage("PGD", PGD(0.2, 5))],
                         x, y, progress=False)
    without = cascade(trained_cnn, [Stage("PGD", PGD(0.2, 5))], x, y, progress=False)

    class Ledger:
        def save(self, res):
            res.add_table("claims", [{"claim": "c1"}])

    save_page("page_test", _Session(), {"eps": 0.2}, tables={"extra": [{"a": 1}], "full profile only": None},
              cascades={"a": with_paper, "b": without}, ledger=Ledger(),
              accuracies=[(with_paper.clean, {"model": "a", "measurement": "again"})])
    d = json.loads((tmp_path / "page_test.json").read_text())
    # the table given as None (not computed in this profile) is left out, not written empty
    assert set(d["tables"]) == {"extra", ADAPTIVE, "cascade: a", "cascade: b", "claims"}
    assert [r[LABEL] for r in d["tables"][ADAPTIVE]] == ["a", "b"]
    measured = [(r["model"], r["measurement"]) for r in d["accuracies"]]
    # b has no stage in the role of the paper's attack: no such accuracy is invented for it
    assert measured == [("a", "clean"), ("a", "paper's attack"), ("a", "adaptive worst case"), ("b", "clean"),
                        ("b", "adaptive worst case"), ("a", "again")]
    assert d["config"] == {"eps": 0.2}
    # a second table of the same name is refused before anything is written
    with pytest.raises(ValueError, match="already recorded"):
        save_page("page_test2", _Session(), {}, tables={ADAPTIVE: d["tables"][ADAPTIVE]}, cascades={"a": with_paper})
    assert not (tmp_path / "page_test2.json").exists()

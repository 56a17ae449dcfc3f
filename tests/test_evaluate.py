import pytest
import torch

from qutils.attacks import FGSM, PGD
from qutils.evaluate import Accuracy, accuracy, attack_table, robust_accuracy, wilson_interval


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = wilson_interval(0, 20)  # never below 0, not degenerate at p = 0
    assert lo == 0 and hi == pytest.approx(0.1611, abs=1e-4)
    lo, hi = wilson_interval(20, 20)
    assert hi == 1 and lo == pytest.approx(0.8389, abs=1e-4)


def test_wilson_interval_contains_p_and_narrows_with_n():
    for k, n in [(1, 10), (37, 100), (990, 1000)]:
        lo, hi = wilson_interval(k, n)
        assert lo <= k / n <= hi
    w = [wilson_interval(n // 2, n) for n in (100, 1000, 10000)]
    widths = [hi - lo for lo, hi in w]
    assert widths[0] > widths[1] > widths[2]


@pytest.mark.parametrize("k,n", [(5, 0), (-1, 10), (11, 10)])
def test_wilson_bad_input(k, n):
    with pytest.raises(ValueError):
        wilson_interval(k, n)


def test_accuracy_string_names_the_settings():
    s = str(Accuracy(930, 1000, "PGD", "white-box", "Linf", 0.3, 40))
    for part in ("93.0%", "95% CI", "1000 images", "PGD", "white-box", "Linf", "eps=0.3", "40 steps"):
        assert part in s


def test_attack_table_shape_and_clean_row(trained_cnn, mnist_test):
    x, y = mnist_test.x[:100], mnist_test.y[:100]
    df = attack_table(trained_cnn, [FGSM(0.1), PGD(0.1, steps=5)], [0.0, 0.1, 0.3], x, y, progress=False)
    assert len(df) == 6
    assert set(df.columns) >= {"attack", "threat_model", "norm", "eps", "steps", "n", "accuracy", "ci_low", "ci_high"}
    clean = accuracy(trained_cnn, x, y).value
    assert (df[df.eps == 0].accuracy == clean).all()
    pgd = df[df.attack == "PGD"].sort_values("eps").accuracy.tolist()
    assert pgd[0] >= pgd[1] >= pgd[2]
    assert (df.ci_low <= df.accuracy).all() and (df.accuracy <= df.ci_high).all()


def test_transfer_from_a_source_model(trained_cnn, mnist_test):
    x, y = mnist_test.x[:100], mnist_test.y[:100]
    torch.manual_seed(0)
    from qutils import models

    untrained = models.build("cnn_a").eval()  # examples from a random model barely transfer
    res = robust_accuracy(trained_cnn, FGSM(0.1), x, y, source=untrained)
    white = robust_accuracy(trained_cnn, FGSM(0.1), x, y)
    assert res.threat_model == "black-box (transfer)"
    assert res.value > white.value


def test_robust_accuracy_rejects_non_attacks(trained_cnn, mnist_test):
    with pytest.raises(ValueError, match="Attack"):
        robust_accuracy(trained_cnn, lambda m, x, y: x, mnist_test.x, mnist_test.y)


def test_significance_rule_is_interval_overlap():
    from qutils.evaluate import compare_accuracies, significantly_lower

    a, b, c = Accuracy(400, 1000), Accuracy(600, 1000), Accuracy(420, 1000)
    assert significantly_lower(a, b) and not significantly_lower(b, a)
    assert not significantly_lower(a, c) and not significantly_lower(c, a)  # overlapping intervals
    assert compare_accuracies(b, a) == "higher" and compare_accuracies(a, b) == "lower"
    assert compare_accuracies(a, c) == "no significant difference"
    # the same gap on few images is noise
    assert compare_accuracies(Accuracy(6, 10), Accuracy(4, 10)) == "no significant difference"



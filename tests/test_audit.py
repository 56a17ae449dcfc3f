"""The gradient-masking audit must pass an honest model and flag a rounding layer."""
import pytest

from qutils.attacks import BPDA
from qutils.defenses import BitDepthReduction, InputTransformModel
from qutils.evaluate import audit


def test_audit_passes_an_undefended_model(trained_cnn, mnist_test):
    x, y = mnist_test.x[:100], mnist_test.y[:100]
    rep = audit(trained_cnn, x, y, 0.3, steps=10, queries=200)
    assert rep.passed, str(rep)
    name, worst = rep.worst
    assert worst.value <= 0.05 and worst.eps == 0.3
    verdicts = {c.name: c.passed for c in rep.checks}
    assert verdicts["white-box beats transfer"] is None  # no substitute given: skipped, not passed
    assert "no sign of gradient masking" in str(rep)
    assert set(rep.to_frame().columns) == {"check", "verdict", "detail"}


def test_audit_flags_a_rounding_layer_and_bpda_fixes_the_number(trained_cnn, mnist_test):
    x, y = mnist_test.x[:100], mnist_test.y[:100]
    masked = InputTransformModel(BitDepthReduction(2), trained_cnn).eval()
    rep = audit(masked, x, y, 0.3, steps=10, queries=200)
    failed = set(rep.failed)
    assert {"gradients are informative", "gradient-free does not beat gradients",
            "adaptive attack does not beat plain PGD"} <= failed, str(rep)
    assert rep.results["PGD-10"].value > 0.7  # plain PGD reports robustness that is not there (measured 0.88-0.92)
    name, worst = rep.worst
    assert name.startswith("Square") and worst.value < 0.2  # the worst case comes from the gradient-free attack
    bpda = InputTransformModel(BPDA(BitDepthReduction(2)), trained_cnn).eval()
    rep2 = audit(masked, x, y, 0.3, steps=10, queries=200, attack_model=bpda)
    assert rep2.results["PGD-10+BPDA"].value < 0.2
    assert "GRADIENT MASKING" in str(rep2)


def test_audit_rejects_bad_arguments(trained_cnn, mnist_test):
    x, y = mnist_test.x[:8], mnist_test.y[:8]
    with pytest.raises(ValueError, match="L-infinity"):
        audit(trained_cnn, x, y, 1.0, norm="L2")
    for eps in (-0.1, 0.0, 1.0):
        with pytest.raises(ValueError, match="eps"):
            audit(trained_cnn, x, y, eps)


def test_a_check_that_passes_within_noise_says_so():
    """92.0% white-box against 81.0% transfer on 100 images: the intervals overlap, so the check
    passes, but its verdict and its numbers say the point estimates point the other way; a clear
    difference fails; an attack at least as strong passes plainly."""
    from qutils.audit import _not_beaten
    from qutils.metrics import Accuracy

    pg, tr = Accuracy(92, 100), Accuracy(81, 100)
    assert pg.ci[0] < tr.ci[1]  # the premise: overlapping intervals
    c = _not_beaten("white-box beats transfer", tr, pg, "numbers")
    assert c.passed and c.within_noise and c.verdict == "pass (within noise)" and "intervals overlap" in c.detail
    c = _not_beaten("white-box beats transfer", Accuracy(40, 100), pg, "numbers")
    assert c.passed is False and c.verdict == "FAIL"
    c = _not_beaten("white-box beats transfer", Accuracy(95, 100), pg, "numbers")
    assert c.passed and not c.within_noise and c.verdict == "pass" and c.detail == "numbers"

"""APGD (Croce & Hein 2020) against the Adversarial Robustness Toolbox's implementation, and its
own properties."""
import pytest
import torch

from qutils.attacks import APGD, APGDT, PGD
from qutils.attacks.apgd import checkpoints, dlr_loss, targeted_dlr_loss
from qutils.evaluate import robust_accuracy, significantly_lower

art = pytest.importorskip("art")


def _art_accuracy(model, x, y, eps, loss, steps):
    import numpy as np
    from art.attacks.evasion import AutoProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model.eval(), loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=10, clip_values=(0.0, 1.0))
    np.random.seed(0)
    atk = AutoProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=steps, nb_random_init=1,
                                       batch_size=len(x), loss_type=loss, verbose=False)
    xa = torch.from_numpy(atk.generate(x.numpy(), y.numpy()))
    with torch.no_grad():
        return (model(xa).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("loss,art_loss", [("ce", "cross_entropy"), ("dlr", "difference_logits_ratio")])
def test_apgd_agrees_with_art(loss, art_loss, trained_cnn, mnist_test):
    x, y = mnist_test.x, mnist_test.y
    eps, steps = 0.1, 20
    ours = robust_accuracy(trained_cnn, APGD(eps, steps=steps, loss=loss), x, y).value
    theirs = _art_accuracy(trained_cnn, x, y, eps, art_loss, steps)
    assert 0.1 < theirs < 0.9, f"eps={eps} is not informative: ART accuracy {theirs:.2f}"
    assert abs(ours - theirs) <= 0.02, f"APGD-{loss}: qutils {ours:.3f} vs ART {theirs:.3f}"


def test_apgd_stays_in_the_ball_and_does_not_modify_its_input(trained_cnn, mnist_test):
    x, y = mnist_test.x[:50], mnist_test.y[:50]
    x0 = x.clone()
    for atk in (APGD(0.1, steps=10), APGD(1.0, steps=10, norm="L2"), APGDT(0.1, steps=5, n_target_classes=2)):
        xa = atk(trained_cnn, x, y)
        assert torch.equal(x, x0)
        assert xa.min() >= 0 and xa.max() <= 1
        d = (xa - x).flatten(1)
        size = d.abs().amax(1) if str(atk.norm) == "Linf" else d.norm(dim=1)
        assert float(size.max()) <= atk.eps + 1e-5


def test_early_exit_changes_time_not_result(trained_cnn_f64, mnist_test):
    trained_cnn = trained_cnn_f64  # sub-batches against the whole batch: compared in float64 (see the fixture)
    x, y = mnist_test.x[:80].double(), mnist_test.y[:80]
    a = APGD(0.1, steps=15, early_stop=True)(trained_cnn, x, y)
    b = APGD(0.1, steps=15, early_stop=False)(trained_cnn, x, y)
    with torch.no_grad():
        pa, pb = trained_cnn(a).argmax(1), trained_cnn(b).argmax(1)
    assert torch.equal(pa != y, pb != y)


def test_apgd_is_at_least_as_strong_as_pgd_and_targets_help(trained_cnn, mnist_test):
    """APGD is not significantly weaker than PGD with the same steps (measured over four fixture
    seeds: 0-1 points apart, either way: a point-estimate comparison would test noise). APGD-T's
    first target is the whole of the one-target run, the next ones run on its survivors: image by
    image, nothing the one-target run breaks survives three targets."""
    x, y = mnist_test.x, mnist_test.y
    apgd = robust_accuracy(trained_cnn, APGD(0.1, steps=20), x, y)
    pgd = robust_accuracy(trained_cnn, PGD(0.1, steps=20), x, y)
    assert not significantly_lower(pgd, apgd), (apgd, pgd)
    with torch.no_grad():
        ok1 = trained_cnn(APGDT(0.1, steps=20, n_target_classes=1)(trained_cnn, x, y)).argmax(1) == y
        ok3 = trained_cnn(APGDT(0.1, steps=20, n_target_classes=3)(trained_cnn, x, y)).argmax(1) == y
    assert not (ok3 & ~ok1).any()


def test_dlr_losses_and_checkpoints():
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 1.0, 0.5]])
    y = torch.tensor([0, 0])
    d = dlr_loss(logits, y)
    assert d[0] < 0 < d[1]  # correct with a margin: negative; misclassified: positive
    assert torch.allclose(dlr_loss(10 * logits, y), d)  # scale-invariant
    t = targeted_dlr_loss(logits, y, torch.tensor([1, 1]))
    assert torch.allclose(targeted_dlr_loss(5 * logits, y, torch.tensor([1, 1])), t)
    with pytest.raises(ValueError, match="at least 3 classes"):
        dlr_loss(logits[:, :2], y)
    marks = checkpoints(100)
    assert marks[0] == 22 and marks == sorted(marks) and marks[-1] < 100
    assert all(b - a >= 6 for a, b in zip(marks, marks[1:]))


@pytest.mark.parametrize("kwargs", [dict(eps=-0.1), dict(eps=0.1, steps=0), dict(eps=0.1, loss="hinge"),
                                    dict(eps=0.1, norm="L1")])
def test_apgd_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        APGD(**kwargs)

"""qutils attacks against foolbox 3's own implementations, with the same settings, on a small
trained MNIST model: robust accuracy within 2 points, C&W L2 median norm within 10%.

The epsilons are chosen where accuracy is between 20% and 90%, where a wrong attack would show."""
import pytest
import torch

fb = pytest.importorskip("foolbox")

from qutils.attacks import CWL2, FGSM, PGD, DeepFool, Norm, project  # noqa: E402
from qutils.evaluate import distances, predict, robust_accuracy  # noqa: E402


def _fb_accuracy(model, attack, x, y, eps):
    fmodel = fb.PyTorchModel(model.eval(), bounds=(0, 1))
    torch.manual_seed(0)
    _, _, success = attack(fmodel, x, y, epsilons=eps)
    return 1 - success.float().mean().item()


# (name, qutils attack, foolbox attack, eps, images)
CASES = [
    ("FGSM", lambda: FGSM(0.1), lambda: fb.attacks.FGSM(), 0.1, 200),
    ("PGD-Linf", lambda: PGD(0.1, steps=20), lambda: fb.attacks.LinfPGD(steps=20, rel_stepsize=2.5 / 20), 0.1, 200),
    ("PGD-L2", lambda: PGD(1.5, norm="L2", steps=20),
     lambda: fb.attacks.L2PGD(steps=20, rel_stepsize=2.5 / 20), 1.5, 200),
    ("DeepFool-L2", lambda: DeepFool(1.0), lambda: fb.attacks.L2DeepFoolAttack(), 1.0, 100),
    ("DeepFool-Linf", lambda: DeepFool(0.1, norm="Linf"), lambda: fb.attacks.LinfDeepFoolAttack(), 0.1, 100),
]


@pytest.mark.parametrize("name,ours,theirs,eps,n", CASES, ids=[c[0] for c in CASES])
def test_robust_accuracy_agrees_with_foolbox(name, ours, theirs, eps, n, trained_cnn, mnist_test):
    x, y = mnist_test.x[:n], mnist_test.y[:n]
    a = robust_accuracy(trained_cnn, ours(), x, y).value
    b = _fb_accuracy(trained_cnn, theirs(), x, y, eps)
    assert 0.1 < b < 0.95, f"eps={eps} is not informative for {name}: foolbox accuracy {b:.2f}"
    assert abs(a - b) <= 0.02, f"{name}: qutils {a:.3f} vs foolbox {b:.3f}"


def test_cw_l2_agrees_with_foolbox(trained_cnn, mnist_test):
    x, y = mnist_test.x[:100], mnist_test.y[:100]
    kw = dict(binary_search_steps=4, steps=50, initial_const=1.0, stepsize=0.1)
    eps = 1.5
    ours = CWL2(**kw)(trained_cnn, x, y)
    fmodel = fb.PyTorchModel(trained_cnn.eval(), bounds=(0, 1))
    raw, _, success = fb.attacks.L2CarliniWagnerAttack(**kw)(fmodel, x, y, epsilons=[None, eps])
    d_ours = distances(trained_cnn, x, ours, y, "L2")
    d_fb = distances(trained_cnn, x, raw[0].clamp(0, 1), y, "L2")
    assert torch.isfinite(d_ours).float().mean() >= 0.95 and torch.isfinite(d_fb).float().mean() >= 0.95
    m_ours, m_fb = d_ours.median().item(), d_fb.median().item()
    assert abs(m_ours - m_fb) <= 0.1 * m_fb, f"median L2: qutils {m_ours:.3f} vs foolbox {m_fb:.3f}"
    # robust accuracy at a fixed budget: CWL2(eps) projects its result onto the eps ball, as foolbox does
    ours_at_eps = project(ours, x, eps, Norm.L2)
    a = (predict(trained_cnn, ours_at_eps) == y).float().mean().item()
    b = 1 - success[1].float().mean().item()
    assert 0.1 < b < 0.95
    assert abs(a - b) <= 0.02 + 1e-9, f"accuracy at L2 {eps}: qutils {a:.3f} vs foolbox {b:.3f}"

"""Issue 27's training recipes: Madry's last iterate, the epsilon ramp, the one-cycle schedule,
early stopping, and a run that resumes after an interruption with the weights of an
uninterrupted one."""
import dataclasses

import pytest
import torch
import torch.nn as nn

from qutils import models
from qutils.attacks import PGD
from qutils.train import TrainConfig, _adversarial_batch, get_trained, train
from qutils.train_config import make_optimizer, make_scheduler

CPU = torch.device("cpu")


class _Steep(nn.Module):
    """A linear 2-class model on one pixel: the first PGD step already fools it, later steps keep
    climbing the loss -- where the first and the last iterate differ."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(20.0))

    def forward(self, x):
        v = x.flatten(1)[:, :1] - 0.5
        return torch.cat([self.w * v, -self.w * v], 1)


def test_pgd_keep_last_returns_the_loss_maximiser_keep_first_the_first_fooling_iterate():
    m = _Steep()
    x = torch.full((4, 1, 2, 2), 0.52)
    y = torch.zeros(4, dtype=torch.long)
    first = PGD(0.3, steps=10, abs_stepsize=0.05, seed=0)(m, x, y)
    last = PGD(0.3, steps=10, abs_stepsize=0.05, seed=0, keep="last")(m, x, y)
    assert (m(first).argmax(1) != y).all() and (m(last).argmax(1) != y).all()
    # the last iterate walked to the edge of the ball; the first fooling one stopped short of it
    assert torch.allclose(last[:, 0, 0, 0], torch.full((4,), 0.22))
    assert (first[:, 0, 0, 0] > 0.22 + 1e-3).all()
    ce = nn.functional.cross_entropy
    assert ce(m(last), y) > ce(m(first), y)
    assert (last - x).abs().max() <= 0.3 + 1e-6


def test_training_crafts_on_the_last_iterate_when_asked():
    m = _Steep()
    x = torch.full((3, 1, 2, 2), 0.52)
    y = torch.zeros(3, dtype=torch.long)
    cfg = TrainConfig(adv="pgd", adv_eps=0.3, adv_steps=10, adv_iterate="last")
    xa = _adversarial_batch(cfg, m, x, y, 0)
    ref = PGD(0.3, steps=10, seed=0, keep="last")(m, x, y)
    assert torch.equal(xa, ref)
    assert not torch.equal(xa, _adversarial_batch(dataclasses.replace(cfg, adv_iterate="first"), m, x, y, 0))


@pytest.mark.parametrize("kwargs", [dict(keep="max"), dict(keep="last", early_stop=True)])
def test_pgd_bad_keep_raises(kwargs):
    with pytest.raises(ValueError):
        PGD(0.1, **kwargs)


@pytest.mark.parametrize("kwargs", [dict(adv_iterate="middle"), dict(adv_ramp_epochs=-1), dict(patience=0),
                                    dict(patience=2, select="last"), dict(warmup_frac=1.0), dict(schedule="cyclic")])
def test_bad_recipe_raises(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_settings_at_their_old_values_leave_the_cache_key_unchanged():
    key = TrainConfig().cache_key()
    assert not {"adv_iterate", "adv_ramp_epochs", "patience", "warmup_frac"} & set(key)
    assert TrainConfig(adv_iterate="last").cache_key()["adv_iterate"] == "last"
    assert TrainConfig(adv_ramp_epochs=2).cache_key() != key


def test_epsilon_ramp_grows_linearly_then_holds():
    cfg = TrainConfig(adv="pgd", adv_eps=0.3, adv_ramp_epochs=2)
    eps = [cfg.eps_at(s, steps_per_epoch=5) for s in range(12)]
    assert eps[0] == pytest.approx(0.03) and eps[9] == pytest.approx(0.3) and eps[11] == pytest.approx(0.3)
    assert all(a < b for a, b in zip(eps[:10], eps[1:10]))
    assert TrainConfig(adv_eps=0.3).eps_at(0, 5) == 0.3


def test_onecycle_rises_to_lr_then_falls():
    cfg = TrainConfig(schedule="onecycle", lr=0.1, epochs=2, optimizer="sgd", warmup_frac=0.25)
    opt = make_optimizer(cfg, [nn.Parameter(torch.zeros(1))])
    sched = make_scheduler(cfg, opt, steps_per_epoch=10)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    peak = max(range(20), key=lambda i: lrs[i])
    assert lrs[peak] == pytest.approx(0.1) and 3 <= peak <= 6
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:])) and lrs[-1] < 0.01


def test_patience_stops_when_validation_stops_improving(small_sets):
    tr, va = small_sets
    # a learning rate of ~0 never improves on epoch 1: patience 1 stops after epoch 2
    res = train(models.build("lenet"), tr, va, TrainConfig(epochs=6, batch_size=128, lr=1e-12, patience=1),
                device=CPU, progress=False)
    assert [h["epoch"] for h in res.history] == [1, 2] and res.best_epoch == 1


class _Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(small_sets, tmp_path):
    tr, va = small_sets
    cfg = TrainConfig(epochs=3, batch_size=128, adv="pgd", adv_eps=0.2, adv_steps=2, adv_iterate="last",
                      adv_ramp_epochs=1, schedule="onecycle", seed=3)

    def fresh():
        torch.manual_seed(0)
        return models.build("cnn_a")  # dropout: the global random generator must be restored too

    whole = train(fresh(), tr, va, cfg, device=CPU, progress=False)

    def stop_at_2(model, data_, epoch):
        if epoch == 2:
            raise _Interrupt

    state = tmp_path / "run.partial"
    with pytest.raises(_Interrupt):
        train(fresh(), tr, va, cfg, device=CPU, progress=False, on_epoch_end=stop_at_2, resume=state)
    assert state.exists()
    torch.manual_seed(123)  # the interrupted process's random state is gone
    resumed = train(fresh(), tr, va, cfg, device=CPU, progress=False, resume=state)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == whole.history
    assert not state.exists()  # removed once the run ends


def test_progress_of_another_configuration_is_not_resumed(small_sets, tmp_path):
    tr, va = small_sets
    cfg = TrainConfig(epochs=2, batch_size=128, seed=1)

    def stop_at_2(model, data_, epoch):
        if epoch == 2:
            raise _Interrupt

    state = tmp_path / "run.partial"
    with pytest.raises(_Interrupt):
        train(models.build("lenet"), tr, va, cfg, device=CPU, progress=False, on_epoch_end=stop_at_2, resume=state)
    with pytest.warns(RuntimeWarning, match="cannot resume"):
        res = train(models.build("lenet"), tr, va, dataclasses.replace(cfg, lr=2e-3), device=CPU, progress=False,
                    resume=state)
    assert [h["epoch"] for h in res.history] == [1, 2]


def test_get_trained_resumes_from_the_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("QUTILS_CACHE", str(tmp_path))
    from qutils.profiles import get_profile

    prof = dataclasses.replace(get_profile("smoke"), train_subset=256, val_subset=64)
    cfg = TrainConfig(epochs=2, batch_size=128)
    calls = []

    def hook(model, data_, epoch):
        calls.append(epoch)
        if epoch == 2 and len(calls) == 2:
            raise _Interrupt

    hook.cache_key = "test-hook"
    with pytest.raises(_Interrupt):
        get_trained("lenet", "mnist", cfg, profile=prof, device=CPU, progress=False, on_epoch_end=hook)
    assert len(list(tmp_path.glob("*.partial"))) == 1
    res = get_trained("lenet", "mnist", cfg, profile=prof, device=CPU, progress=False, on_epoch_end=hook)
    assert calls == [1, 2, 2]  # epoch 1 was not trained again
    assert not res.from_cache and len(res.history) == 2
    assert not list(tmp_path.glob("*.partial")) and len(list(tmp_path.glob("*.pt"))) == 1

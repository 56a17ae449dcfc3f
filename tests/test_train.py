import warnings

import pytest
import torch

from qutils import cache, models
from qutils.profiles import get_profile
from qutils.train import TrainConfig, get_trained, train

CPU = torch.device("cpu")


def test_loss_falls_on_a_small_subset(small_sets):
    tr, va = small_sets
    res = train(models.build("cnn_a"), tr, va, TrainConfig(epochs=3, batch_size=64), device=CPU, progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.6 * losses[0]
    assert res.history[-1]["val_clean"] > 0.7


def test_same_seed_same_weights_other_seed_other_weights(small_sets):
    tr, _ = small_sets

    def run(seed):
        torch.manual_seed(seed)  # initialisation follows the seed too
        m = models.build("cnn_a")
        return train(m, tr, None, TrainConfig(epochs=1, batch_size=64, select="last", seed=seed),
                     device=CPU, progress=False).model.state_dict()

    a, b, c = run(5), run(5), run(6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_model_selection_keeps_the_best_epoch(small_sets):
    tr, va = small_sets
    res = train(models.build("lenet"), tr, va, TrainConfig(epochs=3, batch_size=64, lr=3e-3, select="mixed",
                                                           select_eps=0.2), device=CPU, progress=False)
    scores = [h["val_mixed"] for h in res.history]
    assert res.best_epoch == 1 + max(range(3), key=lambda i: scores[i])
    from qutils.evaluate import accuracy, robust_accuracy
    from qutils.attacks import FGSM

    mixed = (accuracy(res.model, va.x, va.y).value + robust_accuracy(res.model, FGSM(0.2), va.x, va.y).value) / 2
    assert mixed == pytest.approx(max(scores))  # the returned weights are the selected epoch's


def test_adversarial_training_runs_and_differs(small_sets):
    tr, _ = small_sets
    cfg = dict(epochs=1, batch_size=64, select="last")
    torch.manual_seed(0)
    plain = train(models.build("lenet"), tr, None, TrainConfig(**cfg), device=CPU, progress=False).model
    torch.manual_seed(0)
    adv = train(models.build("lenet"), tr, None, TrainConfig(adv="pgd", adv_eps=0.1, adv_steps=3, **cfg),
                device=CPU, progress=False).model
    assert not torch.equal(plain.state_dict()["classifier.5.weight"], adv.state_dict()["classifier.5.weight"])


@pytest.mark.parametrize("kwargs", [dict(optimizer="adagrad"), dict(lr=-1), dict(adv="cw"), dict(select="best"),
                                    dict(epochs=0), dict(adv_weight=2.0)])
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_optimizers_and_schedules():
    from qutils.train import make_optimizer, make_scheduler

    p = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer(TrainConfig(optimizer="radam"), p), torch.optim.RAdam)
    opt = make_optimizer(TrainConfig(optimizer="sgd", lr=0.1), p)
    sched = make_scheduler(TrainConfig(optimizer="sgd", schedule="step", step_size=2, epochs=5), opt)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_cache_hit_corrupt_and_mismatched_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("QUTILS_CACHE", str(tmp_path))
    prof = get_profile("smoke").replace(train_subset=256, val_subset=128)
    cfg = TrainConfig(epochs=1, batch_size=64)
    first = get_trained("lenet", "mnist", cfg, profile=prof, device=CPU, progress=False)
    assert not first.from_cache
    second = get_trained("lenet", "mnist", cfg, profile=prof, device=CPU, progress=False)
    assert second.from_cache
    sd1, sd2 = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1
    # a truncated (corrupt) file is detected, warned about and rebuilt
    files[0].write_bytes(files[0].read_bytes()[:1000])
    with pytest.warns(RuntimeWarning, match="unusable"):
        third = get_trained("lenet", "mnist", cfg, profile=prof, device=CPU, progress=False)
    assert not third.from_cache
    assert get_trained("lenet", "mnist", cfg, profile=prof, device=CPU, progress=False).from_cache
    # an entry whose weights do not fit the model (another architecture saved under this key)
    entry = torch.load(files[0], weights_only=True)
    entry["state_dict"] = models.build("cnn_a").state_dict()
    torch.save(entry, files[0])
    with pytest.warns(RuntimeWarning, match="unusable"):
        assert not get_trained("lenet", "mnist", cfg, profile=prof, device=CPU, progress=False).from_cache
    # a different config is a different key
    other = get_trained("lenet", "mnist", TrainConfig(epochs=1, batch_size=32), profile=prof, device=CPU,
                        progress=False)
    assert not other.from_cache and len(list(tmp_path.glob("*.pt"))) == 2


def test_cache_rejects_an_entry_with_another_config(tmp_path, monkeypatch):
    monkeypatch.setenv("QUTILS_CACHE", str(tmp_path))
    m = models.build("lenet")
    cache.cached_state({"a": 1}, m, lambda mod: None)
    path = cache.entry_path({"a": 1})
    entry = torch.load(path, weights_only=True)
    entry["config"] = {"a": 2}
    torch.save(entry, path)
    built = []
    with pytest.warns(RuntimeWarning, match="config differs"):
        cache.cached_state({"a": 1}, models.build("lenet"), lambda mod: built.append(1))
    assert built == [1]


def test_function_models_need_a_cache_key():
    with pytest.raises(ValueError, match="key"):
        get_trained(lambda: models.build("lenet"), "mnist")


def test_best_of_seeds_keeps_the_seed_with_the_best_mixed_validation_score(tmp_path, monkeypatch):
    from qutils.train import best_of_seeds

    monkeypatch.setenv("QUTILS_CACHE", str(tmp_path))
    prof = get_profile("smoke").replace(train_subset=256, val_subset=128)
    source = get_trained("lenet", "mnist", TrainConfig(epochs=1, batch_size=64, seed=9), profile=prof, device=CPU,
                         progress=False).model
    cfg = TrainConfig(epochs=1, batch_size=64, select="mixed", select_eps=0.2)
    best, table = best_of_seeds("lenet", "mnist", cfg, [0, 1, 2], profile=prof, device=CPU, progress=False,
                                select_source=source)
    assert list(table.seed) == [0, 1, 2] and table.kept.sum() == 1
    kept = table[table.kept].iloc[0]
    assert kept.val_mixed == table.val_mixed.max()
    assert max(h["val_mixed"] for h in best.history) == kept.val_mixed
    assert len(set(table.val_mixed)) > 1 or len(table) == 1  # different seeds, different models
    again, _ = best_of_seeds("lenet", "mnist", cfg, [0, 1, 2], profile=prof, device=CPU, progress=False,
                             select_source=source)
    assert again.from_cache  # each seed is cached on its own
    with pytest.raises(ValueError):
        best_of_seeds("lenet", "mnist", TrainConfig(select="last"), [0, 1], profile=prof)
    with pytest.raises(ValueError):
        best_of_seeds("lenet", "mnist", cfg, [1, 1], profile=prof)

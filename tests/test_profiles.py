import pytest
import torch

from qutils import seed_everything
from qutils.profiles import PROFILES, get_device, get_profile


def test_profiles_scale_up():
    s, b, f = PROFILES["smoke"], PROFILES["book"], PROFILES["full"]
    assert s.eval_images < b.eval_images <= f.eval_images
    assert s.attack_steps < b.attack_steps <= f.attack_steps
    assert s.train_subset is not None and b.train_subset is None


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("QUTILS_PROFILE", "full")
    assert get_profile().name == "full"
    monkeypatch.setenv("QUTILS_PROFILE", "huge")
    with pytest.raises(ValueError, match="smoke"):
        get_profile()


def test_device(monkeypatch):
    monkeypatch.delenv("QUTILS_DEVICE", raising=False)
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("QUTILS_DEVICE", "cpu")
    assert get_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            get_device("cuda")


def test_seed_everything():
    seed_everything(3)
    a = torch.rand(3)
    seed_everything(3)
    assert torch.equal(a, torch.rand(3))
    with pytest.raises(ValueError):
        seed_everything(-1)

"""Adversarial-training recipes as their papers define them, as :class:`~qutils.train_config.TrainConfig`
settings -- so a baseline says which recipe it is and a reader can check it against the paper.

* :func:`madry_pgd` -- PGD adversarial training (Madry et al. 2018, "Towards deep learning models
  resistant to adversarial attacks", section 4 and appendix C): minimise the loss at the *last*
  PGD iterate (the inner maximiser), on adversarial examples only (``adv_weight=1``). From scratch
  at MNIST eps 0.3 a short run stalls at chance (issue 27 measured 9.8% clean on the DQA LeNet), so
  the radius ramps up from 0 over the first epochs (``adv_ramp_epochs``; Gowal et al. 2018's
  epsilon schedule for the same stall).
* :func:`wong_fgsm_rs` -- FGSM from a random start (Wong, Rice & Kolter 2020, "Fast is better
  than free", section 4 and appendix): one FGSM step of ``1.25 eps`` from a uniform start, adversarial
  examples only, a cyclic (one-cycle) learning rate peaking at 5e-3 with Adam on MNIST; the whole
  run's last epoch is kept. Their MNIST network keeps 88.8% under PGD at eps 0.3 after 10 epochs.

Every recipe keeps the last epoch (``select="last"``): selecting on clean validation accuracy would
pick the least robust epoch of an adversarial run.
"""
from __future__ import annotations

from .train_config import TrainConfig

__all__ = ["madry_pgd", "wong_fgsm_rs", "RECIPES"]


def madry_pgd(eps: float, epochs: int, steps: int = 10, ramp_epochs: int = 0, lr: float = 1e-3,
              batch_size: int = 100, seed: int = 0) -> TrainConfig:
    """Madry et al.'s PGD training: the last iterate of ``steps``-step PGD at ``eps``, adversarial
    loss only, Adam, a one-cycle learning rate peaking at ``lr``; the radius ramped over ``ramp_epochs``."""
    return TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=lr, schedule="onecycle",
                       adv="pgd", adv_eps=eps, adv_steps=steps, adv_iterate="last", adv_weight=1.0,
                       adv_ramp_epochs=ramp_epochs, select="last", seed=seed)


def wong_fgsm_rs(eps: float, epochs: int = 10, lr: float = 5e-3, batch_size: int = 100, ramp_epochs: int = 0,
                 seed: int = 0) -> TrainConfig:
    """Wong et al.'s FGSM-RS training (step ``1.25 eps`` from a uniform start), adversarial loss only,
    Adam with a one-cycle learning rate peaking at ``lr`` half-way (their cyclic rate)."""
    return TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=lr, schedule="onecycle",
                       warmup_frac=0.5, adv="fgsm_rs", adv_eps=eps, adv_weight=1.0, adv_ramp_epochs=ramp_epochs,
                       select="last", seed=seed)


#: the recipes by name, for configs and tables
RECIPES = {"madry_pgd": madry_pgd, "wong_fgsm_rs": wong_fgsm_rs}

"""The DQA chapter's settings, per dataset and profile, and the names of its models.

Where the paper is silent the choice is ours and the field's comment says so; where the ``book``
budget is below the paper's, the comment says that too (and the chapter repeats it next to the
numbers).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ... import data as qdata
from ...chapter import CascadeSettings
from ...profiles import Profile

__all__ = ["DQAConfig", "config_for", "FULL_PRECISION", "name_of", "parse_name", "SOURCES"]

FULL_PRECISION = "Full precision (ReLU)"
#: the black-box substitutes of table 6 (VGG16 and AlexNet in the paper): registry architecture per name
SOURCES = {"AlexNet (substitute)": "alexnet", "CNN_A (substitute)": "cnn_a"}


def name_of(kind: str, bits: int) -> str:
    """The table name of a DQA model: ``"Fixed 2-bit"``, ``"Dynamic 1-bit"``."""
    return f"{kind.capitalize()} {bits}-bit"


def parse_name(name: str) -> tuple[str, int] | None:
    """``("fixed" | "dynamic", bits)`` of a DQA model's name, ``None`` for the full-precision one."""
    if name == FULL_PRECISION:
        return None
    try:
        kind, bits = name.split(" ")
        kind, bits = kind.lower(), int(bits.split("-")[0])
    except ValueError:
        raise ValueError(f"not a DQA model name: {name!r}") from None
    if kind not in ("fixed", "dynamic"):
        raise ValueError(f"not a DQA model name: {name!r}")
    return kind, bits


@dataclass
class DQAConfig(CascadeSettings):
    STEPS_FIELD = "apgd_steps"  #: the cascade's APGD steps (:class:`~qutils.chapter.CascadeSettings`)
    #: the designed attacks' settings: annealed BPDA's steepnesses and steps per steepness
    DESIGNED_FIELDS = ("anneal_z", "anneal_steps")
    dataset: str
    arch: str = "lenet"  #: section 4: LeNet on MNIST (ResNet-18 on CIFAR-10)
    bits: tuple[int, ...] = (1, 2, 3)  #: table 1
    kinds: tuple[str, ...] = ("fixed", "dynamic")  #: table 1
    scope: str = "sample"  #: our choice for eq. 2's max|y| (the paper: "the y matrix"); see qutils.defenses.dqa
    levels: str = "paper"  #: eq. 8's output levels as printed ("uniform": the alternative reading)
    ste_z: float = 4.0  #: steepness of the sigmoid steps that move the dynamic thresholds in training
    lr: float = 1e-3  #: not stated; Adam
    batch_size: int = 128  #: not stated
    warmup_epochs: int = 2  #: section 4: "we train the model with clean data for some initial epoch"
    adv_epochs: int = 1  #: PGD adversarial training epochs (not stated; Madry et al. train ~100k iterations)
    adv_train_subset: int | None = 30_000  #: training images per PGD epoch (book budget; None: all 60,000)
    adv_eps: float = 0.3  #: Madry et al.'s MNIST radius (the paper's table 4 evaluates at 0.3)
    adv_steps: int = 5  #: PGD steps in training (Madry et al.: 40 of 0.01; the book budget: 5 of 2.5 eps / 5)
    adv_weight: float = 0.5  #: section 4: adversarial examples are "mixed" into training: half clean, half PGD
    seeds: tuple[int, ...] = (0,)  #: training runs of every model
    headline_seeds: tuple[int, ...] = (0, 1, 2)  #: runs of the headline pair (full precision, dynamic 2-bit)
    eps: float = 0.3  #: table 4: 0.3 on MNIST
    pgd_steps: int = 40  #: table 4: PGD with 40 steps on MNIST ...
    pgd_stepsize: float = 0.01  #: ... of 0.01 (Madry et al.'s MNIST setting)
    eval_images: int = 1000  #: test images of table 1
    cw_images: int = 100  #: table 3: images of C&W L2
    cw_steps: int = 100
    cw_binary_steps: int = 5  #: binary search over C&W's constant, from cw_const (not stated in the paper)
    cw_const: float = 1.0
    cw_stepsize: float = 0.1  #: Adam's step in C&W's tanh space (100% success on the clean LeNet)
    zoo_images: int = 10  #: table 5: 200 images in the paper (ZOO makes 256 queries per iteration and image)
    zoo_iterations: int = 100  #: ZOO iterations per image (coordinate-wise ADAM, 128 coordinates each)
    fd_h: float = 1e-4  #: ZOO's finite-difference step (Chen et al. 2017: 1e-4)
    substitute_epochs: int = 1  #: clean training of table 6's substitutes
    tsne_images: int = 500  #: figure 3
    tsne_eps: float = 0.3  #: figure 3's attack radius (PGD through the straight-through view)
    adaptive_images: int = 500  #: images of the adaptive cascade
    convergence_images: int = 100  #: the convergence check: the cascade with twice the budget, on its first images
    apgd_steps: int = 100  #: steps of every APGD stage (AutoAttack's 100)
    apgd_targets: int = 9  #: target classes of APGD-T (AutoAttack's 9)
    anneal_z: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)  #: the designed attack's staircase steepnesses
    anneal_steps: int = 20  #: its steps per steepness
    square_queries: int = 5000  #: Square's queries (AutoAttack's 5000), on every image the other stages left
    curve_images: int = 100  #: the accuracy-versus-epsilon curves
    epsilons: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35)
    seed: int = 0

    def names(self) -> list[str]:
        """Table 1's rows: the full-precision model, then fixed and dynamic for every bit width."""
        return [FULL_PRECISION] + [name_of(k, b) for k in self.kinds for b in self.bits]

    @property
    def headline(self) -> tuple[str, str]:
        """The pair the paper's abstract compares: the 2-bit dynamic DQA against full precision."""
        return name_of("dynamic", 2), FULL_PRECISION


def config_for(dataset: str, profile: Profile) -> DQAConfig:
    """The chapter's settings for ``dataset`` (MNIST: the paper's eps 0.3; Fashion-MNIST: 0.1, the
    book's common setting) scaled to ``profile``."""
    name = qdata.canonical_name(dataset)
    cfg = DQAConfig(dataset=name)
    if name == "fashion_mnist":
        cfg = dataclasses.replace(cfg, adv_eps=0.1, eps=0.1, pgd_stepsize=0.01 / 3, tsne_eps=0.1,
                                  epsilons=(0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2))
    elif name == "cifar10":
        # table 2: ResNet-18, eps 8/255, PGD with 7 steps (table 4)
        cfg = dataclasses.replace(cfg, arch="resnet18", adv_eps=8 / 255, eps=8 / 255, pgd_steps=7,
                                  pgd_stepsize=2 / 255, adv_steps=7, tsne_eps=8 / 255,
                                  epsilons=(0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255))
    elif name != "mnist":
        raise ValueError(f"the DQA chapter runs MNIST, Fashion-MNIST and (full profile) CIFAR-10, got {dataset!r}")
    if profile.name == "smoke":
        cfg = dataclasses.replace(cfg, adv_train_subset=1000, adv_steps=2, headline_seeds=(0, 1),
                                  eval_images=profile.eval_images, pgd_steps=profile.attack_steps,
                                  pgd_stepsize=2.5 * cfg.eps / profile.attack_steps, cw_images=10, cw_steps=10,
                                  cw_binary_steps=2, zoo_images=2, zoo_iterations=5, substitute_epochs=1,
                                  tsne_images=60, adaptive_images=40, apgd_steps=profile.attack_steps, apgd_targets=1,
                                  anneal_z=(1.0, 8.0), anneal_steps=3, square_queries=30, curve_images=20, convergence_images=10,
                                  epsilons=cfg.epsilons[::3])
    elif profile.name == "full":
        cfg = dataclasses.replace(cfg, adv_epochs=10, adv_train_subset=None, adv_steps=40 if name != "cifar10" else 7,
                                  seeds=(0, 1, 2, 3, 4), headline_seeds=(0, 1, 2, 3, 4),
                                  eval_images=profile.eval_images, cw_images=1000, zoo_images=200,
                                  zoo_iterations=1000, substitute_epochs=10, tsne_images=2000, adaptive_images=1000,
                                  convergence_images=1000, curve_images=1000)
    return cfg

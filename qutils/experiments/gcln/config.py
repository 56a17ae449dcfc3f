"""The GCLN chapter's settings, per dataset and profile.

The paper measures CIFAR-10 and SVHN only; the chapter ports every experiment to MNIST and
Fashion-MNIST at the book's common radii (L-infinity 0.3 and 0.1) and keeps the paper's ratios:
the attack step is ``eps / 8`` (the paper: 1/255 at 8/255, 10 steps) and the quantization steps
are the paper's ``Qs = 5`` and ``10`` *relative to its radius* (``Qs / (255 eps) = 5/8`` and
``10/8``), so the rounding is as coarse against our perturbation as it was against the paper's.
Where the paper is silent the choice is ours and the field's comment says so; where the ``book``
budget is below the paper's, the comment says that too.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ... import data as qdata
from ...chapter import CascadeSettings
from ...profiles import Profile

__all__ = ["GCLNConfig", "config_for", "QS_RATIOS", "PAPER_QS"]

PAPER_QS = (5, 10)  #: the paper's two quantization steps (tables 1-4), on pixels in [0, 255], at its radius 8/255
#: the quantization steps as multiples of the radius: the paper's two (5/8, 10/8) and figure 3's sweep
QS_RATIOS = (0.25, 5 / 8, 10 / 8, 2.5)


@dataclass
class GCLNConfig(CascadeSettings):
    STEPS_FIELD = "apgd_steps"  #: the cascade's APGD steps (:class:`~qutils.chapter.CascadeSettings`)
    #: the designed attacks' settings: low-frequency PGD's band and relative step size (GCLN), the threshold
    #: flip's pixels per step and steps (feature squeezing's 1-bit input)
    DESIGNED_FIELDS = ("lowfreq_keep", "rel_stepsize", "flips", "flip_steps")
    dataset: str
    eps: float = 0.3  #: the book's common MNIST radius (the paper: 8/255 on CIFAR-10, 12/255 on SVHN)
    attack_steps: int = 10  #: section 4.2: 10 iterations ...
    rel_stepsize: float = 1 / 8  #: ... of 1/255 at 8/255: eps / 8
    q_ratios: tuple[float, ...] = (5 / 8, 10 / 8)  #: table 1's two GCLN models: q = ratio x eps
    sweep_ratios: tuple[float, ...] = QS_RATIOS  #: figure 3 (left): accuracy against Qs under BPDA
    block: int = 8  #: M: not stated; JPEG's 8
    pad: int = 2  #: 28 x 28 padded to 32 x 32 (four 8 x 8 blocks a side); 0 for 32 x 32 images
    width: int = 32  #: channels of G's first layer and of D's (architectures not stated; ours)
    target: str = "cnn_a"  #: the classifier chapter 1 trains (the paper: ResNets)
    substitute: str = "cnn_b"  #: table 3's substitute, trained the same way (the paper: ResNet-34)
    feature_net: str = "lenet"  #: the perceptual loss's features (the paper: pretrained VGG-19; ours: a separately
    #: trained classifier, not the target)
    feature_epochs: int = 2  #: the feature network's training (book budget: 2 epochs of 20,000 images)
    feature_subset: int | None = 20_000
    pgd_train_steps: int = 5  #: the PGD-trained baseline (Madry et al.: 40 steps; book budget: 5) ...
    pgd_train_epochs: int = 2  #: ... 2 epochs (Madry et al.: about 80) ...
    pgd_train_subset: int | None = 15_000  #: ... of 15,000 images
    g_images: int = 10_000  #: training images attacked on the target for G and D (the paper: the training set)
    g_epochs: int = 3
    g_batch: int = 64
    g_lr: float = 2e-4
    lam: float = 0.5  #: section 3.3
    clean_inputs: float = 0.5  #: share of clean images among G's inputs (ours; the cleaner also sees clean images)
    pool: int = 2000  #: the recycled clean set's capacity
    eval_images: int = 500  #: tables 1-3 (the paper: the test set)
    cw_confidence: float = 0.0
    bpda_steps: tuple[int, ...] = (10, 20, 50, 100)  #: figure 3 (right): BPDA iterations (the paper: 10-100)
    pgd_iterations: tuple[int, ...] = (10, 20, 40, 100)  #: figure 4 (left): PGD iterations
    curve_images: int = 200  #: figures 3 and 4
    epsilons: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4)  #: figure 4 (right) and the adaptive curve
    #: the cascade, at AutoAttack's standard strength (below): the book profile attacks fewer images than
    #: the full one, never with a weaker attack
    adaptive_images: int = 100
    convergence_images: int = 50  #: the convergence check: the cascade again with twice the budget, on its first images
    apgd_steps: int = 100  #: AutoAttack's 100
    apgd_targets: int = 9  #: AutoAttack's 9
    square_queries: int = 5000  #: AutoAttack's 5000
    lowfreq_keep: int = 4  #: the designed attack: the lowest k x k DCT frequencies of every block
    flip_steps: int = 100  #: feature squeezing's designed attack (threshold flip, as chapter 3's): steps ...
    flips: int = 4  #: ... and pixels moved per step
    #: feature squeezing (1 bit) bounded from both sides (``cfg.certify``): the cascade's first 100 images at
    #: two radii; per image 40 boxes at the smaller radius, 10 at the larger (where the bound proves nothing:
    #: the search then only looks for adversarial vertices)
    certify_images: int = 100
    certify_epsilons: tuple[float, ...] = (0.1, 0.3)
    certify_nodes: int | tuple[int, ...] = (40, 10)
    certify_enum: int = 10  #: a box with at most this many free pixels is enumerated (2**10 images)
    figure_images: int = 3  #: figure 2's examples
    seed: int = 0

    @property
    def stepsize(self) -> float:
        return self.rel_stepsize * self.eps

    @property
    def qs(self) -> tuple[float, ...]:
        """Table 1's quantization steps q (pixels in [0, 1])."""
        return tuple(r * self.eps for r in self.q_ratios)

    def sweep_qs(self) -> tuple[float, ...]:
        """Figure 3's steps, table 1's among them."""
        return tuple(r * self.eps for r in sorted(set(self.sweep_ratios) | set(self.q_ratios)))

    def model_name(self, q: float) -> str:
        """``"GCLN (Qs=48)"``: a GCLN model by its step on the paper's 0-255 scale."""
        return f"GCLN (Qs={255 * q:.0f})"


def config_for(dataset: str, profile: Profile) -> GCLNConfig:
    """The chapter's settings for ``dataset`` scaled to ``profile``."""
    name = qdata.canonical_name(dataset)
    cfg = GCLNConfig(dataset=name)
    if name == "fashion_mnist":
        cfg = dataclasses.replace(cfg, eps=0.1, epsilons=(0.02, 0.05, 0.1, 0.15, 0.2), certify_epsilons=(0.05, 0.1))
    elif name in ("cifar10", "svhn"):
        # the paper's settings: 8/255 (CIFAR-10) or 12/255 with steps of 3/255 (SVHN), Qs 5 and 10, no padding;
        # the ResNets of the paper are the `full` profile's business (a reader with the data and a GPU)
        eps = 8 / 255 if name == "cifar10" else 12 / 255
        cfg = dataclasses.replace(cfg, eps=eps, rel_stepsize=(1 / 8 if name == "cifar10" else 1 / 4), pad=0,
                                  q_ratios=tuple(q / (255 * eps) for q in PAPER_QS), target="resnet18",
                                  sweep_ratios=tuple(q / (255 * eps) for q in (2, 5, 8, 10, 12, 16)),
                                  substitute="resnet34", feature_net="cnn_b",
                                  epsilons=(2 / 255, 4 / 255, 8 / 255, 16 / 255, 0.1))
    elif name != "mnist":
        raise ValueError(f"the GCLN chapter runs MNIST, Fashion-MNIST and (full profile) CIFAR-10 and SVHN, "
                         f"got {dataset!r}")
    if profile.name == "smoke":
        cfg = dataclasses.replace(cfg, pgd_train_steps=2, pgd_train_epochs=1, pgd_train_subset=1000, feature_epochs=1, g_images=512,
                                  g_epochs=1, pool=200, eval_images=60, bpda_steps=(2, 4), pgd_iterations=(2, 4),
                                  curve_images=20, epsilons=cfg.epsilons[1::2], adaptive_images=30,
                                  apgd_steps=profile.attack_steps, apgd_targets=1, square_queries=30,
                                  sweep_ratios=cfg.q_ratios, attack_steps=profile.attack_steps, figure_images=2,
                                  flip_steps=10, certify_images=8, certify_nodes=5, convergence_images=8)
    elif profile.name == "full":
        cfg = dataclasses.replace(cfg, pgd_train_steps=40, pgd_train_epochs=10, pgd_train_subset=None,
                                  feature_epochs=10, feature_subset=None,
                                  g_images=50_000, g_epochs=10, pool=10_000, eval_images=profile.eval_images,
                                  curve_images=1000, adaptive_images=1000, apgd_steps=100, apgd_targets=9,
                                  square_queries=5000, sweep_ratios=(0.25, 0.5, 5 / 8, 1.0, 10 / 8, 1.5, 2.5),
                                  certify_images=1000, certify_nodes=400, convergence_images=1000)
    return cfg

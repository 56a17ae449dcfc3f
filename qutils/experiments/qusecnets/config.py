"""The QuSecNets chapter's settings, per dataset and profile: one config object (where the paper is
silent the choice is ours, and its field says so)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ... import data as qdata
from ...chapter import CascadeSettings
from ...profiles import Profile

__all__ = ["QuSecNetsConfig", "config_for", "NO_DEFENSE", "SUBSTITUTE"]

NO_DEFENSE = "No defense"
SUBSTITUTE = "Substitute (black-box adversary)"


@dataclass
class QuSecNetsConfig(CascadeSettings):
    STEPS_FIELD = "pgd_steps"  #: the cascade's APGD steps (:class:`~qutils.chapter.CascadeSettings`)
    #: the designed attacks' settings: the threshold flip's pixels per step and steps
    DESIGNED_FIELDS = ("flips", "flip_steps")
    dataset: str
    arch: str = "cleverhans_cnn"  #: paper, section IV
    cq_levels: tuple[int, ...] = (2, 3, 4)  #: CQ's n (figure 7 sweeps n; the paper does not list its values)
    cq_z: float = 50.0  #: paper: z = 50 for CQ
    vq_levels: int = 2  #: our choice: VQ with as many levels as the best CQ
    vq_z: float = 5.0  #: paper: z = 5 for VQ
    vq_per_pixel: bool = True  #: paper: "for each input pixel there is one quantization function"
    lr: float = 1e-3  #: paper, table 2
    batch_size: int = 128  #: paper, table 2
    epochs: int = 2  #: paper: 6-10 (table 2); the book profile trains fewer to fit its time budget
    adv_epochs: int = 3  #: epochs of the adversarially trained models (figure 5's curves)
    adv_eps: float = 0.3  #: FGSM radius of adversarial training (our choice: the evaluation radius)
    adv_weight: float = 0.5  #: Goodfellow et al.'s 0.5 clean + 0.5 FGSM
    eps: float = 0.3  #: the headline FGSM radius (paper, figure 9: 0.3 on MNIST, 0.1 on CIFAR-10)
    fgsm_epsilons: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  #: figure 7's axis
    fs_bits: int = 1  #: feature squeezing: bit depth (Xu et al. use 1 bit on MNIST)
    fs_median: int = 2  #: feature squeezing: median window (Xu et al. use 2x2 on MNIST)
    brelu_t: float = 1.0  #: BReLU bound (our choice)
    gda_sigma: float = 0.3  #: GDA noise level (our choice)
    eval_images: int = 1000  #: test images for clean and FGSM accuracy
    cw_images: int = 100  #: untargeted C&W images
    cw_sources: int = 10  #: targeted C&W / JSMA: source images, each attacked towards all 9 other classes
    cw_steps: int = 100  #: cleverhans tutorial / paper figure 10: 100 iterations
    cw_binary_steps: int = 1  #: cleverhans tutorial: 1 binary search step, initial constant 10, step 0.2
    cw_const: float = 10.0
    cw_stepsize: float = 0.2
    jsma_gamma: float = 0.1  #: cleverhans tutorial: gamma 0.1, theta 1
    #: images of the adaptive cascade: it runs at AutoAttack's standard strength (below), so the book
    #: profile attacks fewer images than the full one, never with a weaker attack
    adaptive_images: int = 200
    convergence_images: int = 100  #: the convergence check: the cascade with twice the budget, on its first images
    pgd_steps: int = 100  #: steps of every gradient attack of the adaptive cascade (APGD, AutoAttack's 100) and of the curves
    apgd_targets: int = 9  #: target classes of APGD-T in the cascade (AutoAttack's 9)
    flip_steps: int = 100  #: the designed attack (threshold flip): steps ...
    flips: int = 4  #: ... and pixels moved per step
    bpda_z: float = 10.0  #: steepness of the sigmoid used as BPDA backward pass
    square_queries: int = 5000  #: Square's queries (AutoAttack's 5000), on every image that survives the gradient attacks
    curve_images: int = 100  #: images of the accuracy-versus-epsilon curves and the audit
    #: the two-sided bounds (``cfg.certify``): the first 100 images of the cascade at two radii; per image
    #: 40 boxes at 0.1 and 10 at 0.3 (where no box is proved, the search only looks for adversarial vertices)
    certify_images: int = 100
    certify_epsilons: tuple[float, ...] = (0.1, 0.3)
    certify_nodes: int | tuple[int, ...] = (40, 10)
    certify_enum: int = 10  #: a box with at most this many free pixels is enumerated (2**10 images)
    seed: int = 0
    substitute_seed: int = 1


def config_for(dataset: str, profile: Profile) -> QuSecNetsConfig:
    """The chapter's settings for ``dataset`` scaled to ``profile`` (smoke: tiny; full: the paper's epochs)."""
    name = qdata.canonical_name(dataset)
    cfg = QuSecNetsConfig(dataset=name)
    if name == "fashion_mnist":
        # no paper numbers: the radius of the Q-Layer paper's Fashion-MNIST experiments
        cfg = dataclasses.replace(cfg, eps=0.1, adv_eps=0.1, fgsm_epsilons=(0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2),
                                  certify_epsilons=(0.05, 0.1))
    elif name in ("cifar10", "svhn"):
        cfg = dataclasses.replace(cfg, eps=0.1, adv_eps=0.1, fs_bits=5, fs_median=2, gda_sigma=0.05,
                                  fgsm_epsilons=(0.0, 0.01, 0.02, 0.05, 0.1), vq_levels=2)
    if profile.name == "smoke":
        cfg = dataclasses.replace(cfg, epochs=1, adv_epochs=1, eval_images=profile.eval_images, cw_images=10,
                                  cw_sources=2, cw_steps=10, adaptive_images=50, pgd_steps=profile.attack_steps,
                                  apgd_targets=1, square_queries=50, flip_steps=10, curve_images=20, cq_levels=(2, 4),
                                  certify_images=8, certify_nodes=5, convergence_images=10)
    elif profile.name == "full":
        cfg = dataclasses.replace(cfg, epochs=10, adv_epochs=10, eval_images=profile.eval_images, cw_images=1000,
                                  cw_sources=100, adaptive_images=1000, convergence_images=1000, curve_images=1000, cq_levels=(2, 3, 4, 8, 16),
                                  certify_images=1000, certify_epsilons=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3), certify_nodes=400)
    return cfg

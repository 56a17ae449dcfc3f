"""Defenses. Each lives in one module named after its paper (``qusecnets``, ``dqa``, ``sqa``,
``qlayer``, ``gcln``) or, for the baselines, ``squeeze`` (feature squeezing) and ``brelu``
(BReLU + Gaussian data augmentation). Every defense implements one protocol (:mod:`.protocol`):
how it is deployed, which views an adaptive attacker uses, whether it is random at test time,
which paper and section it implements."""
from .brelu import BoundedReLU, BReLUGDA, GaussianAugmentation, brelu_cnn
from .protocol import BACKWARDS, AttackView, Baseline, Defense, as_defense
from .qusecnets import (QuantizationLayer, QuSecNet, constant_quantization, constant_thresholds, qusecnets_cost,
                        qusecnets_loss, variable_quantization)
from .squeeze import BitDepthReduction, InputTransformModel, MedianSmoothing

__all__ = ["Defense", "AttackView", "Baseline", "as_defense", "BACKWARDS",
           "BitDepthReduction", "MedianSmoothing", "InputTransformModel", "BoundedReLU", "GaussianAugmentation",
           "brelu_cnn", "BReLUGDA", "QuantizationLayer", "QuSecNet", "constant_quantization", "variable_quantization",
           "constant_thresholds", "qusecnets_cost", "qusecnets_loss"]

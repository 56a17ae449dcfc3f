"""Defenses. Each lives in one module named after its paper (``qusecnets``, ``dqa``, ``sqa``,
``qlayer``, ``gcln``) or, for the baselines, ``squeeze`` (feature squeezing) and ``brelu``
(BReLU + Gaussian data augmentation)."""
from .brelu import BoundedReLU, GaussianAugmentation, brelu_cnn
from .qusecnets import (QuantizationLayer, QuSecNet, constant_quantization, constant_thresholds, qusecnets_cost,
                        qusecnets_loss, variable_quantization)
from .squeeze import BitDepthReduction, InputTransformModel, MedianSmoothing

__all__ = ["BitDepthReduction", "MedianSmoothing", "InputTransformModel", "BoundedReLU", "GaussianAugmentation",
           "brelu_cnn", "QuantizationLayer", "QuSecNet", "constant_quantization", "variable_quantization",
           "constant_thresholds", "qusecnets_cost", "qusecnets_loss"]

"""Defenses. Each lives in one module named after its paper (``qusecnets``, ``dqa``, ``sqa``,
``qlayer``, ``gcln``) or, for the baselines, ``squeeze``."""
from .squeeze import BitDepthReduction, InputTransformModel

__all__ = ["BitDepthReduction", "InputTransformModel"]

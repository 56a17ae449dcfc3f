"""Every architecture of the five papers, built by name: ``qutils.models.build("cnn_a")``.

``list_models()`` shows each one with the paper and table it comes from and the choices we
made where a paper is silent.
"""
from . import cnns, deep  # noqa: F401  (registers the architectures)
from .registry import REGISTRY, ModelSpec, build, list_models, register

__all__ = ["REGISTRY", "ModelSpec", "build", "list_models", "register"]

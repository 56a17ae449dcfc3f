"""One registry of every architecture the book uses, each with the paper and table it comes from."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

__all__ = ["ModelSpec", "register", "build", "list_models", "REGISTRY"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    source: str  #: the paper (and table / section) the architecture comes from
    notes: str = ""  #: what we chose where the paper is silent


REGISTRY: dict[str, ModelSpec] = {}

#: architectures that a defense module registers when it is imported (the models layer never imports
#: the defenses): the name, and the module to import first
REGISTERED_ELSEWHERE = {"q_base": "qutils.defenses.qlayer", "q_large": "qutils.defenses.qlayer",
                        "q_inner": "qutils.defenses.qlayer"}


def register(name: str, source: str, notes: str = ""):
    """Class or function decorator that adds a builder to :data:`REGISTRY`."""

    def deco(builder):
        key = name.lower()
        if key in REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        REGISTRY[key] = ModelSpec(name, builder, source, notes)
        return builder

    return deco


def build(name: str, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, **kwargs) -> nn.Module:
    """Build a registered architecture by name, e.g. ``build("cnn_a")``.

    ``in_channels`` is 1 for grayscale (MNIST, Fashion-MNIST) and 3 for RGB (CIFAR-10, SVHN);
    ``input_size`` is the image side (28 or 32). Extra keyword arguments go to the builder.
    """
    if isinstance(name, str) and name.lower() not in REGISTRY and name.lower() in REGISTERED_ELSEWHERE:
        raise ValueError(f"model {name!r} is registered by {REGISTERED_ELSEWHERE[name.lower()]}: import that "
                         "module first")
    if not isinstance(name, str) or name.lower() not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(REGISTRY)}")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 (grayscale) or 3 (RGB), got {in_channels}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if input_size not in (28, 32):
        raise ValueError(f"input_size must be 28 or 32, got {input_size}")
    spec = REGISTRY[name.lower()]
    model = spec.builder(in_channels=in_channels, num_classes=num_classes, input_size=input_size, **kwargs)
    model.arch_name = spec.name
    model.arch_source = spec.source
    return model


def list_models():
    """A pandas DataFrame of the registry: name, source, our choices."""
    import pandas as pd

    return pd.DataFrame([{"model": s.name, "source": s.source, "notes": s.notes} for s in REGISTRY.values()])

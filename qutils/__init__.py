"""qutils: the code behind the book *Quantization Defenses against Adversarial Examples*.

Every dataset, model, attack, defense and evaluation the notebooks use lives here, in one
obvious module each; the notebooks import it and never re-implement it.
"""
from ._version import __version__  # noqa: E402
from .profiles import get_device, get_profile  # noqa: E402
from .utils import code_version, environment, seed_everything  # noqa: E402

__all__ = ["get_profile", "get_device", "seed_everything", "code_version", "environment", "__version__"]

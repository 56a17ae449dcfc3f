"""The attack API every attack in the book shares.

An attack is an object with a ``name``, a ``threat_model``, a ``norm`` and its parameters
(``params()``, printable in tables). Calling it on ``(model, x, y)`` returns *new* adversarial
inputs: the input tensor is never modified, the result stays in the epsilon ball around ``x``
and in the [0, 1] box. ``y`` holds the true labels (untargeted) or the target labels
(``targeted=True``). The model is run in eval mode and its training flag is restored after.
"""
from __future__ import annotations

import copy
import enum
import math

import torch
import torch.nn as nn

__all__ = ["ThreatModel", "Norm", "Attack", "check_inputs", "check_eps", "project"]


class ThreatModel(str, enum.Enum):
    """What the attacker may see (RobustBench-style named values, not ad-hoc strings)."""

    WHITE_BOX = "white-box"  #: architecture, weights and gradients
    TRANSFER = "black-box (transfer)"  #: only a substitute model it trained itself
    SCORE = "black-box (scores)"  #: the model's output scores, no gradients
    DECISION = "black-box (decision)"  #: the predicted label only

    def __str__(self) -> str:
        return self.value


class Norm(str, enum.Enum):
    LINF = "Linf"
    L2 = "L2"
    L0 = "L0"

    def __str__(self) -> str:
        return self.value


def check_eps(eps: float, name: str = "eps") -> float:
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {eps!r}") from None
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {eps}")
    return eps


def check_inputs(x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """Raise ``ValueError`` unless ``x`` is an NCHW float batch in [0, 1] and ``y`` matches it."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor with pixels in [0, 1], got dtype {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"x must have pixels in [0, 1], got range [{x.min().item():.3g}, {x.max().item():.3g}]; "
            "normalise inside the model, not before the attack"
        )
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.ndim != 1 or len(y) != len(x):
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"y must be a 1-D label tensor of length {len(x)}, got {shape}")
        if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Project ``x_adv`` onto the ``norm`` ball of radius ``eps`` around ``x``, then onto [0, 1]."""
    delta = x_adv - x
    if norm == Norm.LINF:
        delta = delta.clamp(-eps, eps)
    elif norm == Norm.L2:
        n = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = delta * (eps / n).clamp(max=1.0).view(-1, *([1] * (x.ndim - 1)))
    else:
        raise ValueError(f"projection onto {norm} balls is not defined")
    return (x + delta).clamp(0.0, 1.0)


class Attack:
    """Base class. Subclasses set ``name``, ``threat_model``, ``norm`` and implement ``_run``."""

    name: str = "attack"
    threat_model: ThreatModel = ThreatModel.WHITE_BOX
    norm: Norm = Norm.LINF

    def __init__(self, eps: float, targeted: bool = False):
        self.eps = check_eps(eps)
        self.targeted = bool(targeted)

    # -- description -------------------------------------------------------------------
    def params(self) -> dict:
        """The attack's settings, for tables and results files."""
        return {"eps": self.eps, "targeted": self.targeted}

    @property
    def steps(self) -> int:
        return int(getattr(self, "n_steps", 1))

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.params().items() if k not in ("eps", "targeted"))
        tgt = "targeted" if self.targeted else "untargeted"
        return f"{self.name} ({self.threat_model}, {self.norm}, eps={self.eps:g}, {tgt}{', ' + extra if extra else ''})"

    def __repr__(self) -> str:
        return self.describe()

    def with_eps(self, eps: float) -> "Attack":
        """A copy of this attack with another radius."""
        new = copy.copy(self)
        new.eps = check_eps(eps)
        return new

    # -- running -----------------------------------------------------------------------
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_inputs(x, y)
        was_training = model.training
        model.eval()
        try:
            with torch.enable_grad():
                x_adv = self._run(model, x.detach().clone(), y.detach())
        finally:
            model.train(was_training)
        return x_adv.detach()

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- shared helper -------------------------------------------------------------------
    def _loss_grad(self, model, x_adv, y, loss_fn=None):
        """Gradient of the attack loss w.r.t. the input (ascent direction; sign flipped if targeted)."""
        x_adv = x_adv.detach().requires_grad_(True)
        logits = model(x_adv)
        loss = (loss_fn or nn.functional.cross_entropy)(logits, y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        return -grad if self.targeted else grad

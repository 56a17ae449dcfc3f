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

# the argument checks live in qutils.checks; attacks import them from here too
from ..checks import check_batch, check_eps, check_inputs, check_int, num_classes

__all__ = ["ThreatModel", "Norm", "Attack", "MinimizationAttack", "check_inputs", "check_batch", "num_classes",
           "check_eps", "check_int",
           "margin", "project", "norms", "as_norm", "random_targets", "all_targets", "binary_search_consts"]


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


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example C&W margin ``z_y - max_{j != y} z_j``: negative once ``y`` is no longer the top class."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(nn.functional.one_hot(y, logits.shape[1]).bool(), -math.inf).amax(1)
    return true - other


def as_norm(norm, allowed=(Norm.LINF, Norm.L2), who: str = "this attack") -> Norm:
    """``norm`` (a :class:`Norm` or its string, e.g. ``"L2"``) as a :class:`Norm`; ``ValueError``
    unless it is one of ``allowed``."""
    try:
        norm = Norm(norm)
    except ValueError:
        norm = None
    if norm not in allowed:
        raise ValueError(f"{who} supports norms {[str(a) for a in allowed]}, got {norm!r}")
    return norm


def random_targets(y: torch.Tensor, num_classes: int = 10, seed: int = 0) -> torch.Tensor:
    """Target labels drawn uniformly from the classes other than ``y`` (seeded)."""
    if num_classes < 2:
        raise ValueError("need at least two classes")
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, num_classes, y.shape, generator=gen)
    return (y.cpu() + shift) % num_classes


def all_targets(x: torch.Tensor, y: torch.Tensor, num_classes: int = 10):
    """Every image paired with every class other than its own (the cleverhans tutorials' protocol
    for targeted attacks: ``n`` source images give ``n * (num_classes - 1)`` attacks).

    Returns ``(x_rep, y_rep, targets)``: the images and true labels repeated, and the targets.
    """
    if num_classes < 2:
        raise ValueError("need at least two classes")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} images and y {len(y)} labels")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got {int(y.min())}..{int(y.max())}")
    shifts = torch.arange(1, num_classes, device=y.device)
    targets = ((y.unsqueeze(1) + shifts) % num_classes).reshape(-1)
    k = num_classes - 1
    return x.repeat_interleave(k, 0), y.repeat_interleave(k, 0), targets


def binary_search_consts(found, consts, lower, upper):
    """One step of C&W's search over the constant c, per example (used by C&W L2 and ZOO).

    Where an adversarial example was found, ``c`` becomes the new upper bound; elsewhere the new
    lower bound. ``c`` is then bisected, or multiplied by 10 while no upper bound is known.
    Returns ``(consts, lower, upper)``.
    """
    upper = torch.where(found, consts, upper)
    lower = torch.where(found, lower, consts)
    consts = torch.where(torch.isinf(upper), consts * 10, (lower + upper) / 2)
    return consts, lower, upper


def norms(delta: torch.Tensor, norm: "Norm") -> torch.Tensor:
    """Per-example size of a perturbation batch in ``norm`` (L0: number of changed entries)."""
    flat = delta.flatten(1)
    if norm == Norm.LINF:
        return flat.abs().amax(1)
    if norm == Norm.L2:
        return flat.norm(dim=1)
    if norm == Norm.L0:
        return (flat != 0).sum(1).to(delta.dtype)
    raise ValueError(f"unknown norm {norm!r}")


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Project ``x_adv`` onto the ``norm`` ball of radius ``eps`` around ``x``, then onto [0, 1]."""
    delta = x_adv - x
    if math.isinf(eps):
        pass
    elif norm == Norm.LINF:
        delta = delta.clamp(-eps, eps)
    elif norm == Norm.L2:
        n = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = delta * (eps / n).clamp(max=1.0).view(-1, *([1] * (x.ndim - 1)))
    else:
        raise ValueError(f"projection onto {norm} balls is not defined")
    return (x + delta).clamp(0.0, 1.0)


class Attack:
    """Base class. Subclasses set ``name``, ``threat_model``, ``norm`` and implement ``_run``.

    Gradient attacks share two options handled here:

    * ``loss``: ``"ce"`` (cross-entropy) or ``"margin"`` (the C&W margin ``max_{j!=y} z_j - z_y``,
      capped at ``confidence``);
    * ``eot``: Expectation over Transformation (Athalye et al. 2018). With ``eot=n`` every
      gradient is the average over ``n`` forward passes of the batch (one pass over ``n`` stacked
      copies), and success is judged on the average of the ``n`` softmax outputs. Use it for
      defenses with randomness; for a deterministic model ``eot > 1`` only costs time.
    """

    name: str = "attack"
    threat_model: ThreatModel = ThreatModel.WHITE_BOX
    norm: Norm = Norm.LINF
    allow_inf_eps: bool = False

    def __init__(self, eps: float, targeted: bool = False):
        self.eps = check_eps(eps, allow_inf=self.allow_inf_eps)
        self.targeted = bool(targeted)
        self.loss = "ce"
        self.confidence = 0.0
        self.eot = 1

    def _set_gradient_options(self, loss: str = "ce", confidence: float = 0.0, eot: int = 1) -> None:
        if loss not in ("ce", "margin"):
            raise ValueError(f"loss must be 'ce' or 'margin', got {loss!r}")
        self.loss = loss
        self.confidence = check_eps(confidence, "confidence")
        self.eot = check_int(eot, "eot")

    # -- description -------------------------------------------------------------------
    def params(self) -> dict:
        """The attack's settings, for tables and results files."""
        return {"eps": self.eps, "targeted": self.targeted}

    def _gradient_params(self) -> dict:
        d = {"loss": self.loss}
        if self.loss == "margin":
            d["confidence"] = self.confidence
        if self.eot > 1:
            d["eot"] = self.eot
        return d

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
        new.eps = check_eps(eps, allow_inf=self.allow_inf_eps)
        return new

    # -- running -----------------------------------------------------------------------
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_batch(model, x, y)
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

    # -- shared helpers ------------------------------------------------------------------
    def _objective(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example quantity the attack *ascends* (already signed for targeted attacks)."""
        if self.loss == "ce":
            ce = nn.functional.cross_entropy(logits, y, reduction="none")
            return -ce if self.targeted else ce
        m = margin(logits, y)  # > 0: y is the top class
        # untargeted: push z_y below the best other class by `confidence`; targeted: the reverse
        return -(m + self.confidence).clamp_min(0) if not self.targeted else -(self.confidence - m).clamp_min(0)

    def _forward(self, model, x):
        """Logits used for the gradient (``eot`` stacked copies) and the
        averaged prediction scores."""
        if self.eot == 1:
            logits = model(x)
            return logits, logits
        n = len(x)
        # eot copies of the batch: a random model draws anew for each copy
        stacked = x.unsqueeze(0).expand(self.eot, *x.shape)
        logits = model(stacked.reshape(self.eot * n, *x.shape[1:]))
        probs = logits.softmax(1).view(self.eot, n, -1).mean(0)
        return logits, probs.log()

    def _logits_grad(self, model, x_adv, y, need_grad: bool = True):
        """(scores for the success test, ascent gradient w.r.t. the input) in one forward pass.

        Only the input gradient is computed (``torch.autograd.grad``), not the weights' gradients.
        """
        if not need_grad:
            with torch.no_grad():
                return self._forward(model, x_adv)[1], None
        x_adv = x_adv.detach().requires_grad_(True)
        logits, scores = self._forward(model, x_adv)
        yy = y.repeat(self.eot) if self.eot > 1 else y
        obj = self._objective(logits, yy).sum() / self.eot
        (grad,) = torch.autograd.grad(obj, x_adv)
        return scores.detach(), grad

    def _loss_grad(self, model, x_adv, y):
        """Ascent gradient of the attack objective w.r.t. the input."""
        return self._logits_grad(model, x_adv, y)[1]

    def _success(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = scores.argmax(1)
        return pred == y if self.targeted else pred != y


class MinimizationAttack(Attack):
    """An attack that looks for the *smallest* adversarial perturbation (C&W, DeepFool, ZOO, ...).

    Its ``eps`` defaults to infinity: the result is the smallest adversarial example found (the
    clean image where none was found). With a finite ``eps`` the result is projected onto the
    ``eps`` ball, as foolbox does, so robust accuracy at ``eps`` counts only perturbations
    that fit in the budget.
    """

    allow_inf_eps = True

    def __call__(self, model, x, y):
        x_adv = super().__call__(model, x, y)
        if math.isfinite(self.eps) and self.norm in (Norm.L2, Norm.LINF):
            x_adv = project(x_adv, x, self.eps, self.norm)
        return x_adv

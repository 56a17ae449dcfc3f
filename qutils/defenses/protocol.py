"""The defense protocol: what every defended model tells an evaluator.

A defense paper reports one model; an adaptive attacker needs to know more about it. Every
defense of the book answers the same four questions, so one evaluation
(:func:`qutils.cascade.adaptive_evaluation`) can attack all of them the same way:

* **How is it deployed?** :meth:`Defense.deployed` is the model the paper reports numbers for:
  the one whose predictions count.
* **Which differentiable views should an attacker use?** :meth:`Defense.attack_views` names
  models that compute the same function as the deployed one (or an approximation of it) but have
  a usable gradient: a straight-through backward pass through a quantizer (BPDA), the gradient of
  a smooth approximation, an alternative path of the network (the Q-Layer's E-path), a shortcut.
  Each is an :class:`AttackView` with its ``kind``, so a table can say how a number was obtained.
* **Is it random at test time?** :attr:`Defense.random`; then gradients are averaged over the
  randomness (EOT, Athalye et al. 2018) and robust accuracy is counted on one fresh draw per image.
  A view says for itself whether it is random (:attr:`AttackView.random`): SQA's expectation view
  is the noise-free network, so EOT is spent only on the views that draw.
* **Which attacks were designed for it?** :meth:`Defense.designed_attacks` returns the attacks built
  for this defense's structure (Tramer et al. 2020: generic BPDA can be weak), so every chapter
  builds its cascade with the one builder (:func:`qutils.cascade.adaptive_stages`).
* **What did the paper attack?** :meth:`Defense.as_published` is the model as the paper published
  and attacked it (QuSecNets' soft layer), :meth:`Defense.classifier` the classifier behind an input
  defense (GCLN's target), so a chapter can rebuild the paper's own attack without asking for the class.
* **Which paper and section does it implement?** :attr:`Defense.reference`.

Backward rules of a quantizer (:data:`BACKWARDS`), checked in one place (:func:`check_backward`):
``"auto"`` (autograd of the exact forward pass: the true, usually zero, gradient), ``"identity"``
(straight-through BPDA), ``"sigmoid"`` (BPDA with the derivative of a sigmoid staircase) and
``"soft"`` (BPDA with the derivative of a softmax nearest-neighbour assignment, the Q-Layer's).
"""
from __future__ import annotations

import abc
import copy
from dataclasses import dataclass

import torch.nn as nn

from ..checks import check_choice, check_positive

__all__ = ["BACKWARDS", "VIEW_KINDS", "check_backward", "check_choice", "check_positive", "AttackView", "Defense", "Baseline",
           "as_defense", "copy_tree"]

BACKWARDS = ("auto", "identity", "sigmoid", "soft")
#: what an attack view is, for tables: the deployed model's own gradient, a straight-through or smooth
#: backward pass (BPDA), another path or a shortcut of the network, or a smooth stand-in model
VIEW_KINDS = ("autograd", "straight-through", "smooth", "alternative path", "shortcut")


def check_backward(backward: str, allowed=BACKWARDS) -> str:
    """One check for every quantizer's ``backward`` argument."""
    return check_choice(backward, allowed, "backward")


@dataclass(frozen=True)
class AttackView:
    """A differentiable stand-in for the deployed model: what an adaptive attacker takes gradients of."""

    model: nn.Module
    kind: str
    description: str = ""
    #: True if the view's forward pass is exactly the deployed model's (only its backward differs, as
    #: in BPDA): an attack on it can then stop on an image as soon as the deployed model is fooled.
    #: Default: True for "autograd" and "straight-through" views, False otherwise.
    same_forward: bool | None = None
    #: True if the view draws random numbers (EOT averages its gradients); None: as the defense
    #: (:attr:`Defense.random`). SQA's expectation view is deterministic inside a random defense.
    random: bool | None = None
    #: how a cascade's stage labels name the view (default: its key in :meth:`Defense.attack_views`)
    title: str | None = None

    def __post_init__(self):
        if not isinstance(self.model, nn.Module):
            raise ValueError(f"an attack view's model must be an nn.Module, got {type(self.model).__name__}")
        check_choice(self.kind, VIEW_KINDS, "kind")
        if self.same_forward is None:
            object.__setattr__(self, "same_forward", self.kind in ("autograd", "straight-through"))


class Defense(abc.ABC):
    """The protocol. A defense sets :attr:`reference` (paper and section) and :attr:`random`, and
    implements :meth:`deployed` and :meth:`attack_views`."""

    #: paper and section this class implements, e.g. ``"QuSecNets (Ali et al. 2018), section III"``
    reference: str = ""
    #: True if the deployed model draws random numbers at test time (EOT applies)
    random: bool = False

    @abc.abstractmethod
    def deployed(self) -> nn.Module:
        """The model as the paper deploys and reports it."""

    @abc.abstractmethod
    def attack_views(self) -> dict[str, AttackView]:
        """``{label: AttackView}``: the views an adaptive attacker should take gradients of, the
        most faithful first. Views of kind ``"autograd"`` are the deployed model itself."""

    def view_is_random(self, label: str) -> bool:
        """Does the attack view ``label`` draw random numbers (so EOT applies to it)?"""
        views = self.attack_views()
        if label not in views:
            raise ValueError(f"no attack view {label!r}; views: {list(views)}")
        v = views[label]
        return self.random if v.random is None else bool(v.random)

    def designed_attacks(self, eps: float, steps: int, seed: int = 0, **options) -> dict:
        """``{stage label: Attack}``: the attacks designed for this defense's structure, at radius
        ``eps`` with ``steps`` steps, run against the deployed model. ``options`` are the chapter's
        settings of the designed attacks (its config's ``designed_options``); each defense reads the
        ones it documents and ignores the others, so one chapter's settings serve all its models.
        Default: none (a baseline has no structure to exploit)."""
        return {}

    def reseed(self, seed: int) -> "Defense":
        """Seed the defense's own random draws (in place), so an evaluation is reproducible; a
        deterministic defense has none. Returns the defense."""
        return self

    def as_published(self) -> nn.Module | None:
        """The model as the paper published and attacked it, where that differs from the deployed
        one (QuSecNets' soft layer); None (the default) where the paper deployed what the book deploys."""
        return None

    def classifier(self) -> nn.Module | None:
        """The classifier behind an input defense (what remains without the defense), else None."""
        return None

    def describe(self) -> str:
        views = ", ".join(f"{k} ({v.kind})" for k, v in self.attack_views().items())
        return (f"{type(self).__name__}: {self.reference or 'no reference'}; "
                f"{'random' if self.random else 'deterministic'} at test time; attack views: {views}")


class Baseline(Defense):
    """A model with no defense mechanism of its own (an undefended or adversarially trained CNN,
    BReLU + Gaussian augmentation): deployed as it is, attacked through its own gradient."""

    def __init__(self, model: nn.Module, reference: str = "no defense", random: bool = False):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model, self.reference, self.random = model, reference, bool(random)

    def deployed(self) -> nn.Module:
        return self.model

    def attack_views(self) -> dict[str, AttackView]:
        return {"autograd": AttackView(self.model, "autograd", "the model's own gradient")}


def as_defense(model) -> Defense:
    """``model`` itself if it implements the protocol, else a :class:`Baseline` around it."""
    if isinstance(model, Defense):
        return model
    if isinstance(model, nn.Module):
        return Baseline(model)
    raise ValueError(f"expected a Defense or an nn.Module, got {type(model).__name__}")


def copy_tree(module: nn.Module, leaf_type: type, fn) -> nn.Module:
    """A copy of the module tree that shares every parameter, with each module of ``leaf_type``
    replaced by ``fn(module)`` (a defense's view: the same weights, another backward rule or mode)."""
    if isinstance(module, leaf_type):
        return fn(module)
    new = copy.copy(module)
    new._modules = {k: (None if v is None else copy_tree(v, leaf_type, fn)) for k, v in module._modules.items()}
    return new


"""Attacks crafted on another model than the one evaluated.

* :class:`Transfer`: craft on a substitute (source) model the attacker trained itself, evaluate
  on the target. The threat model is black-box (transfer).
* :class:`Adaptive`: craft on an *attack model* that computes the same function as the defended
  model but has usable gradients -- the defended model with its non-differentiable layers
  wrapped in :class:`~qutils.attacks.BPDA`, say. The attacker knows everything: white-box.

Both print as their own attack (``"PGD transfer from CNN_B"``, ``"PGD+BPDA"``), so a results table
says how every number was obtained.
"""
from __future__ import annotations

import copy

import torch.nn as nn

from .base import Attack, ThreatModel

__all__ = ["Transfer", "Adaptive"]


class _OnOtherModel(Attack):
    def __init__(self, attack: Attack, other: nn.Module, name: str, threat_model: ThreatModel):
        if not isinstance(attack, Attack):
            raise ValueError(f"attack must be a qutils Attack, got {type(attack).__name__}")
        if not isinstance(other, nn.Module):
            raise ValueError(f"the model to craft on must be an nn.Module, got {type(other).__name__}")
        self.attack = attack
        self.other = other
        self.name = name
        self.threat_model = threat_model
        self.norm = attack.norm
        self.allow_inf_eps = attack.allow_inf_eps

    # eps, targeted and steps are the inner attack's
    eps = property(lambda self: self.attack.eps)
    targeted = property(lambda self: self.attack.targeted)
    steps = property(lambda self: self.attack.steps)

    def params(self) -> dict:
        return self.attack.params()

    def with_eps(self, eps):
        new = copy.copy(self)
        new.attack = self.attack.with_eps(eps)
        return new

    def __call__(self, model, x, y):
        # `model` is the evaluated model; the examples are crafted on the other one
        return self.attack(self.other, x, y)


class Transfer(_OnOtherModel):
    """Craft ``attack`` on ``source`` (a substitute model); black-box (transfer)."""

    def __init__(self, attack: Attack, source: nn.Module, source_name: str | None = None):
        source_name = source_name or type(source).__name__
        super().__init__(attack, source, f"{attack.name} transfer from {source_name}", ThreatModel.TRANSFER)


class Adaptive(_OnOtherModel):
    """Craft ``attack`` on ``attack_model`` (e.g. the defense with BPDA layers); white-box, adaptive."""

    def __init__(self, attack: Attack, attack_model: nn.Module, how: str = "BPDA"):
        super().__init__(attack, attack_model, f"{attack.name}+{how}", ThreatModel.WHITE_BOX)

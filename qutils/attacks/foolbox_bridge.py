"""Any foolbox attack behind the qutils API, and the decision-based attacks the book uses.

Decision-based attacks see only the predicted label. We do not re-implement them: foolbox's
HopSkipJump (Chen, Jordan & Wainwright 2020) and Boundary attack (Brendel, Rauber & Bethge
2018) are well tested. :class:`FoolboxAttack` wraps any foolbox 3 attack so it prints and
tabulates like the others; foolbox's random draws are seeded and the global RNG state restored.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .base import Attack, Norm, ThreatModel, as_norm, check_int

__all__ = ["FoolboxAttack", "HopSkipJump", "Boundary"]


class FoolboxAttack(Attack):
    """Run a foolbox attack object on a PyTorch model with bounds (0, 1).

    ``eps`` is passed as foolbox's ``epsilons``; for minimisation attacks (``eps=inf``) the raw
    smallest adversarial found is returned, for a finite ``eps`` the perturbation clipped to it.
    """

    allow_inf_eps = True

    def __init__(self, fb_attack, eps=math.inf, norm="L2", threat_model=ThreatModel.WHITE_BOX, name=None,
                 targeted=False, seed=0, steps=1):
        super().__init__(eps, targeted)
        self.fb_attack = fb_attack
        self.norm = as_norm(norm, tuple(Norm), "FoolboxAttack")
        self.threat_model = ThreatModel(threat_model)
        self.name = name or f"foolbox {type(fb_attack).__name__}"
        self.seed = int(seed)
        self.n_steps = int(steps)

    def params(self) -> dict:
        return {"eps": self.eps, "foolbox": repr(self.fb_attack), "targeted": self.targeted, "seed": self.seed}

    def _run(self, model, x, y):
        import foolbox as fb

        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=x.device)
        crit = fb.criteria.TargetedMisclassification(y) if self.targeted else fb.criteria.Misclassification(y)
        np_state = np.random.get_state()
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            np.random.seed(self.seed)
            try:
                raw, clipped, _ = self.fb_attack(fmodel, x, crit,
                                                 epsilons=None if math.isinf(self.eps) else self.eps)
            finally:
                np.random.set_state(np_state)
        out = raw if math.isinf(self.eps) else clipped
        # foolbox leaves NaN / garbage where its init attack failed: fall back to the clean input
        bad = ~torch.isfinite(out.flatten(1)).all(1)
        out = torch.where(bad.view(-1, 1, 1, 1), x, out)
        return out.clamp(0.0, 1.0)


class HopSkipJump(FoolboxAttack):
    """HopSkipJump (decision-based) via foolbox, L2 or Linf; ``steps`` gradient-estimation rounds."""

    def __init__(self, eps=math.inf, norm="L2", steps=64, initial_gradient_eval_steps=100,
                 max_gradient_eval_steps=10000, targeted=False, seed=0):
        import foolbox as fb

        norm = as_norm(norm, who="HopSkipJump")
        steps = check_int(steps, "steps")
        fa = fb.attacks.HopSkipJumpAttack(steps=steps, initial_gradient_eval_steps=initial_gradient_eval_steps,
                                          max_gradient_eval_steps=max_gradient_eval_steps,
                                          constraint="l2" if norm == Norm.L2 else "linf")
        super().__init__(fa, eps, norm, ThreatModel.DECISION, "HopSkipJump", targeted, seed, steps)
        self.initial_gradient_eval_steps = initial_gradient_eval_steps

    def params(self) -> dict:
        return {"eps": self.eps, "steps": self.n_steps,
                "initial_gradient_eval_steps": self.initial_gradient_eval_steps,
                "targeted": self.targeted, "seed": self.seed}


class Boundary(FoolboxAttack):
    """The Boundary attack (decision-based, L2) via foolbox."""

    def __init__(self, eps=math.inf, steps=5000, targeted=False, seed=0):
        import foolbox as fb

        steps = check_int(steps, "steps")
        super().__init__(fb.attacks.BoundaryAttack(steps=steps), eps, Norm.L2, ThreatModel.DECISION,
                         "Boundary", targeted, seed, steps)

    def params(self) -> dict:
        return {"eps": self.eps, "steps": self.n_steps, "targeted": self.targeted, "seed": self.seed}

"""The gradient-masking checklist (Athalye et al. 2018; Carlini et al. 2019) as code.

``audit(model, x, y, eps)`` runs a fixed battery of attacks on one model and reports which of
the checklist's warning signs it shows, with the numbers behind each verdict:

1. **gradients are informative** -- the input gradient of the loss is not zero (or NaN) for most
   images; a zero gradient makes every gradient attack blind;
2. **the model is deterministic** -- two forward passes agree; otherwise gradients must be
   averaged over the randomness (EOT);
3. **iterative attacks beat single-step ones** -- PGD is not weaker than FGSM;
4. **more iterations do not help** -- PGD with 4x the steps is not stronger, i.e. the attack
   converged;
5. **accuracy falls with epsilon** -- robust accuracy does not increase along the epsilon grid,
   and at ``eps`` it is significantly below the clean accuracy;
6. **an unbounded attack reaches ~0%** -- at L-infinity 1.0 every image can be turned into
   any other, so accuracy above 5% means the attack, not the model, failed;
7. **white-box beats transfer** -- PGD on the model is not weaker than PGD transferred from a
   substitute (needs ``substitute=``);
8. **gradient-free does not beat gradients** -- the Square attack (score-based, no gradients)
   is not stronger than PGD;
9. **the adaptive attack does not beat plain PGD** -- with ``attack_model=`` (the defense with
   BPDA layers) and/or ``eot=`` (stochastic defenses): adaptive PGD is not stronger.

"Weaker"/"stronger" means the 95% Wilson intervals do not overlap: a check fails only on a
significant difference, and one that passes although the point estimates point the other way says
so ("pass (within noise)"). A failed check is evidence of gradient masking: the robust accuracy to
report is the *lowest* over every attack run (``report.worst``), never plain PGD's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .attacks import FGSM, PGD, Adaptive, Norm, Square, Transfer, check_eps, check_inputs
from .metrics import Accuracy, _device_of, accuracy, robust_accuracy, significantly_lower

__all__ = ["audit", "AuditReport", "Check"]


@dataclass
class Check:
    name: str
    passed: bool | None  # None: not run (its reason is in ``detail``)
    detail: str
    #: passed only because the difference is within noise: the attack that should be at least as strong
    #: is weaker on the point estimate, but the 95% intervals overlap
    within_noise: bool = False

    @property
    def verdict(self) -> str:
        if self.passed and self.within_noise:
            return "pass (within noise)"
        return {True: "pass", False: "FAIL", None: "skipped"}[self.passed]


def _not_beaten(name: str, other: Accuracy, reference: Accuracy, detail: str) -> Check:
    """The check "``other`` is not significantly below ``reference``" (an attack that should be at most
    as strong as the reference did not beat it): it fails on non-overlapping 95% intervals; where
    ``other`` is lower on the point estimate but within noise it passes, and says so."""
    passed = not significantly_lower(other, reference)
    noise = passed and other.value < reference.value
    if noise:
        detail += "; lower on the point estimate, but the 95% intervals overlap (not significant at this n)"
    return Check(name, passed, detail, noise)


@dataclass
class AuditReport:
    """The outcome of :func:`audit`: checks, every robust accuracy measured, the worst case."""

    eps: float
    norm: str
    n: int
    checks: list[Check] = field(default_factory=list)
    results: dict[str, Accuracy] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped checks do not count)."""
        return all(c.passed is not False for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.passed is False]

    @property
    def worst(self) -> tuple[str, Accuracy]:
        """The strongest attack at the audited epsilon and its robust accuracy: the number to report."""
        at_eps = {k: v for k, v in self.results.items() if math.isclose(v.eps, self.eps)}
        name = min(at_eps, key=lambda k: at_eps[k].correct)
        return name, at_eps[name]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{"check": c.name, "verdict": c.verdict, "detail": c.detail} for c in self.checks])

    def results_frame(self):
        import pandas as pd

        rows = []
        for key, a in self.results.items():
            lo, hi = a.ci
            rows.append({"run": key, "attack": a.attack, "threat_model": a.threat_model, "norm": a.norm,
                         "eps": a.eps, "steps": a.steps, "n": a.n, "accuracy": a.value, "ci_low": lo,
                         "ci_high": hi})
        return pd.DataFrame(rows)

    def __str__(self) -> str:
        w = max(len(c.name) for c in self.checks) if self.checks else 10
        lines = [f"Gradient-masking audit: {self.norm} eps={self.eps:g}, {self.n} images"]
        for c in self.checks:
            lines.append(f"  [{c.verdict:^7s}] {c.name:<{w}s}  {c.detail}")
        name, acc = self.worst
        lines.append(f"Verdict: {'no sign of gradient masking' if self.passed else 'GRADIENT MASKING: ' + ', '.join(self.failed)}")
        lines.append(f"Robust accuracy to report (worst case): {acc}")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        name, acc = self.worst
        rows = "\n".join(f"| {c.name} | **{c.verdict}** | {c.detail} |" for c in self.checks)
        head = "no sign of gradient masking" if self.passed else "**gradient masking**: " + ", ".join(self.failed)
        return (f"Gradient-masking audit ({self.norm}, eps={self.eps:g}, {self.n} images): {head}\n\n"
                f"| check | verdict | numbers |\n|---|---|---|\n{rows}\n\n"
                f"Robust accuracy to report (worst case): {acc}")


def _fmt(a: Accuracy) -> str:
    lo, hi = a.ci
    return f"{100 * a.value:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def _gradient_stats(model, x, y):
    x = x.detach().clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x, allow_unused=True)
    if g is None:
        return 1.0, 1.0
    flat = g.flatten(1)
    zero_images = ((flat == 0).all(1) | ~torch.isfinite(flat).all(1)).float().mean().item()
    zero_entries = (flat == 0).float().mean().item()
    return zero_images, zero_entries


def audit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str = "Linf",
          steps: int = 40, epsilons=None, attack_model: nn.Module | None = None, eot: int | None = None,
          substitute: nn.Module | None = None, queries: int = 1000, batch_size: int = 500,
          seed: int = 0) -> AuditReport:
    """Run the checklist on ``model`` at ``eps`` (L-infinity) on the images ``x``, labels ``y``.

    ``steps``: PGD iterations (the "more iterations" check uses 4x). ``epsilons``: the grid for
    the monotonicity check (default: 5 values up to ``eps``). ``attack_model``: the model with
    BPDA in place of its non-differentiable layers; ``eot``: samples per gradient for a
    stochastic model; ``substitute``: a separately trained model for the transfer check;
    ``queries``: the Square attack's budget. All gradient attacks use early exit (it does not
    change their results).
    """
    if str(norm) != str(Norm.LINF):
        raise ValueError(f"audit covers the L-infinity threat model the book evaluates; got norm={norm!r}")
    eps = check_eps(eps)
    if eps == 0 or eps >= 1:
        raise ValueError(f"audit needs 0 < eps < 1, got {eps}")
    check_inputs(x, y)
    if epsilons is None:
        epsilons = [eps * k / 4 for k in range(1, 5)]
    epsilons = sorted({check_eps(e) for e in epsilons} | {eps})
    dev = _device_of(model)
    rep = AuditReport(eps=eps, norm=str(Norm.LINF), n=len(x))
    R = rep.results

    def run(key, attack, on=model):
        R[key] = robust_accuracy(on, attack, x, y, batch_size)
        return R[key]

    # 1-2: gradients and determinism
    was = model.training
    model.eval()
    try:
        xs, ys = x[:batch_size].to(dev), y[:batch_size].to(dev)
        with torch.enable_grad():
            zero_img, zero_ent = _gradient_stats(model, xs, ys)
        with torch.no_grad():
            deterministic = torch.equal(model(xs), model(xs))
    finally:
        model.train(was)
    rep.checks.append(Check("gradients are informative", zero_img < 0.5,
                            f"input gradient zero (or NaN) for {100 * zero_img:.1f}% of images, "
                            f"{100 * zero_ent:.1f}% of entries"))
    rep.checks.append(Check("model is deterministic", deterministic,
                            "two forward passes agree" if deterministic else
                            "two forward passes differ: average gradients over the randomness (eot=)"))

    pgd = PGD(eps, steps=steps, early_stop=True, seed=seed)
    # 3: iterative vs single step
    fg, pg = run("FGSM", FGSM(eps)), run(f"PGD-{steps}", pgd)
    rep.checks.append(_not_beaten("iterative beats single-step", fg, pg, f"FGSM {_fmt(fg)} vs PGD-{steps} {_fmt(pg)}"))
    # 4: convergence
    pg4 = run(f"PGD-{4 * steps}", PGD(eps, steps=4 * steps, early_stop=True, seed=seed + 1))
    rep.checks.append(_not_beaten("more iterations do not help", pg4, pg,
                                  f"PGD-{steps} {_fmt(pg)} vs PGD-{4 * steps} {_fmt(pg4)}"))
    # 5: accuracy falls with eps: no significant rise along the grid, and a significant fall overall
    clean = R["clean"] = accuracy(model, x, y, batch_size)
    curve = [clean]
    for e in epsilons:
        curve.append(pg if math.isclose(e, eps) else run(f"PGD-{steps} eps={e:g}", pgd.with_eps(e)))
    bumps = [(a.eps, b.eps) for a, b in zip(curve, curve[1:]) if significantly_lower(a, b)]
    flat = not significantly_lower(curve[-1], curve[0])
    rep.checks.append(Check("accuracy falls with epsilon", not bumps and not flat,
                            " -> ".join(f"{100 * a.value:.1f}%@{a.eps:g}" for a in curve)
                            + (f"; rises between eps {bumps}" if bumps else "")
                            + ("; no significant fall from clean" if flat else "")))
    # 6: unbounded
    ub = run("PGD eps=1 (unbounded)", pgd.with_eps(1.0))
    rep.checks.append(Check("unbounded attack reaches ~0%", ub.value <= 0.05,
                            f"PGD-{steps} at eps=1: {_fmt(ub)} (should be <= 5%)"))
    # 7: transfer
    if substitute is not None:
        tr = run(f"PGD-{steps} transfer", Transfer(pgd, substitute.to(dev).eval(), "substitute"))
        rep.checks.append(_not_beaten("white-box beats transfer", tr, pg,
                                      f"white-box PGD {_fmt(pg)} vs transfer {_fmt(tr)}"))
    else:
        rep.checks.append(Check("white-box beats transfer", None, "no substitute= model given"))
    # 8: gradient-free
    sq = run(f"Square-{queries}", Square(eps, queries=queries, seed=seed))
    rep.checks.append(_not_beaten("gradient-free does not beat gradients", sq, pg,
                                  f"Square ({queries} queries) {_fmt(sq)} vs PGD-{steps} {_fmt(pg)}"))
    # 9: adaptive attacks
    adaptive = []
    if attack_model is not None:
        adaptive.append(run(f"PGD-{steps}+BPDA", Adaptive(pgd, attack_model.to(dev).eval(), "BPDA")))
    if eot is not None:
        on = attack_model.to(dev).eval() if attack_model is not None else model
        a = PGD(eps, steps=steps, early_stop=True, seed=seed, eot=eot)
        adaptive.append(run(f"PGD-{steps}+EOT{eot}", Adaptive(a, on, f"EOT{eot}" + ("+BPDA" if attack_model else ""))))
    if adaptive:
        best = min(adaptive, key=lambda a: a.correct)
        rep.checks.append(_not_beaten("adaptive attack does not beat plain PGD", best, pg,
                                      f"{best.attack} {_fmt(best)} vs PGD-{steps} {_fmt(pg)}"))
    else:
        need = (not rep.checks[0].passed) or (not deterministic)
        rep.checks.append(Check("adaptive attack does not beat plain PGD", False if need else None,
                                "needed but not run: pass attack_model= (BPDA) and/or eot=" if need else
                                "gradients usable and model deterministic: no BPDA/EOT needed"))
    return rep

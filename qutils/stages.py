"""The stages of a cascade and the one builder every chapter uses (:mod:`qutils.cascade` runs them).

:func:`adaptive_stages` builds the book's standard cascade from the defense protocol
(:mod:`qutils.defenses.protocol`); :func:`chapter_stages` calls it with a chapter's settings;
:func:`transfer_stage` is the black-box stage crafted on a substitute.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from .attacks import APGD, APGDT, Adaptive, Attack, Square, Transfer
from .attacks.base import as_norm, check_eps, check_int
from .defenses.protocol import as_defense
from .schema import STAGE_ROLES

__all__ = ["Stage", "adaptive_stages", "transfer_stage", "chapter_stages"]


@dataclass
class Stage:
    """One attack of a cascade: ``attack`` is run against the deployed model (wrap it in
    :class:`~qutils.attacks.Adaptive` to craft on an attack view, or
    :class:`~qutils.attacks.Transfer` to craft on a substitute)."""

    label: str
    attack: Attack
    role: str = "adaptive"  #: one of :data:`qutils.schema.STAGE_ROLES`

    def __post_init__(self):
        if not isinstance(self.attack, Attack):
            raise ValueError(f"stage {self.label!r}: attack must be a qutils Attack, got {type(self.attack).__name__}")
        if self.role not in STAGE_ROLES:
            raise ValueError(f"stage {self.label!r}: unknown role {self.role!r}")


def adaptive_stages(defense, eps: float, norm: str = "Linf", steps: int = 100, targets: int = 3,
                    square_queries: int = 1000, eot: int | None = None, paper_attack: Stage | None = None,
                    designed: dict | None = None, transfer: Stage | None = None, targeted: bool = True,
                    ce_views: str = "all", targeted_views: str = "first", label_single_view: bool = True,
                    seed: int = 0) -> list[Stage]:
    """The book's standard cascade for ``defense`` (a :class:`~qutils.defenses.protocol.Defense`
    or a plain model) at radius ``eps``, in this order:

    1. ``paper_attack``, the paper's own attack (role ``"paper's attack"``), if given;
    2. APGD-CE through every attack view (``ce_views="first"``: the first only), with ``eot`` EOT
       samples on the views that are random (:meth:`~qutils.defenses.protocol.Defense.view_is_random`;
       default 10 if the defense is random, else 1) and none on the others;
    3. (``targeted``) APGD-T with ``targets`` target classes through the first view that is not random
       (a targeted attack without EOT; the first view if every view draws), or every view
       (``targeted_views="all"``);
    4. the attacks designed for the defense (:meth:`~qutils.defenses.protocol.Defense.designed_attacks`
       with ``designed`` as its options, the chapter's settings; ``None``: no designed attack);
    5. ``transfer``, a stage crafted on another model (a :class:`~qutils.attacks.Transfer`), if given;
    6. Square with ``square_queries`` queries (L-infinity only; 0: none).

    A stage's label names its view, ``"APGD-CE (straight-through)"``, and its EOT samples where the
    view draws, ``"APGD-CE, EOT 8 (straight-through)"``; ``label_single_view=False`` leaves the view out
    when the defense has only one (``"APGD-CE"``)."""
    d = as_defense(defense)
    eps = check_eps(eps)
    norm = as_norm(norm)
    eot = (10 if d.random else 1) if eot is None else check_int(eot, "eot")
    for value, name in ((ce_views, "ce_views"), (targeted_views, "targeted_views")):
        if value not in ("first", "all"):
            raise ValueError(f"{name} must be 'first' or 'all', got {value!r}")
    if paper_attack is not None and paper_attack.role != "paper's attack":
        raise ValueError(f"the paper's attack must have the role \"paper's attack\", got {paper_attack.role!r}")
    stages = [paper_attack] if paper_attack is not None else []
    views = d.attack_views()
    deployed = d.deployed()
    random = {label: d.view_is_random(label) for label in views}
    chosen_ce = list(views)[:1] if ce_views == "first" else list(views)
    if targeted_views == "all":
        chosen_t = list(views)
    else:
        chosen_t = [next((k for k in views if not random[k]), next(iter(views)))]
    plan = [("APGD-CE", chosen_ce, lambda es, e: APGD(eps, steps, norm, "ce", seed=seed, early_stop=es, eot=e))]
    if targeted:
        plan.append(("APGD-T", chosen_t, lambda es, e: APGDT(eps, steps, norm, targets, seed=seed, early_stop=es, eot=e)))
    for what, chosen, make in plan:
        for label in chosen:
            view = views[label]
            e = eot if random[label] else 1
            attack = make(view.same_forward, e)
            if view.model is not deployed:
                attack = Adaptive(attack, view.model, how=label)
            title = view.title or label
            name = f"{what}, EOT {e}" if random[label] else what
            shown = f"{name} ({title})" if label_single_view or len(views) > 1 else name
            stages.append(Stage(shown, attack, "adaptive"))
    if designed is not None:
        stages += [Stage(label, a, "designed") for label, a in d.designed_attacks(eps, steps, seed, **designed).items()]
    if transfer is not None:
        stages.append(transfer)
    if norm == "Linf" and square_queries:
        stages.append(Stage(f"Square ({square_queries} queries)", Square(eps, queries=square_queries, seed=seed),
                            "gradient-free"))
    return stages


def transfer_stage(label: str, source: nn.Module, description: str, eps: float, steps: int, seed: int = 0) -> Stage:
    """A transfer stage: APGD-CE crafted on ``source`` (``description`` names it in the attack's name),
    scored on the deployed model (a black-box attack that needs no gradient of the defense)."""
    return Stage(label, Transfer(APGD(eps, steps, seed=seed), source, description), "adaptive")


def chapter_stages(m, cfg, eps: float, paper_attack: Stage | None, source=None, light: bool = False,
                   source_name: tuple[str, str] = ("the substitute", "the substitute"), light_views: str = "first",
                   eot: int | None = None, designed: dict | None = None, label_single_view: bool = True) -> list[Stage]:
    """The cascade a chapter builds for one model from its config ``cfg`` (``adaptive_steps``,
    ``apgd_targets``, ``square_queries``, ``designed_options``, ``seed``): :func:`adaptive_stages` with
    the chapter's ``paper_attack``, the designed attacks (options ``designed``, default the config's),
    transfer from ``source`` unless the model is the source (``source_name``: the stage's and the
    substitute's names), and Square. ``light`` (the curves' cheaper cascade): no APGD-T, transfer or
    Square, APGD-CE through ``light_views`` ("first" or "all")."""
    transfer = None
    if source is not None and source is not m and not light:
        transfer = transfer_stage(f"transfer from {source_name[0]}", source, source_name[1], eps, cfg.adaptive_steps,
                                  cfg.seed)
    return adaptive_stages(m, eps, steps=cfg.adaptive_steps, targets=cfg.apgd_targets, eot=eot,
                           square_queries=0 if light else cfg.square_queries, paper_attack=paper_attack,
                           designed=cfg.designed_options if designed is None else designed, transfer=transfer,
                           targeted=not light, ce_views=light_views if light else "all",
                           label_single_view=label_single_view, seed=cfg.seed)

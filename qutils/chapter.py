"""The chapter contract: what every defense chapter declares about itself, once.

Each package under :mod:`qutils.experiments` (one per paper) declares one :class:`Chapter` record,
``CHAPTER``: the paper's id (the package's name), its name and reference, what it quantizes, its
colour in the book's figures, the results files whose ``claims`` tables hold its ledger, its
adaptive results in the side-by-side comparison (one :class:`Source` per results file and dataset,
with the role of each main model), its configuration class and its claims. :data:`qutils.chapters.CHAPTERS`
lists the records in the book's order; the claims ledger (:mod:`qutils.ledger`) and the comparison
(:mod:`qutils.comparison`) read that list and nothing else, so adding a sixth defense is one package,
one line in that list, and its notebooks. ``tests/test_chapters.py`` states what a chapter must
provide and checks that every chapter does.

This module is below the chapters: it imports none of them.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from .claims import Claim

__all__ = ["CascadeSettings", "Chapter", "Source", "ROLES", "DEFENSE", "UNDEFENDED", "FGSM_TRAINED", "PGD_TRAINED", "OTHER"]


class CascadeSettings:
    """What every chapter's config says about its adaptive cascade under one name: a chapter's config
    class (a dataclass) inherits this and names its own fields in :attr:`STEPS_FIELD` (the steps of
    every APGD stage) and :attr:`DESIGNED_FIELDS` (the settings its defenses' designed attacks read,
    :meth:`~qutils.defenses.protocol.Defense.designed_attacks`)."""

    STEPS_FIELD = "apgd_steps"
    DESIGNED_FIELDS: tuple = ()
    #: the other settings that buy an attack more budget, doubled by :meth:`stronger` where the config has them
    BUDGET_FIELDS = ("square_queries", "flip_steps", "anneal_steps", "eot")
    MAX_TARGETS = 9  #: APGD-T's targets: at most the other classes of a 10-class problem (AutoAttack's 9)
    #: AutoAttack's standard strength (Croce & Hein 2020): the least budget of a row the comparison ranks
    STANDARD = {"steps": 100, "apgd_targets": 9, "square_queries": 5000}
    #: how :attr:`budget` names each budget setting
    BUDGET_NAMES = {"square_queries": "Square {} queries", "flip_steps": "threshold flip {} steps",
                    "anneal_steps": "annealing {} steps", "eot": "EOT {} samples"}

    @property
    def adaptive_steps(self) -> int:
        """Steps of every APGD stage of the chapter's cascade."""
        return getattr(self, self.STEPS_FIELD)

    @property
    def designed_options(self) -> dict:
        """``{setting: value}`` of the attacks designed for the chapter's defenses."""
        return {f: getattr(self, f) for f in self.DESIGNED_FIELDS}

    def stronger(self, factor: int = 2):
        """The same config with every attack's budget multiplied by ``factor``: the APGD steps
        (:attr:`STEPS_FIELD`), APGD-T's targets (at most :attr:`MAX_TARGETS`) and each of
        :attr:`BUDGET_FIELDS` the config has (Square's queries, the designed attacks' steps, EOT
        samples). The convergence check (:func:`qutils.cascade.convergence_table`) reruns the cascade
        with it."""
        import dataclasses

        from .checks import check_int

        factor = check_int(factor, "factor", minimum=2)
        changes = {self.STEPS_FIELD: factor * getattr(self, self.STEPS_FIELD)}
        if hasattr(self, "apgd_targets"):
            changes["apgd_targets"] = min(self.MAX_TARGETS, factor * self.apgd_targets)
        for f in self.BUDGET_FIELDS:
            if hasattr(self, f) and getattr(self, f) is not None:
                changes[f] = factor * getattr(self, f)
        return dataclasses.replace(self, **changes)

    def _strength(self) -> dict:
        return {"steps": self.adaptive_steps, "apgd_targets": getattr(self, "apgd_targets", None),
                "square_queries": getattr(self, "square_queries", None)}

    @property
    def below_standard(self) -> list[str]:
        """The cascade's settings below AutoAttack's standard strength (:attr:`STANDARD`), each as
        "APGD 40 steps (standard 100)"; empty when the cascade runs at that strength. A setting the
        config lacks counts as below."""
        names = {"steps": "APGD {} steps", "apgd_targets": "APGD-T {} targets", "square_queries": "Square {} queries"}
        have = self._strength()
        return [f"{names[k].format(have[k] if have[k] is not None else 'no')} (standard {v})"
                for k, v in self.STANDARD.items() if have[k] is None or have[k] < v]

    @property
    def at_standard(self) -> bool:
        """Does the cascade run at AutoAttack's standard strength (:attr:`STANDARD`) or above?"""
        return not self.below_standard

    @property
    def budget(self) -> str:
        """The cascade's budget in words, e.g. "APGD 100 steps, 9 targets, Square 5000 queries,
        threshold flip 100 steps" (the settings :meth:`stronger` multiplies)."""
        parts = [f"APGD {self.adaptive_steps} steps"]
        if getattr(self, "apgd_targets", None) is not None:
            parts[0] += f", {self.apgd_targets} target{'' if self.apgd_targets == 1 else 's'}"
        parts += [text.format(getattr(self, f)) for f, text in self.BUDGET_NAMES.items()
                  if getattr(self, f, None) is not None]
        return ", ".join(parts)

    @property
    def certify(self):
        """The search budget of the chapter's two-sided bounds (:class:`qutils.certify.SearchBudget`),
        from its fields ``certify_images``, ``certify_epsilons``, ``certify_nodes`` and ``certify_enum``
        (a chapter without binarizing models has none)."""
        from .certify import SearchBudget

        return SearchBudget(self.certify_images, self.certify_epsilons, self.certify_nodes, self.certify_enum)

#: the role a model plays in the comparison: the defense itself, or a baseline
DEFENSE, UNDEFENDED, FGSM_TRAINED, PGD_TRAINED, OTHER = (
    "defense", "undefended", "FGSM-trained", "PGD-trained", "other defense")
ROLES = (DEFENSE, UNDEFENDED, FGSM_TRAINED, PGD_TRAINED, OTHER)
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_COLOUR = re.compile(r"^#[0-9a-f]{6}$")


@dataclass(frozen=True)
class Source:
    """One chapter's adaptive results: ``results`` (``results/<results>.json``, written by
    ``notebooks/NN_<results>.ipynb``),
    its main ``models`` (``{label in its adaptive table: (role, training)}``) and, where it measured them,
    its security curves (``curves``: a table name; ``curve_models``: for a table without a ``model``
    column, ``{attack label: model label}``)."""

    paper: str
    results: str
    models: dict
    curves: str | None = None
    curve_models: dict | None = None
    reference: str | dict = ""  #: the chapter's model without the defense (per model if a dict), for the clean cost

    def __post_init__(self):
        if not self.models:
            raise ValueError(f"{self.results}: a source needs its main models")
        for model, spec in self.models.items():
            if not (isinstance(spec, tuple) and len(spec) == 2 and spec[0] in ROLES):
                raise ValueError(f"{self.results}: model {model!r} needs (role, training) with a role of {ROLES}, "
                                 f"got {spec!r}")

    def reference_of(self, model: str) -> str:
        return self.reference.get(model, "") if isinstance(self.reference, dict) else self.reference

    @property
    def notebook(self) -> str:
        from .results import notebook_of

        return notebook_of(self.results)


@dataclass(frozen=True)
class Chapter:
    """One defense chapter, as the book-wide pages (ledger, comparison, landing page) see it."""

    paper: str  #: the id: the package ``qutils.experiments.<paper>`` and the claims' ``paper``
    name: str  #: the defense's short name, e.g. "QuSecNets"
    reference: str  #: the paper, e.g. "QuSecNets (Ali et al. 2018)"
    mechanism: str  #: what it quantizes
    colour: str  #: its colour in the comparison's figures ("#rrggbb")
    results: tuple  #: the results files (``results/<name>.json``) whose ``claims`` tables hold its ledger
    sources: dict  #: per dataset, its adaptive results in the comparison: ``{dataset: (Source, ...)}``
    config: type  #: its configuration dataclass (rebuilt from a results file's ``config``)
    claims: tuple = field(repr=False, default=())  #: every claim of the paper (:class:`~qutils.claims.Claim`)
    #: where the chapter ported the paper's models to another dataset: a function of the results directory
    #: giving ``{claim key: (Estimate, where)}`` -- the adaptive worst case of the model that plays the
    #: claim's model on the port, and the port's name ("MNIST port") -- read from its results files
    ports: object = field(repr=False, default=None)

    def __post_init__(self):
        if not isinstance(self.paper, str) or not _ID.match(self.paper):
            raise ValueError(f"a chapter's id is a lowercase identifier (its package name), got {self.paper!r}")
        for what in ("name", "reference", "mechanism"):
            if not isinstance(getattr(self, what), str) or not getattr(self, what).strip():
                raise ValueError(f"chapter {self.paper!r} needs a non-empty {what}")
        if not isinstance(self.colour, str) or not _COLOUR.match(self.colour):
            raise ValueError(f"chapter {self.paper!r}: colour must be '#rrggbb', got {self.colour!r}")
        object.__setattr__(self, "results", tuple(self.results))
        object.__setattr__(self, "claims", tuple(self.claims))
        if not self.results or not all(isinstance(r, str) and _ID.match(r) for r in self.results):
            raise ValueError(f"chapter {self.paper!r}: results must name results files, got {self.results!r}")
        if not (isinstance(self.config, type) and dataclasses.is_dataclass(self.config)):
            raise ValueError(f"chapter {self.paper!r}: config must be its configuration dataclass, got {self.config!r}")
        for c in self.claims:
            if not isinstance(c, Claim):
                raise ValueError(f"chapter {self.paper!r}: claims must be Claim records, got {type(c).__name__}")
            if c.paper != self.paper:
                raise ValueError(f"chapter {self.paper!r} lists a claim of paper {c.paper!r} ({c.key})")
        if self.ports is not None and not callable(self.ports):
            raise ValueError(f"chapter {self.paper!r}: ports must be a function of the results directory")
        for dataset, sources in self.sources.items():
            for s in sources:
                if not isinstance(s, Source) or s.paper != self.paper:
                    raise ValueError(f"chapter {self.paper!r}: its {dataset} sources must be its own Source records, "
                                     f"got {s!r}")

    def notebooks(self) -> dict:
        """``{results file: the notebook that writes it}`` (``""`` where none is named after it)."""
        from .results import notebook_of

        names = list(self.results) + [s.results for ss in self.sources.values() for s in ss]
        return {r: notebook_of(r) for r in dict.fromkeys(names)}

"""The evaluation API the pages import: accuracy and robust accuracy with their 95% Wilson intervals
(:mod:`qutils.metrics`), tables of attacks x epsilons and of defenses (here), and the
gradient-masking audit (:mod:`qutils.audit`).

A robust accuracy is only meaningful with its threat model, norm, epsilon, attack, steps and
number of images: :class:`Accuracy` carries all of them and prints them.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .audit import AuditReport, audit
from .metrics import (Accuracy, accuracy, accuracy_of, accuracy_row, check_batch, compare_accuracies,
                      distances, pick, predict, robust_accuracy, significantly_lower, wilson_interval)

__all__ = ["check_batch", "wilson_interval", "Accuracy", "significantly_lower", "compare_accuracies", "predict", "accuracy",
           "robust_accuracy", "pick", "accuracy_row", "accuracy_of", "distances", "attack_table", "defense_table", "audit",
           "AuditReport"]


def attack_table(model: nn.Module, attacks, epsilons, x: torch.Tensor, y: torch.Tensor,
                 batch_size: int = 500, source: nn.Module | None = None, progress: bool = True):
    """Robust accuracy for every attack x epsilon, as a pandas DataFrame (one row each).

    ``attacks`` is a list of :class:`Attack` (their own eps is replaced by each epsilon).
    Epsilon 0 is the clean accuracy. Columns: attack, threat_model, norm, eps, steps, n,
    accuracy, ci_low, ci_high.
    """
    import pandas as pd

    from .progress import progress as tqdm

    rows = []
    grid = [(a, e) for a in attacks for e in epsilons]
    clean = None
    for attack, eps in tqdm(grid, enabled=progress, desc="attack x epsilon"):
        if eps == 0:
            clean = clean or accuracy(model, x, y, batch_size)
            res = Accuracy(clean.correct, clean.n, attack.name, str(attack.threat_model),
                           str(attack.norm), 0.0, attack.steps)
        else:
            res = robust_accuracy(model, attack.with_eps(eps), x, y, batch_size, source=source)
        d = res.as_dict()
        d.pop("params")
        rows.append(d)
    cols = ["attack", "threat_model", "norm", "eps", "steps", "n", "correct", "accuracy", "ci_low", "ci_high"]
    return pd.DataFrame(rows)[cols]


def defense_table(defenses: dict, attacks, epsilons, x: torch.Tensor, y: torch.Tensor,
                  batch_size: int = 500, source: nn.Module | None = None, progress: bool = True):
    """:func:`attack_table` for every defended model of ``defenses`` (``{name: model}``), with a
    ``defense`` column: the accuracy-versus-epsilon data of a defense comparison."""
    import pandas as pd

    from .progress import progress as tqdm

    frames = [attack_table(m, attacks, epsilons, x, y, batch_size, source=source, progress=False).assign(defense=name)
              for name, m in tqdm(list(defenses.items()), enabled=progress, desc="defenses")]
    df = pd.concat(frames, ignore_index=True)
    return df[["defense"] + [c for c in df.columns if c != "defense"]]

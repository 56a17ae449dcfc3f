"""The QuSecNets chapter's tables, formatted for the page (both notebooks show them the same way)."""
from __future__ import annotations

import pandas as pd

from ... import report

__all__ = ["show_minimum_norm", "show_adaptive"]


def show_minimum_norm(tabs: dict):
    """C&W L2 (untargeted and targeted) and targeted JSMA, white- and black-box, with intervals."""
    cw = tabs["cw"].assign(attack_=lambda d: ["C&W L2, targeted" if t else "C&W L2" for t in d.targeted])
    js = tabs["jsma"].assign(attack_="JSMA, targeted")
    both = pd.concat([cw, js], ignore_index=True)
    return report.show(both, intervals={"accuracy (%)": ("accuracy", "ci_low", "ci_high")},
                       columns=["defense", "attack_", "setting", "n", "accuracy (%)"], rename={"attack_": "attack"})


def show_adaptive(summary: pd.DataFrame):
    """One row per defense: clean, the paper's attack, the adaptive worst case, and the attack that
    broke the most images (:func:`.measure.adaptive_table`)."""
    return report.cascade_summary(summary, "model", title="defense")

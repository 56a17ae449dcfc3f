"""The Q-Layer paper's comparisons (its claims that one model beats another), measured on our
numbers, each with both 95% intervals."""
from __future__ import annotations

import pandas as pd

from ...evaluate import Accuracy, compare_accuracies, pick
from .config import PAIRS, SOURCE_A, QLayerConfig

__all__ = ["comparison", "comparisons", "surviving_gains", "inner_comparisons", "ablation_comparisons"]


# ---------------------------------------------------------------------------------------------
# the paper's comparisons
# ---------------------------------------------------------------------------------------------
def comparison(text: str, a: Accuracy, b: Accuracy, expected: str = "higher") -> dict:
    """One row of a comparisons table: the paper says ``a`` is ``expected`` ("higher", "lower" or
    "no significant difference") against ``b``; ours says which, with 95% intervals."""
    ours = compare_accuracies(a, b)
    return {"the paper's comparison": text, "A": a, "B": b, "ours": ours, "supported": "yes" if ours == expected else "no"}


def comparisons(bb: pd.DataFrame, wb: pd.DataFrame, cfg: QLayerConfig, table: dict, shortcut: pd.DataFrame | None = None):
    """The comparisons of sections 4.2-4.3 on our numbers at the headline radius: each Q-Layer network
    against the CNN trained alike (black-box FGSM and BIM from CNN_A, the E-path FGSM), the raw Q-large
    against the adversarially trained CNN, the clean cost, the Q-path against the E-path (table 6a)
    and, given ``shortcut``, the shortcut against the E-path attack (table 11). ``table``: the paper's
    table names for this dataset, ``{"black": "1a", "white": "2a"}``."""
    e = cfg.eps
    bba = bb[bb.source.isin([SOURCE_A, "-"])]
    A = lambda df, model, **kw: pick(df, model=model, path="-" if model.startswith("CNN") else "Q-path", **kw)  # noqa: E731
    rows = []
    for q, ref in PAIRS:
        atks = ("BIM",) if q.endswith("+ adv") else ("FGSM", "BIM")
        for atk in atks:
            rows.append(comparison(f"black-box {atk} {e:g}: {q} above {ref} (table {table['black']})",
                                   A(bba, q, attack=atk, eps=e), A(bba, ref, attack=atk, eps=e)))
        if not q.endswith("+ adv"):
            rows.append(comparison(f"white-box FGSM {e:g}: {q} (E-path attack) above {ref} (table {table['white']})",
                                   A(wb, q, attack="FGSM", eps=e), A(wb, ref, attack="FGSM", eps=e)))
    rows.append(comparison(f"black-box BIM {e:g}: raw Q-large above the adversarially trained CNN (section 4.2)",
                           A(bba, "Q-large", attack="BIM", eps=e), A(bba, "CNN + adv", attack="BIM", eps=e)))
    rows.append(comparison(f"clean: Q-base below the CNN (table {table['black']})", A(bba, "Q-base", attack="none"),
                           A(bba, "CNN", attack="none"), expected="lower"))
    for q in ("Q-base", "Q-large"):
        rows.append(comparison(f"black-box FGSM {e:g}: {q}'s Q-path above its E-path (table 6a)",
                               pick(bba, model=q, path="Q-path", attack="FGSM", eps=e),
                               pick(bba, model=q, path="E-path", attack="FGSM", eps=e)))
        if shortcut is not None:
            rows.append(comparison(f"white-box BIM {e:g}: the shortcut attack weaker than the E-path attack on {q} "
                                   "(table 11)", pick(shortcut, model=q, path="Q-path", attack="BIM", eps=e),
                                   pick(wb, model=q, path="Q-path", attack="BIM", eps=e)))
    return pd.DataFrame(rows)


def surviving_gains(results: dict, wb: pd.DataFrame, cfg: QLayerConfig) -> pd.DataFrame:
    """The paper's comparisons re-asked with the adaptive worst case: does each Q-Layer network keep
    more than the CNN trained alike? And is the paper's white-box attack (FGSM on the E-path, scored on
    the Q-path) as strong as the worst case (``"higher"`` means it overstated the robustness)?"""
    rows = [comparison(f"adaptive worst case: {q} above {ref}", results[q].worst, results[ref].worst)
            for q, ref in PAIRS if q in results and ref in results]
    rows += [comparison(f"{q}: the paper's attack (E-path FGSM {cfg.eps:g}) as strong as the worst case",
                        pick(wb, model=q, path="Q-path", attack="FGSM", eps=cfg.eps), results[q].worst,
                        expected="no significant difference")
             for q in results if not q.startswith("CNN")]
    return pd.DataFrame(rows)


def inner_comparisons(black: pd.DataFrame, white: pd.DataFrame, results: dict, cfg: QLayerConfig) -> pd.DataFrame:
    """Table 3's comparisons at ``cfg.eps``: Q-inner above Q-large under the E-path attacks (table 3b),
    the two comparable under black-box attacks (table 3a), and Q-inner's adaptive worst case against
    the CNN's."""
    e = cfg.eps
    rows = []
    for atk in ("FGSM", "BIM"):
        rows.append(comparison(f"white-box {atk} {e:g}: Q-inner above Q-large (table 3b)",
                               pick(white, model="Q-inner", path="Q-path", attack=atk, eps=e),
                               pick(white, model="Q-large", path="Q-path", attack=atk, eps=e)))
        rows.append(comparison(f"black-box {atk} {e:g}: Q-inner comparable to Q-large (table 3a)",
                               pick(black, model="Q-inner", path="Q-path", attack=atk, eps=e, source=SOURCE_A),
                               pick(black, model="Q-large", path="Q-path", attack=atk, eps=e, source=SOURCE_A),
                               expected="no significant difference"))
    rows.append(comparison("adaptive worst case: Q-inner above the CNN", results["Q-inner"].worst, results["CNN"].worst))
    return pd.DataFrame(rows)


def ablation_comparisons(black: pd.DataFrame, white: pd.DataFrame, grid: pd.DataFrame, cfg: QLayerConfig) -> pd.DataFrame:
    """Appendix G's and table 8's comparisons at ``cfg.eps``: separate subsequent networks above a
    shared one (tables 9 and 10), and more heads above one head at each number of concepts (table 8a)."""
    e = cfg.eps
    rows = []
    for atk in ("FGSM", "BIM"):
        rows.append(comparison(f"black-box {atk} {e:g}: separate above shared (table 9)",
                               pick(black, model="Q-large", path="Q-path", attack=atk, eps=e, source=SOURCE_A),
                               pick(black, model="Q-large, shared", path="Q-path", attack=atk, eps=e, source=SOURCE_A)))
        rows.append(comparison(f"white-box {atk} {e:g}: separate above shared (table 10)",
                               pick(white, model="Q-large", path="Q-path", attack=atk, eps=e),
                               pick(white, model="Q-large, shared", path="Q-path", attack=atk, eps=e)))
    lo, hi = min(cfg.grid_heads), max(cfg.grid_heads)
    for nc in cfg.grid_concepts:
        if lo != hi:
            rows.append(comparison(f"black-box FGSM {e:g}: K={hi} above K={lo} at nc={nc} (table 8a)",
                                   pick(grid, K=hi, nc=nc), pick(grid, K=lo, nc=nc)))
    return pd.DataFrame(rows)

"""The Q-Layer chapter's experiments, split by concern: the settings and model names
(:mod:`.config`), the models (:mod:`.zoo`), the measurements (:mod:`.measure`, :mod:`.analysis`), the
comparisons with the paper (:mod:`.paper_comparisons`), the exercises' answers (:mod:`.exercises`), the paper's numbers
and claims (:mod:`.paper`), the tables (:mod:`.tables`) and the figures (:mod:`.figures`). The MNIST
notebooks, their Fashion-MNIST companions, Q-inner and the ablations call the same functions with
other configs."""
from . import figures, tables
from .chapter import CHAPTER
from .config import (ADV, MAIN, PAIRS, RAW, SOURCE_A, SOURCE_B, VAL_SOURCE, QLayerConfig, ablation_config, config_for,
                     grid_names)
from .analysis import (concept_usage, distribution_shift, kl_divergence, seed_spread, shift_table, shortcut_vs_e,
                       usage_table)
from .paper_comparisons import ablation_comparisons, comparison, comparisons, inner_comparisons, surviving_gains
from .exercises import exercise_reference
from .measure import (ablation_grid, adaptive, adaptive_table, black_box, cascade_stages, clean_rows, convergence,
                      gradient_table, headline_protocol, paper_attack, paths, stage_table, white_box)
from .paper import CLAIMS, PAPER, PROTOCOL, claims_of, compare, compare_grid, compare_long, ledger, paper_cells
from .zoo import book_zoo, Zoo, build_model, seed_runs, spec, test_images, train_zoo
from ...evaluate import pick

__all__ = ["CHAPTER", "book_zoo", "QLayerConfig", "config_for", "ablation_config", "grid_names", "VAL_SOURCE", "SOURCE_A", "SOURCE_B", "RAW",
           "ADV", "MAIN", "PAIRS", "Zoo", "spec", "build_model", "train_zoo", "seed_runs", "test_images", "paths",
           "clean_rows", "black_box", "white_box", "headline_protocol", "seed_spread", "shortcut_vs_e", "kl_divergence",
           "concept_usage", "usage_table", "distribution_shift", "shift_table", "gradient_table", "paper_attack",
           "cascade_stages", "adaptive", "adaptive_table", "convergence", "stage_table", "comparison", "comparisons",
           "surviving_gains", "inner_comparisons", "ablation_comparisons", "ablation_grid", "exercise_reference", "PAPER", "CLAIMS", "PROTOCOL", "claims_of",
           "compare", "compare_long", "compare_grid", "paper_cells", "ledger", "pick", "figures", "tables"]

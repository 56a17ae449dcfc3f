"""The GCLN chapter's experiments, split by concern: the settings (:mod:`.config`), the models
(:mod:`.zoo`), the measurements (:mod:`.measure`), the paper's numbers and claims (:mod:`.paper`),
the tables (:mod:`.tables`) and the figures (:mod:`.figures`). The MNIST notebooks and the
Fashion-MNIST companion call the same functions with another config."""
from . import figures, tables
from .chapter import CHAPTER
from .config import PAPER_QS, QS_RATIOS, GCLNConfig, config_for
from .measure import (BPDA_ACCESS, binarization_bounds, convergence, PAPER_ACCESS, access_rows, access_table, adaptive, adaptive_curves,
                      adaptive_table, bpda_attack, cascade_stages, detector_scores, figure2_maps, figure3_qs,
                      figure3_steps, figure4_eps, figure4_steps, frequency_energy, gain_table, models_of,
                      paper_access, paper_attack, paper_attacks, surviving_gains, table1, table2, table3, table4)
from .exercises import EXERCISES, check_exercise, exercise_reference
from .paper import CLAIMS, PAPER, PARTS, PORTS, ledger, paper_table, part_of, port_table, roles
from .zoo import (book_zoo, Zoo, attacked_pool, build_cleaner, classifier_config, cleaner_cache_config, test_images,
                  train_classifiers, train_cleaner, train_zoo)

__all__ = ["CHAPTER", "book_zoo", "GCLNConfig", "config_for", "PAPER_QS", "QS_RATIOS", "Zoo", "attacked_pool", "build_cleaner",
           "cleaner_cache_config", "classifier_config", "test_images", "train_classifiers", "train_cleaner",
           "train_zoo", "access_rows", "binarization_bounds", "convergence", "PAPER_ACCESS", "BPDA_ACCESS", "access_table", "cascade_stages", "paper_attack", "adaptive", "adaptive_curves",
           "adaptive_table", "bpda_attack", "detector_scores", "EXERCISES", "check_exercise", "exercise_reference", "figure2_maps", "figure3_qs",
           "figure3_steps", "figure4_eps", "figure4_steps", "frequency_energy", "gain_table", "models_of",
           "paper_access", "paper_attacks", "surviving_gains", "table1", "table2", "table3", "table4", "CLAIMS",
           "PAPER", "PARTS", "PORTS", "ledger", "paper_table", "part_of", "port_table", "roles", "figures",
           "tables"]

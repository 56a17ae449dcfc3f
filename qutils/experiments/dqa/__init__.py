"""The DQA chapter's experiments, split by concern: the settings and model names (:mod:`.config`),
the models (:mod:`.zoo`), the measurements (:mod:`.measure`), the paper's numbers and claims
(:mod:`.paper`), the tables (:mod:`.tables`) and the figures (:mod:`.figures`). The MNIST notebooks
and the Fashion-MNIST companion call the same functions with another config."""
from . import figures, tables
from .chapter import CHAPTER
from .config import FULL_PRECISION, SOURCES, DQAConfig, config_for, name_of, parse_name
from .measure import (GRADIENTS, activation_values, adaptive, adaptive_curves, adaptive_table, convergence, batch_scope, cascade_stages, cw_table,
                      finite_differences, gain_table, paper_attack, paper_pgd, penultimate, seed_range,
                      seed_spread, seed_table, surviving_gains, table1, transfer_table, tsne_embedding,
                      views, zoo_table)
from .exercises import EXERCISES, check_exercise, exercise_reference
from .paper import CLAIMS, PAPER, PARTS, ledger, paper_table1, paper_table4
from .zoo import book_zoo, Zoo, build_model, test_images, train_model, train_substitutes, train_zoo
from ...evaluate import pick

__all__ = ["CHAPTER", "book_zoo", "DQAConfig", "config_for", "FULL_PRECISION", "SOURCES", "name_of", "parse_name", "Zoo", "build_model",
           "train_model", "train_zoo", "train_substitutes", "test_images", "GRADIENTS", "views",
           "paper_pgd", "table1", "seed_table", "seed_spread", "seed_range", "cw_table", "zoo_table",
           "finite_differences", "transfer_table", "activation_values", "penultimate", "tsne_embedding",
           "batch_scope", "paper_attack", "cascade_stages", "adaptive", "convergence", "adaptive_table", "surviving_gains", "gain_table",
           "adaptive_curves", "EXERCISES", "check_exercise", "exercise_reference", "CLAIMS", "PAPER", "PARTS", "ledger", "paper_table1",
           "paper_table4", "pick", "figures", "tables"]

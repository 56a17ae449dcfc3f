"""The SQA chapter's experiments, split by concern: the settings and model names (:mod:`.config`),
the models (:mod:`.zoo`), the measurements (:mod:`.measure`), the paper's numbers and claims
(:mod:`.paper`), the tables (:mod:`.tables`) and the figures (:mod:`.figures`). The MNIST notebooks
and the Fashion-MNIST companion call the same functions with another config."""
from . import figures, tables
from .chapter import CHAPTER
from .config import BASELINES, FIGURE1, HEADLINE, SPECS, TABLE1, ModelSpec, SQAConfig, config_for
from .measure import (activation_maps, activation_values, adaptive, adaptive_curves, adaptive_table, algorithm_steps,
                      cascade_stages, convergence, exercise_reference, figure1, gain_table, gradient_variance, overfitting,
                      paper_attack, paper_attacks, seed_range, surviving_gains, table1, table1_summary, timing, tsne_embedding,
                      vote_accuracy)
from .paper import CLAIMS, PAPER, ledger, paper_table1
from .zoo import book_zoo, Zoo, build_model, reseeded, test_images, train_config, train_model, train_zoo
from ...evaluate import pick

__all__ = ["CHAPTER", "book_zoo", "SQAConfig", "config_for", "ModelSpec", "SPECS", "TABLE1", "BASELINES", "FIGURE1", "HEADLINE", "Zoo",
           "build_model", "reseeded", "test_images", "train_config", "train_model", "train_zoo", "paper_attacks",
           "table1", "table1_summary", "seed_range", "overfitting", "figure1", "timing", "algorithm_steps",
           "activation_values", "tsne_embedding", "activation_maps", "vote_accuracy", "gradient_variance",
           "convergence", "paper_attack", "cascade_stages", "adaptive", "adaptive_table", "gain_table", "surviving_gains", "adaptive_curves",
           "exercise_reference", "CLAIMS", "PAPER", "ledger", "paper_table1", "pick", "figures", "tables"]

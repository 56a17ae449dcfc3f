"""The QuSecNets chapter's experiments, split by concern: the settings (:mod:`.config`), the models
(:mod:`.zoo`), the measurements (:mod:`.measure`), the paper's claims (:mod:`.paper`), the
tables (:mod:`.tables`) and the figures (:mod:`.figures`). The MNIST notebook and its Fashion-MNIST companion call the same
functions with another config."""
from . import figures
from .chapter import CHAPTER
from .config import NO_DEFENSE, SUBSTITUTE, QuSecNetsConfig, config_for
from .measure import (adaptive, binarization_bounds, convergence, adaptive_curves, cascade_stages, paper_attack, adaptive_table, crossable_table, exercise_reference, fgsm_pivot, headline,
                      paper_protocol, pick, reproduce, sign_masking, threshold_crossable, transfer_beats_white_box, vq_cost_comparison,
                      zoo_frame)
from .paper import CLAIMS, MEASURED_BY, PARTS, answered_by_adaptive, ledger
from .tables import show_adaptive, show_minimum_norm
from .zoo import book_zoo, BRELU, defenses, test_images, train_zoo

__all__ = ["CHAPTER", "book_zoo", "QuSecNetsConfig", "config_for", "NO_DEFENSE", "SUBSTITUTE", "BRELU", "train_zoo", "defenses", "zoo_frame", "fgsm_pivot",
           "paper_attack", "cascade_stages", "paper_protocol", "reproduce", "pick", "headline", "transfer_beats_white_box", "threshold_crossable",
           "crossable_table", "adaptive", "adaptive_table", "convergence", "binarization_bounds", "adaptive_curves", "sign_masking", "vq_cost_comparison",
           "exercise_reference", "test_images", "show_adaptive", "show_minimum_norm", "CLAIMS", "MEASURED_BY", "PARTS", "answered_by_adaptive", "ledger", "figures"]

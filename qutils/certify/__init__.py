"""Robust accuracy of input binarization, bounded from both sides.

A defense that binarizes every pixel before its classifier -- QuSecNets' two-level layer (constant
or per-pixel thresholds), feature squeezing's 1-bit depth -- turns the L-infinity ball into a
finite set. A pixel at distance more than ``eps`` from its threshold keeps its bit whatever the
attacker does; a pixel closer than that can take either bit. If ``k`` pixels of an image can
flip, the classifier can only ever see ``2**k`` binary images, and the question "is there an
adversarial example within eps?" has an exact answer: look at all of them. That is what makes
both bounds possible here, where for a smooth defense an attack gives only an upper bound.

* :func:`reachable` -- the bits each pixel can take within the ball: the box ``[lo, hi]`` of the
  binary images the classifier can see (``lo == hi`` where the bit is fixed).
* :func:`interval_bounds` / :func:`margin_lower_bound` -- interval bound propagation (IBP; Gowal
  et al. 2018) through the classifier over that box, the last linear layer folded into the margin
  ``z_y - z_j``: a sound lower bound on the margin of every binary image in the box.
* :func:`linear_margin_lower_bound` -- forward linear bounds (symbolic intervals): every neuron
  between two linear functions of the free pixels, pushed forward; as cheap as a forward pass of
  a few dozen images, and on the book's CNNs it proves boxes that interval bounds miss by tens of
  logits. The search's default (``"auto"``).
* :func:`crown_margin_lower_bound` -- CROWN (Zhang et al. 2018): linear bounds propagated
  backwards, each ReLU relaxed between two lines; tighter still, but one backward row per
  uncertain neuron (seconds per box on the book's CNNs), for chains of affine layers and ReLUs.
* :func:`certify` -- per image, *certified* (no reachable binary image changes the prediction:
  proved by the bound, or by enumerating every vertex), *broken* (a reachable binary image that
  does, realised as a real input within the ball and checked on the deployed model), or *unknown*
  (the search budget ran out). It is a branch and bound: bound the box; where the bound does not
  prove the margin positive, try the box's most promising vertex; enumerate a box with few free
  pixels exactly; otherwise fix the most influential free pixel both ways and recurse.
* :func:`two_sided` -- both bounds on the same images: the certified share (lower) and the share
  that neither the attacks nor the search broke (upper), as a :class:`Bounds`;
  :func:`bounds_table` -- the same for several models and radii; :func:`cascade_bounds` -- a
  chapter's table, its cascade behind the upper bound, within a :class:`SearchBudget`.

The certified fraction is a lower bound on robust accuracy under the threat model (L-infinity,
``eps``, the deployed binarizing network), the attacks' best an upper bound; the truth lies
between. auto_LiRPA, the maintained CROWN library, is not on PyPI (it installs from its git
repository, with pins of its own), so the two bounds here are written small and tested for
soundness against brute force (``tests/test_certify.py``).

The package: :mod:`~qutils.certify.binary` (the threat model), :mod:`~qutils.certify.intervals`
(IBP), :mod:`~qutils.certify.linear` (CROWN and forward linear bounds), :mod:`~qutils.certify.search`
(the branch and bound) and :mod:`~qutils.certify.tables` (both bounds, per model and radius).
"""
from __future__ import annotations

from .binary import BROKEN, CERTIFIED, MISCLASSIFIED, UNKNOWN, binarizer_of, is_binarizer, reachable, realise
from .intervals import interval_bounds, margin_lower_bound
from .linear import crown_margin_lower_bound, linear_margin_lower_bound
from .search import BOUNDS, Certificate, certify
from .tables import Bounds, SearchBudget, bounds_table, cascade_bounds, two_sided

__all__ = ["SearchBudget", "cascade_bounds", "reachable", "interval_bounds", "margin_lower_bound", "crown_margin_lower_bound", "certify", "BOUNDS",
           "two_sided", "Bounds", "is_binarizer", "bounds_table", "linear_margin_lower_bound",
           "Certificate", "CERTIFIED", "BROKEN", "UNKNOWN", "MISCLASSIFIED", "realise", "binarizer_of"]


"""The Q-Layer itself (sections 3.1-3.4 of the Q-Layer paper): projection heads, the
nearest-concept quantizer with its backward rules, and the inactive-concept update of section 3.5.
:mod:`qutils.defenses.qlayer` builds the networks around it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_int

__all__ = ["QLayer", "QLayerOutput", "PATHS", "SOFT_TEMPERATURE"]

PATHS = ("q", "e", "shortcut")
#: default temperature of the soft nearest-concept assignment (:meth:`QLayer.soft`), in units of the
#: mean squared distance of a panel to its nearest concept
SOFT_TEMPERATURE = 0.5


@dataclass
class QLayerOutput:
    # feature maps are stored channels-last (``permute`` views of the panels, no copy): use
    # ``reshape``, not ``view``, to flatten them
    zq: torch.Tensor  #: quantized features, (n, K*d, h, w) or (n, K*d)
    ze: torch.Tensor  #: projected, non-quantized features, same shape
    index: torch.Tensor  #: chosen concept of every panel, (K, n*h*w)


class QLayer(nn.Module):
    """Multi-head quantization of d-channel features with ``heads`` concept matrices of ``concepts`` rows.

    ``project``: apply the eq.-4 re-weighting (default: only with more than one head).
    ``usage`` counts, while training, how often each concept was chosen (for section 3.5).
    """

    def __init__(self, channels: int, heads: int = 1, concepts: int = 64, project: bool | None = None):
        super().__init__()
        self.d = check_int(channels, "channels")
        self.heads = check_int(heads, "heads")
        self.nc = check_int(concepts, "concepts")
        self.project = self.heads > 1 if project is None else bool(project)
        if self.project:
            bound = 1 / math.sqrt(self.d)  # nn.Linear's initialisation
            self.weight = nn.Parameter(torch.empty(self.heads, self.d, self.d).uniform_(-bound, bound))
            self.bias = nn.Parameter(torch.zeros(self.heads, self.d))
        # VQ-VAE's initialisation of the codebook
        self.concepts = nn.Parameter(torch.empty(self.heads, self.nc, self.d).uniform_(-1 / self.nc, 1 / self.nc))
        self.register_buffer("usage", torch.zeros(self.heads, self.nc, dtype=torch.long))

    # -- the three steps --------------------------------------------------------------------
    def panels(self, z: torch.Tensor) -> torch.Tensor:
        """(n, d, h, w) or (n, d) -> (n*h*w, d)."""
        if z.dim() not in (2, 4) or z.shape[1] != self.d:
            raise ValueError(f"expected features (n, {self.d}, h, w) or (n, {self.d}), got {tuple(z.shape)}")
        return z if z.dim() == 2 else z.permute(0, 2, 3, 1).reshape(-1, self.d)

    def _project(self, p: torch.Tensor) -> torch.Tensor:
        """Eq. 4 for every head, heads in the middle: (N, d) -> (N, K, d) (the layout that
        concatenates over heads without a copy)."""
        if not self.project:
            return p.unsqueeze(1).expand(-1, self.heads, -1)
        gate = torch.softmax(torch.einsum("nd,kde->nke", p, self.weight) + self.bias, dim=-1)
        return p.unsqueeze(1) * gate

    def projections(self, p: torch.Tensor) -> torch.Tensor:
        """Eq. 4 for every head: (N, d) -> (K, N, d)."""
        return self._project(p).transpose(0, 1)

    def _scores(self, ze: torch.Tensor) -> torch.Tensor:
        """``||c||^2 - 2 <z, c>`` for (N, K, d) panels and every concept of their head: (N, K, nc), the
        squared distance up to ``||z||^2`` (the same for every concept), one matrix product."""
        c = self.concepts.detach()
        return (c * c).sum(-1) - 2 * torch.einsum("nkd,kcd->nkc", ze, c)

    @torch.no_grad()
    def _assign(self, ze: torch.Tensor) -> torch.Tensor:
        """Eq. 2 on (N, K, d) panels -> (N, K): the concept of the lowest :meth:`_scores`."""
        return self._scores(ze.detach()).argmin(-1)

    def assign(self, ze: torch.Tensor) -> torch.Tensor:
        """Eq. 2: index of the nearest concept of each head for every projected panel: (K, N, d) -> (K, N)."""
        return self._assign(ze.transpose(0, 1)).t()

    def _stacked(self, index: torch.Tensor) -> torch.Tensor:
        """(N, K) per-head indices -> rows of the K concept matrices stacked into one (K*nc, d)."""
        return index + torch.arange(self.heads, device=index.device) * self.nc

    def _lookup(self, index: torch.Tensor) -> torch.Tensor:
        """Eq. 3 on (N, K) indices -> (N, K, d), one gather in the stacked concept matrices."""
        return F.embedding(self._stacked(index), self.concepts.reshape(self.heads * self.nc, self.d))

    def _unpanel(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """(N, K, d) -> concatenation over heads in the layout of ``like``: (n, K*d, h, w) or (n, K*d).
        Feature maps come back in channels-last memory order (a view, no copy; convolutions accept it)."""
        cat = t.reshape(t.shape[0], self.heads * self.d)
        if like.dim() == 2:
            return cat
        n, _, h, w = like.shape
        return cat.view(n, h, w, -1).permute(0, 3, 1, 2)

    def soft(self, ze: torch.Tensor, temperature: float) -> torch.Tensor:
        """A smooth stand-in for eqs. 2-3 on projected, concatenated features
        ``ze`` (the layout of :class:`QLayerOutput`): every panel becomes the
        softmax-weighted mean of its head's concepts, weights
        ``softmax(-||z - c||^2 / (temperature * mean_z min_c ||z - c||^2))``.
        As the temperature falls it tends to the nearest concept; the scale
        makes ``temperature`` free of the features' units. Used as the
        derivative of the quantizer in BPDA (``backward="soft"``)."""
        panels = ze.permute(0, 2, 3, 1) if ze.dim() == 4 else ze
        p = panels.reshape(-1, self.heads, self.d)  # (N, K, d)
        # squared distance of every panel to every concept of its head
        d2 = ((p * p).sum(-1, keepdim=True) + self._scores(p)).clamp_min(0)
        nearest = d2.min(-1, keepdim=True).values
        scale = nearest.mean().detach().clamp_min(1e-12)
        w = torch.softmax(-d2 / (temperature * scale), dim=-1)
        mixed = torch.einsum("nkc,kcd->nkd", w, self.concepts.detach())
        return self._unpanel(mixed, ze)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The E-path's input alone (projected, concatenated, not quantized): no nearest-concept search."""
        return self._unpanel(self._project(self.panels(z)), z)

    def forward(self, z: torch.Tensor) -> QLayerOutput:
        ze = self._project(self.panels(z))
        index = self._assign(ze)
        zq = self._lookup(index)
        if self.training:
            self.usage += torch.bincount(self._stacked(index).flatten(), minlength=self.usage.numel()).view_as(self.usage)
        return QLayerOutput(self._unpanel(zq, z), self._unpanel(ze, z), index.t().contiguous())

    # -- section 3.5 ----------------------------------------------------------------------------
    def inactive(self) -> torch.Tensor:
        """Boolean (K, nc): concepts not chosen since the last :meth:`reset_usage`."""
        return self.usage == 0

    def reset_usage(self) -> None:
        self.usage.zero_()

    def inactive_loss(self, panels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Strategy 1's loss: sum over inactive concepts of the squared distance to their closest
        projected panel (``panels``: encoder panels (N, d); the panels are held fixed)."""
        mask = self.inactive() if mask is None else mask
        with torch.no_grad():
            ze = self.projections(panels)
        total = self.concepts.sum() * 0
        for k in range(self.heads):
            if mask[k].any():
                d2 = torch.cdist(self.concepts[k][mask[k]], ze[k]).pow(2)
                total = total + d2.min(1).values.sum()
        return total

    def update_inactive(self, panels: torch.Tensor, strategy: int = 1, steps: int = 10, lr: float = 1e-3) -> int:
        """Apply a section-3.5 strategy to the inactive concepts; returns how many there were.

        ``strategy=1``: ``steps`` Adam steps (learning rate ``lr``, appendix B) on :meth:`inactive_loss`.
        ``strategy=2``: each inactive concept becomes its closest projected panel.
        The usage counts are reset afterwards.
        """
        if strategy not in (1, 2):
            raise ValueError(f"strategy must be 1 (move) or 2 (re-initialise), got {strategy!r}")
        mask = self.inactive().clone()
        count = int(mask.sum())
        if count:
            panels = panels.detach()
            if strategy == 1:
                opt = torch.optim.Adam([self.concepts], lr=lr)
                for _ in range(check_int(steps, "steps")):
                    opt.zero_grad()
                    self.inactive_loss(panels, mask).backward()
                    opt.step()
            else:
                with torch.no_grad():
                    ze = self.projections(panels)
                    for k in range(self.heads):
                        if mask[k].any():
                            nearest = torch.cdist(self.concepts[k][mask[k]], ze[k]).argmin(1)
                            self.concepts[k][mask[k]] = ze[k][nearest]
        self.reset_usage()
        return count

    def extra_repr(self) -> str:
        return f"channels={self.d}, heads={self.heads}, concepts={self.nc}, project={self.project}"

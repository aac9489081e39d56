"""Deep baselines (CNN, LSTM, GRU, Transformer) and the PyTorch side shared with the hybrid.

Every network here is a :class:`BeatNet`: it maps the windows and RR features of a beat and of
its previous ``context_k`` beats to class logits. Two entry points compute the same thing:

* ``forward(windows, rr)`` with ``windows (B, K+1, leads, L)`` and ``rr (B, K+1, n_rr)``
  (position ``K`` is the current beat): what ONNX exports and devices run;
* ``forward_context(windows, rr, ctx)`` with the *unique* beats of a batch ``windows (U, leads,
  L)``, ``rr (U, n_rr)`` and ``ctx (B, K+1)`` indexing into them: each beat is encoded once even
  when it is in the context of several targets (training and bulk prediction).

The baselines look at the current beat only (``context_k = 0``), as in the literature they stand
for:

* ``cnn``: 1-D CNN on the beat plus RR features (Kiranyaz et al. 2016; Acharya et al. 2017);
* ``lstm`` / ``gru``: recurrent network over the beat's samples, downsampled, plus RR features
  (Yildirim 2018; Saadatnejad et al. 2020);
* ``transformer``: a small encoder over patches of the beat (Vaswani et al. 2017; Hu et al. 2022).

:class:`heartline.training.deep.TorchBeatClassifier` wraps any :class:`BeatNet` factory into a
:class:`~heartline.models.base.BeatClassifier` (fit / predict_proba / save / load); this module
holds the networks only and never imports :mod:`heartline.training`.

References
----------
Kiranyaz S, Ince T, Gabbouj M. Real-time patient-specific ECG classification by 1-D convolutional
neural networks. IEEE Trans Biomed Eng 63(3):664-675 (2016).
Acharya UR et al. A deep convolutional neural network model to classify heartbeats. Comput Biol
Med 89:389-396 (2017).
Yildirim O. A novel wavelet sequence based on deep bidirectional LSTM network model for ECG
signal classification. Comput Biol Med 96:189-202 (2018).
Saadatnejad S, Oveisi M, Hashemi M. LSTM-based ECG classification for continuous monitoring on
personal wearable devices. IEEE J Biomed Health Inform 24(2):515-523 (2020).
Vaswani A et al. Attention is all you need. NeurIPS (2017).
Hu R, Chen J, Zhou L. A transformer-based deep neural network for arrhythmia detection using
continuous ECG signals. Comput Biol Med 144:105325 (2022).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from heartline.data.aami import AAMI_CLASSES
from heartline.signal.segmentation import RR_FEATURE_NAMES
from heartline.signal.templates import template_feature_names

__all__ = [
    "BeatNet",
    "CnnNet",
    "NetOutput",
    "RecurrentNet",
    "TransformerNet",
]

logger = logging.getLogger(__name__)
N_CLASSES = len(AAMI_CLASSES)


@dataclass
class NetOutput:
    """What ``forward_context`` returns.

    Attributes
    ----------
    logits : Tensor
        ``(B, n_classes)`` for the current (last) beat of each context.
    prev_logits : Tensor or None
        ``(B, n_classes)``: the same head applied one step earlier (previous beat, with one
        fewer context beat), for the temporal-consistency loss; ``None`` when not computed.
    next_logits : Tensor or None
        ``(B, n_classes)``: early-alarm head predicting the NEXT beat's class; ``None`` if off.
    """

    logits: Tensor
    prev_logits: Tensor | None = None
    next_logits: Tensor | None = None


class BeatNet(nn.Module):
    """Base class: a network classifying the last beat of a causal context of ``context_k + 1``.

    Subclasses implement :meth:`forward_context`; :meth:`forward` is derived from it.
    """

    #: Number of previous beats the network looks at (0: current beat only).
    context_k: int = 0
    #: Whether :meth:`forward` also returns the early-alarm (next-beat) logits.
    has_next_head: bool = False

    def __init__(
        self, *, n_leads: int, window_len: int, n_rr: int, n_classes: int = N_CLASSES
    ) -> None:
        super().__init__()
        if n_leads < 1 or window_len < 8 or n_rr < 0 or n_classes < 2:
            raise ValueError(
                f"bad input shape: n_leads={n_leads} (>= 1), window_len={window_len} (>= 8), "
                f"n_rr={n_rr} (>= 0), n_classes={n_classes} (>= 2)"
            )
        self.n_leads = n_leads
        self.window_len = window_len
        self.n_rr = n_rr
        self.n_classes = n_classes
        # an input of the RR columns followed by the template columns (beats built with
        # template_features=True): the baselines' heads get those columns encoded as the hybrid
        # encodes them (_rr_in), so every model reads them on the same, bounded scale
        n_tpl = len(template_feature_names(n_leads))
        self._template_tail = n_tpl if n_rr == len(RR_FEATURE_NAMES) + n_tpl else 0

    def _rr_in(self, r: Tensor) -> Tensor:
        """The RR-side input ``(B, n_rr)`` as the baseline heads read it: the RR columns as they
        are; template columns, when the input holds them, through the hybrid's fixed a-priori
        encoding (:func:`heartline.models.hybrid.encode_template_features`: correlations
        clamped, ``log1p`` of the normalised RMS differences capped, log-ratios clamped), since
        their raw normalised RMS differences have a long right tail."""
        if not self._template_tail:
            return r
        from heartline.models.hybrid import encode_template_features

        n = r.shape[1] - self._template_tail
        return torch.cat([r[:, :n], encode_template_features(r[:, n:], self.n_leads)], dim=1)

    def forward_context(self, windows: Tensor, rr: Tensor, ctx: Tensor) -> NetOutput:
        """Outputs for the contexts ``ctx (B, K+1)`` indexing the unique beats ``windows (U, leads, L)``."""
        return self.classify(windows[ctx[:, -1]], rr[ctx[:, -1]])

    def classify(self, windows: Tensor, rr: Tensor) -> NetOutput:
        """Outputs from the current beats only, ``windows (B, leads, L)``, ``rr (B, n_rr)``
        (networks with ``context_k == 0``)."""
        raise NotImplementedError

    def forward_sequence(self, windows: Tensor, rr: Tensor) -> NetOutput:
        """Outputs from ``windows (B, K+1, leads, L)`` and ``rr (B, K+1, n_rr)``."""
        return self.classify(windows[:, -1], rr[:, -1])

    def forward(self, windows: Tensor, rr: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Logits of the last beat from ``windows (B, K+1, leads, L)`` and ``rr (B, K+1, n_rr)``
        (and the early-alarm logits when the network has that head)."""
        out = self.forward_sequence(windows, rr)
        if self.has_next_head:
            assert out.next_logits is not None
            return out.logits, out.next_logits
        return out.logits

    def auxiliary_loss(self, out: NetOutput, y_ctx: Tensor, y_next: Tensor) -> Tensor:
        """Extra training loss (early-alarm, consistency, kernel penalties); zero by default.

        ``y_ctx (B, K+1)`` holds the labels of the context beats (-1 unknown or padding) and
        ``y_next (B,)`` the next beat's label (-1 when there is none).
        """
        return out.logits.new_zeros(())


def _head(in_dim: int, hidden: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes)
    )


class CnnNet(BeatNet):
    """1-D CNN on the current beat (leads as channels), RR features after global pooling.

    Three blocks of Conv1d-BatchNorm-ReLU-MaxPool(2) with ``channels`` filters of ``kernel``
    samples, global average and max pooling, concatenation with the RR features, then a dense
    head (Kiranyaz et al. 2016; Acharya et al. 2017).
    """

    def __init__(
        self,
        *,
        n_leads: int,
        window_len: int,
        n_rr: int,
        n_classes: int = N_CLASSES,
        channels: int = 16,
        kernel: int = 7,
        hidden: int = 32,
        dropout: float = 0.3,
    ) -> None:
        super().__init__(n_leads=n_leads, window_len=window_len, n_rr=n_rr, n_classes=n_classes)
        layers: list[nn.Module] = []
        c_in = n_leads
        for _ in range(3):
            layers += [
                nn.Conv1d(c_in, channels, kernel, padding=kernel // 2),
                nn.BatchNorm1d(channels),
                nn.ReLU(),
                nn.MaxPool1d(2),
            ]
            c_in = channels
        self.features = nn.Sequential(*layers, nn.Dropout(dropout))
        self.head = _head(2 * channels + n_rr, hidden, n_classes, dropout)

    def classify(self, x: Tensor, r: Tensor) -> NetOutput:
        h = self.features(x)
        h = torch.cat([h.mean(dim=2), h.amax(dim=2), self._rr_in(r)], dim=1)
        return NetOutput(self.head(h))


class RecurrentNet(BeatNet):
    """LSTM or GRU over the beat's samples, downsampled by averaging ``downsample`` samples.

    The sequence has ``window_len / downsample`` steps of ``n_leads`` values; the last hidden
    state is concatenated with the RR features and fed to a dense head (Yildirim 2018;
    Saadatnejad et al. 2020).
    """

    def __init__(
        self,
        *,
        n_leads: int,
        window_len: int,
        n_rr: int,
        n_classes: int = N_CLASSES,
        cell: str = "lstm",
        hidden: int = 32,
        layers: int = 1,
        downsample: int = 4,
        dropout: float = 0.3,
    ) -> None:
        super().__init__(n_leads=n_leads, window_len=window_len, n_rr=n_rr, n_classes=n_classes)
        cells = {"lstm": nn.LSTM, "gru": nn.GRU}
        if cell not in cells:
            raise ValueError(f"cell must be one of {sorted(cells)}, got {cell!r}")
        if downsample < 1 or window_len % downsample:
            raise ValueError(f"downsample must divide window_len={window_len}, got {downsample}")
        self.downsample = downsample
        self.rnn = cells[cell](
            n_leads,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.head = _head(hidden + n_rr, hidden, n_classes, dropout)

    def classify(self, x: Tensor, r: Tensor) -> NetOutput:
        b, c, n = x.shape
        x = x.reshape(b, c, n // self.downsample, self.downsample).mean(dim=3).transpose(1, 2)
        seq, _ = self.rnn(x)
        h = torch.cat([self.drop(seq[:, -1]), self._rr_in(r)], dim=1)
        return NetOutput(self.head(h))


class TransformerNet(BeatNet):
    """A small Transformer encoder over non-overlapping patches of the beat.

    Patches of ``patch`` samples (all leads) are embedded linearly to ``d_model``, a learned
    position embedding is added, ``layers`` encoder layers with ``heads`` heads follow, then mean
    pooling, RR concatenation and a dense head (Vaswani et al. 2017; Hu et al. 2022).
    """

    def __init__(
        self,
        *,
        n_leads: int,
        window_len: int,
        n_rr: int,
        n_classes: int = N_CLASSES,
        patch: int = 8,
        d_model: int = 32,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.3,
    ) -> None:
        super().__init__(n_leads=n_leads, window_len=window_len, n_rr=n_rr, n_classes=n_classes)
        if patch < 1 or window_len % patch:
            raise ValueError(f"patch must divide window_len={window_len}, got {patch}")
        self.patch = patch
        n_tokens = window_len // patch
        self.embed = nn.Linear(n_leads * patch, d_model)
        self.pos = nn.Parameter(torch.zeros(1, n_tokens, d_model))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = _head(d_model + n_rr, d_model, n_classes, dropout)

    def classify(self, x: Tensor, r: Tensor) -> NetOutput:
        b, c, n = x.shape
        tokens = (
            x.reshape(b, c, n // self.patch, self.patch)
            .permute(0, 2, 1, 3)
            .reshape(b, n // self.patch, -1)
        )
        h = self.encoder(self.embed(tokens) + self.pos).mean(dim=1)
        return NetOutput(self.head(torch.cat([h, self._rr_in(r)], dim=1)))

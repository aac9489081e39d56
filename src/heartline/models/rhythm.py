"""Rhythm networks over a whole single-lead recording (N / A / O / ~, CinC 2017 classes).

Every network takes the same three inputs, so that one harness trains, scores and exports them:

* ``x``: ``(batch, n_samples)`` float, the band-passed, resampled, scaled ECG
  (:func:`heartline.features.rhythm.rhythm_model_signal`), zero-padded to a common length;
* ``mask``: ``(batch, n_samples)`` float, 1 on real samples and 0 on padding (records of
  9-60 s in one batch);
* ``rr``: ``(batch, n_rr)`` float, the record's RR-irregularity features
  (:func:`heartline.features.rhythm.rhythm_rr_features`, raw values: each network standardises
  them with the training statistics it stores as buffers, so an exported graph needs no
  separate scaler).

and returns ``(batch, 4)`` logits. Registry: :func:`build_rhythm_model`:

* ``"hybrid"``: a strided CNN front end (about 1.6 feature steps per second of ECG at 100 Hz),
  a bidirectional LSTM across those steps, masked attention + mean + max pooling, and the RR
  features fused before the classifier head (a CNN-LSTM of the kind used by several CinC 2017
  entries, e.g. Zihlmann et al. 2017, with the RR-irregularity evidence of Dash et al. 2009);
* ``"cnn"``: the CNN front end with two more convolution blocks and masked pooling, no LSTM,
  no RR features (the CNN-only baseline);
* ``"lstm"``: a bidirectional LSTM over 0.5 s frames of the raw signal, no CNN, no RR
  features (the LSTM-only baseline).
* ``"features"``: a linear layer (or one hidden layer) over the standardised ``rr`` features
  only, ignoring ``x`` (:class:`FeatureRhythmNet`; few parameters, for record-level DP-SGD).

References
----------
Zihlmann M, Perekrestenko D, Tschannen M. Convolutional recurrent neural networks for
electrocardiogram classification. Computing in Cardiology 44 (2017).
Dash S, Chon KH, Lu S, Raeder EA. Automatic real time detection of atrial fibrillation. Ann
Biomed Eng 37(9):1701-1709 (2009).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "HYBRID_HAND_PARAMS",
    "RHYTHM_CLASSES",
    "RHYTHM_MODELS",
    "CnnRhythmNet",
    "FeatureRhythmNet",
    "HybridRhythmNet",
    "LstmRhythmNet",
    "RhythmNet",
    "build_rhythm_model",
]

RHYTHM_CLASSES: tuple[str, ...] = ("N", "A", "O", "~")
_NEG = 1.0e4


class RhythmNet(nn.Module):
    """Base class: stores the model rate, the RR feature count and their standardisation."""

    def __init__(self, *, n_rr: int, fs_hz: float, n_classes: int = 4) -> None:
        super().__init__()
        self.n_rr = int(n_rr)
        self.fs_hz = float(fs_hz)
        self.n_classes = int(n_classes)
        self.register_buffer("rr_mean", torch.zeros(max(self.n_rr, 1)))
        self.register_buffer("rr_std", torch.ones(max(self.n_rr, 1)))

    def set_rr_scaler(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardisation of the RR features (training-set mean and std)."""
        self.rr_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.rr_std.copy_(torch.clamp(torch.as_tensor(std, dtype=torch.float32), min=1e-6))

    def scaled_rr(self, rr: torch.Tensor) -> torch.Tensor:
        return torch.clamp((rr - self.rr_mean) / self.rr_std, -6.0, 6.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _block(c_in: int, c_out: int, k: int, stride: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(),
        nn.Dropout(dropout),
    )


class _FrontEnd(nn.Module):
    """Strided convolutions (4, then 2 per block): ``(B, L)`` -> ``(B, C, L / 2^(k+1))`` and the mask."""

    def __init__(self, channels: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers = []
        c_in = 1
        for i, c in enumerate(channels):
            stride = 4 if i == 0 else 2
            layers.append(_block(c_in, c, 9 if i == 0 else (7 if i == 1 else 5), stride, dropout))
            c_in = c
        self.net = nn.Sequential(*layers)
        self.stride = 2 ** (len(channels) + 1)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net((x * mask).unsqueeze(1))
        # a step is valid when most of its input samples are (average pool of the mask)
        m = nn.functional.avg_pool1d(
            mask.unsqueeze(1), kernel_size=self.stride, stride=self.stride, ceil_mode=True
        )
        m = (m[:, :, : h.shape[2]] > 0.5).to(h.dtype)
        return h * m, m.squeeze(1)


def _masked_pool(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean and max over time of ``h`` ``(B, T, C)`` on valid steps ``m`` ``(B, T)``."""
    w = m.unsqueeze(2)
    mean = (h * w).sum(1) / torch.clamp(w.sum(1), min=1.0)
    mx = (h + (w - 1.0) * _NEG).amax(1)
    return torch.cat([mean, mx], dim=1)


class HybridRhythmNet(RhythmNet):
    """CNN front end, bidirectional LSTM across steps, attention pooling, RR features fused."""

    def __init__(
        self,
        *,
        n_rr: int,
        fs_hz: float = 100.0,
        channels: tuple[int, ...] = (8, 16, 32, 48, 64),
        hidden: int = 32,
        rr_hidden: int = 32,
        rr_layers: int = 1,
        dropout: float = 0.2,
        use_rr: bool = True,
    ) -> None:
        super().__init__(n_rr=n_rr if use_rr else 0, fs_hz=fs_hz)
        self.front = _FrontEnd(tuple(channels), dropout=0.1)
        self.lstm = nn.LSTM(self.front.out_channels, hidden, batch_first=True, bidirectional=True)
        self.att = nn.Linear(2 * hidden, 1)
        self.use_rr = bool(use_rr) and n_rr > 0
        rr_out = 0
        if self.use_rr:
            if rr_layers == 2:
                # the hand-feature vector (RR irregularity, beat morphology, P wave, spectrum;
                # :data:`HYBRID_HAND_PARAMS`) gets a second layer
                self.rr_net = nn.Sequential(
                    nn.Linear(n_rr, 2 * rr_hidden),
                    nn.ReLU(),
                    nn.Dropout(dropout),
                    nn.Linear(2 * rr_hidden, rr_hidden),
                    nn.ReLU(),
                )
            elif rr_layers == 1:
                self.rr_net = nn.Sequential(nn.Linear(n_rr, rr_hidden), nn.ReLU())
            else:
                raise ValueError(f"rr_layers must be 1 or 2, got {rr_layers}")
            rr_out = rr_hidden
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(6 * hidden + rr_out, 64),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(64, self.n_classes),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        h, m = self.front(x, mask)
        seq, _ = self.lstm(h.transpose(1, 2))  # (B, T, 2H)
        score = self.att(seq).squeeze(2) + (m - 1.0) * _NEG
        alpha = torch.softmax(score, dim=1).unsqueeze(2)
        parts = [(alpha * seq).sum(1), _masked_pool(seq, m)]
        if self.use_rr:
            parts.append(self.rr_net(self.scaled_rr(rr)))
        return self.head(torch.cat(parts, dim=1))


class CnnRhythmNet(RhythmNet):
    """CNN-only baseline: four strided and two plain convolution blocks, masked mean + max pooling."""

    def __init__(
        self,
        *,
        n_rr: int = 0,
        fs_hz: float = 100.0,
        channels: tuple[int, ...] = (8, 16, 32, 48, 64),
        dropout: float = 0.2,
    ) -> None:
        super().__init__(n_rr=0, fs_hz=fs_hz)
        self.front = _FrontEnd(tuple(channels), dropout=0.1)
        c = self.front.out_channels
        self.extra = nn.Sequential(
            nn.Conv1d(c, 64, 5, padding=2, bias=False),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Conv1d(64, 64, 5, padding=2, bias=False),
            nn.BatchNorm1d(64),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, self.n_classes)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        h, m = self.front(x, mask)
        h = self.extra(h) * m.unsqueeze(1)
        return self.head(_masked_pool(h.transpose(1, 2), m))


class LstmRhythmNet(RhythmNet):
    """LSTM-only baseline: a bidirectional LSTM over non-overlapping 0.5 s frames."""

    def __init__(
        self, *, n_rr: int = 0, fs_hz: float = 100.0, frame_s: float = 0.5, hidden: int = 48
    ) -> None:
        super().__init__(n_rr=0, fs_hz=fs_hz)
        self.frame = max(1, round(frame_s * fs_hz))
        self.lstm = nn.LSTM(self.frame, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Linear(4 * hidden, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        b, n = x.shape
        t = n // self.frame
        frames = (x * mask)[:, : t * self.frame].reshape(b, t, self.frame)
        m = (mask[:, : t * self.frame].reshape(b, t, self.frame).mean(2) > 0.5).to(x.dtype)
        seq, _ = self.lstm(frames)
        return self.head(_masked_pool(seq, m))


class FeatureRhythmNet(RhythmNet):
    """A small head over the record's hand features only (no ECG input is used).

    ``rr`` (RR-irregularity features, or the whole hand-feature vector) is standardised by the
    ``rr_mean`` / ``rr_std`` buffers, clipped to +-6, and fed to a linear layer (``hidden=0``:
    multinomial logistic regression) or one hidden ReLU layer. With few parameters to
    privatise it is the model for record-level DP-SGD on a few hundred records per site; the
    buffers are then set to fixed public constants
    (:func:`heartline.features.public_scale.public_scale`), never to statistics of the private
    training data. Same three inputs as every rhythm network, so the same harness trains,
    scores and exports it (``x`` and ``mask`` are ignored).
    """

    def __init__(
        self, *, n_rr: int, fs_hz: float = 100.0, hidden: int = 0, dropout: float = 0.0
    ) -> None:
        if n_rr < 1:
            raise ValueError(f"the feature model needs n_rr >= 1, got {n_rr}")
        super().__init__(n_rr=n_rr, fs_hz=fs_hz)
        if hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {hidden}")
        self.head: nn.Module
        if hidden == 0:
            self.head = nn.Linear(n_rr, self.n_classes)
        else:
            self.head = nn.Sequential(
                nn.Linear(n_rr, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 4)
            )

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        return self.head(self.scaled_rr(rr))


#: Options of the hybrid when it takes the whole hand-feature vector
#: (:data:`heartline.features.rhythm.HAND_FEATURE_NAMES`): a wider, two-layer feature branch.
HYBRID_HAND_PARAMS: dict[str, int] = {"rr_hidden": 48, "rr_layers": 2}

#: Registry: name -> constructor (keyword arguments ``n_rr``, ``fs_hz`` and model options).
RHYTHM_MODELS: dict[str, Callable[..., RhythmNet]] = {
    "hybrid": HybridRhythmNet,
    "cnn": CnnRhythmNet,
    "features": FeatureRhythmNet,
    "lstm": LstmRhythmNet,
}


def build_rhythm_model(name: str, **kw: object) -> RhythmNet:
    """Build a rhythm network by registry name (``hybrid``, ``cnn``, ``features``, ``lstm``).

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the valid ones).

    >>> net = build_rhythm_model("hybrid", n_rr=24)
    >>> x = torch.zeros(2, 3000); out = net(x, torch.ones_like(x), torch.zeros(2, 24))
    >>> tuple(out.shape)
    (2, 4)
    """
    if name not in RHYTHM_MODELS:
        raise ValueError(
            f"unknown rhythm model {name!r}; valid models: {', '.join(sorted(RHYTHM_MODELS))}"
        )
    return RHYTHM_MODELS[name](**kw)  # type: ignore[arg-type]

"""Multimodal hybrid: a 12-lead CNN-LSTM over the ECG fused with patient metadata by attention.

Branches
--------
1. **ECG** (:class:`EcgBranch`): a stem convolution over the 12 leads (kernel 7, batch norm,
   ReLU, max pool 2), then the beat model's parallel dilated branches
   (:class:`heartline.models.hybrid._Branch`, the ``qrs``/``p``/``t`` dilations of
   :data:`heartline.models.hybrid.DEFAULT_BRANCHES`) concatenated, max pooled (4), a
   bidirectional LSTM over the remaining time steps and additive (Bahdanau) attention pooling
   over time. At 100 Hz a step of the LSTM is 80 ms, so a 2.5 s crop is 31 steps and a whole
   10 s record 125. The network is length-agnostic: it trains on random 2.5 s crops and
   predicts a record as the mean of its sliding-window crops, as Strodthoff et al. (2021) do.
2. **Metadata** (:class:`MetaBranch`): the standardised age, sex, height, weight and BMI with
   their presence masks (and the over-89 flag) through a two-layer MLP. Missing values enter as
   0 (the training mean after standardisation) *and* a mask bit of 0, so the network knows they
   are missing; nothing is silently zero-filled.
3. **ECG features** (:class:`FeatureBranch`, the modes ending in ``_feat`` and ``"feat"``): the
   per-lead hand-crafted ECG features of the gradient boosting baseline
   (:func:`heartline.training.multimodal.record_features`: median-beat shape, amplitudes, areas,
   ST level, RR statistics), standardised on the training folds
   (:class:`heartline.training.multimodal.FeatureScaler`), through a two-layer MLP with input
   dropout. On 500 records these features carry most of the diagnostic signal (the boosting
   baseline), so the hybrid gets them as a third modality rather than having to learn them.
4. **Fusion** (``fusion=``): ``"attention"`` projects the embeddings to a common size and
   weighs them with a softmax over the modality scores ``w^T tanh(W e_m)`` (Bahdanau et al.
   2015; the same additive attention the beat model uses across leads), per record; the weights
   are returned (:meth:`MultimodalNet.modality_weights`). ``"attention_feat"`` does the same over
   three modalities (ECG, metadata, ECG features) and ``"attention_ecg_feat"`` over ECG and ECG
   features (the hybrid without metadata). ``"concat"`` is late fusion by concatenation.
   ``"ecg"``, ``"meta"`` and ``"feat"`` use one modality only (the ablations).
5. **Heads**: multi-label logits (sigmoid at inference); with ``aux_heads=True`` (the
   hybrid with the features branch) one auxiliary multi-label head per modality embedding,
   trained with the main head and unused at inference, so that no modality is left
   under-trained by the fusion (the modality-specific losses of Wang et al. 2020); with
   ``age_head=True``, an
   auxiliary age regression **from the ECG embedding only** (the metadata carry the age, so a
   head on the fused vector could copy it; the ECG-age task is the one that shapes the ECG
   features, as in Attia et al. 2019).

References
----------
Strodthoff N, Wagner P, Schaeffter T, Samek W. Deep learning for ECG analysis: benchmarks and
insights from PTB-XL. IEEE J Biomed Health Inform 25(5):1519-1528 (2021).
Bahdanau D, Cho K, Bengio Y. Neural machine translation by jointly learning to align and
translate. ICLR (2015).
Wang W, Tran D, Feiszli M. What makes training multi-modal classification networks hard?
CVPR (2020).
Attia ZI, Friedman PA, Noseworthy PA, et al. Age and sex estimation using artificial intelligence
from standard 12-lead ECGs. Circ Arrhythm Electrophysiol 12(9):e007284 (2019).
Oh SL, Ng EYK, Tan RS, Acharya UR. Automated diagnosis of arrhythmia using combination of CNN and
LSTM techniques with variable length heart beats. Comput Biol Med 102:278-287 (2018).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from heartline.models.hybrid import DEFAULT_BRANCHES, _Branch

__all__ = [
    "ATTENTION_FUSIONS",
    "FUSIONS",
    "N_META_INPUTS",
    "EcgBranch",
    "FeatureBranch",
    "MetaBranch",
    "MultimodalConfig",
    "MultimodalNet",
    "MultimodalOutput",
    "ResNet1d",
]

#: Fusion modes -> (uses ECG, uses metadata, uses ECG features).
FUSIONS: dict[str, tuple[bool, bool, bool]] = {
    "attention": (True, True, False),
    "concat": (True, True, False),
    "ecg": (True, False, False),
    "meta": (False, True, False),
    "attention_feat": (True, True, True),
    "attention_ecg_feat": (True, False, True),
    "feat": (False, False, True),
}
#: Fusion modes that weigh their modalities by attention.
ATTENTION_FUSIONS = ("attention", "attention_feat", "attention_ecg_feat")
#: Metadata inputs: 5 standardised values, their 5 masks, the over-89 flag.
N_META_INPUTS = 11


@dataclass(frozen=True)
class MultimodalConfig:
    """Hyper-parameters of :class:`MultimodalNet` (saved with every run)."""

    n_leads: int = 12
    n_classes: int = 5
    fs_hz: float = 100.0
    fusion: str = "attention"
    age_head: bool = False
    channels: int = 16
    lstm_hidden: int = 24
    embed_dim: int = 32
    meta_hidden: int = 16
    dropout: float = 0.3
    n_features: int = 0  # inputs of the ECG-features branch (FeatureScaler.transform width)
    feat_hidden: int = 64
    feat_input_dropout: float = 0.2
    feat_dropout: float = 0.5
    aux_heads: bool = False  # one auxiliary classification head per modality (training only)
    branches: dict[str, tuple[int, ...]] = field(default_factory=lambda: dict(DEFAULT_BRANCHES))

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["branches"] = {k: list(v) for k, v in self.branches.items()}
        return d


class MultimodalOutput(NamedTuple):
    """Logits ``(B, C)``, modality weights ``(B, 2)`` (ECG, metadata) or ``(B, 3)`` (ECG,
    metadata, ECG features; models with the features branch), age ``(B,)`` or None, and the
    auxiliary per-modality logits ``(B, modalities used, C)`` (``aux_heads=True``) or None."""

    logits: Tensor
    modality_weights: Tensor
    age: Tensor | None
    aux_logits: Tensor | None = None


class EcgBranch(nn.Module):
    """Multi-lead dilated CNN + bidirectional LSTM + attention pooling over time."""

    def __init__(
        self,
        *,
        n_leads: int,
        channels: int,
        lstm_hidden: int,
        dropout: float,
        branches: dict[str, tuple[int, ...]],
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(n_leads, channels, 7, padding=3),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.MaxPool1d(2),
        )
        self.branches = nn.ModuleDict({k: _Branch(channels, tuple(d)) for k, d in branches.items()})
        self.pool = nn.Sequential(nn.MaxPool1d(4), nn.Dropout(dropout))
        self.lstm = nn.LSTM(
            channels * len(branches), lstm_hidden, batch_first=True, bidirectional=True
        )
        self.att = nn.Linear(2 * lstm_hidden, 16)
        self.att_vec = nn.Linear(16, 1, bias=False)
        self.out_dim = 4 * lstm_hidden  # attention pooling + max pooling of the LSTM states

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, leads, T)`` -> embedding ``(B, out_dim)`` and time weights ``(B, steps)``."""
        h = self.stem(x)
        h = torch.cat([b(h) for b in self.branches.values()], dim=1)
        h = self.pool(h).transpose(1, 2)  # (B, steps, features)
        seq, _ = self.lstm(h)
        w = torch.softmax(self.att_vec(torch.tanh(self.att(seq))).squeeze(2), dim=1)
        pooled = (w.unsqueeze(2) * seq).sum(dim=1)
        return torch.cat([pooled, seq.amax(dim=1)], dim=1), w


class MetaBranch(nn.Sequential):
    """Two-layer MLP over the :data:`N_META_INPUTS` metadata inputs."""

    def __init__(self, *, hidden: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(N_META_INPUTS, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.out_dim = hidden


class FeatureBranch(nn.Sequential):
    """Two-layer MLP over the standardised hand-crafted ECG features (input dropout first)."""

    def __init__(self, *, n_inputs: int, hidden: int, input_dropout: float, dropout: float) -> None:
        super().__init__(
            nn.Dropout(input_dropout),
            nn.Linear(n_inputs, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2),
            nn.ReLU(),
        )
        self.out_dim = hidden // 2


class MultimodalNet(nn.Module):
    """ECG CNN-LSTM + metadata MLP, fused by attention (or concatenation), multi-label output.

    ``forward(ecg (B, leads, T), meta (B, 11), feats (B, n_features))`` returns a
    :class:`MultimodalOutput`. A modality the fusion mode does not use is ignored (pass any
    tensor of the right width, or ``feats=None``); the modes with the features branch need
    ``config.n_features > 0`` and ``feats``.
    """

    def __init__(self, config: MultimodalConfig | None = None) -> None:
        super().__init__()
        cfg = config or MultimodalConfig()
        if cfg.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {cfg.fusion!r}; valid: {sorted(FUSIONS)}")
        if cfg.age_head and not FUSIONS[cfg.fusion][0]:
            raise ValueError("age_head needs the ECG branch (the age is predicted from the ECG)")
        self.config = cfg
        use_ecg, use_meta, use_feat = FUSIONS[cfg.fusion]
        if use_feat and cfg.n_features < 1:
            raise ValueError(
                f"fusion {cfg.fusion!r} needs n_features > 0 (the ECG-features inputs)"
            )
        d = cfg.embed_dim
        self.ecg = (
            EcgBranch(
                n_leads=cfg.n_leads,
                channels=cfg.channels,
                lstm_hidden=cfg.lstm_hidden,
                dropout=cfg.dropout,
                branches=cfg.branches,
            )
            if use_ecg
            else None
        )
        self.meta = MetaBranch(hidden=cfg.meta_hidden, dropout=cfg.dropout) if use_meta else None
        self.ecg_proj = (
            nn.Sequential(nn.Linear(self.ecg.out_dim, d), nn.ReLU()) if self.ecg else None
        )
        self.meta_proj = (
            nn.Sequential(nn.Linear(self.meta.out_dim, d), nn.ReLU()) if self.meta else None
        )
        self.feat = (
            FeatureBranch(
                n_inputs=cfg.n_features,
                hidden=cfg.feat_hidden,
                input_dropout=cfg.feat_input_dropout,
                dropout=cfg.feat_dropout,
            )
            if use_feat
            else None
        )
        self.feat_proj = (
            nn.Sequential(nn.Linear(self.feat.out_dim, d), nn.ReLU()) if self.feat else None
        )
        self.n_modalities = 3 if use_feat else 2
        if cfg.fusion in ATTENTION_FUSIONS:
            self.mod_att = nn.Linear(d, 16)
            self.mod_vec = nn.Linear(16, 1, bias=False)
        head_in = 2 * d if cfg.fusion == "concat" else d
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(head_in, cfg.n_classes))
        self.age_out = nn.Linear(self.ecg.out_dim, 1) if cfg.age_head and self.ecg else None
        n_used = int(use_ecg) + int(use_meta) + int(use_feat)
        self.aux = (
            nn.ModuleList(nn.Linear(d, cfg.n_classes) for _ in range(n_used))
            if cfg.aux_heads
            else None
        )

    def forward(self, ecg: Tensor, meta: Tensor, feats: Tensor | None = None) -> MultimodalOutput:
        fusion = self.config.fusion
        ecg_emb = None
        cfg = self.config
        if self.ecg is not None and (ecg.dim() != 3 or ecg.shape[1] != cfg.n_leads):
            raise ValueError(
                f"ecg must be (batch, {cfg.n_leads} leads, samples) at {cfg.fs_hz:g} Hz, got "
                f"{tuple(ecg.shape)}; missing leads are not zero-filled (see "
                "heartline.data.ptbxl.select_leads)"
            )
        if self.meta is not None and (meta.dim() != 2 or meta.shape[1] != N_META_INPUTS):
            raise ValueError(
                f"meta must be (batch, {N_META_INPUTS}) inputs (MetaScaler.transform), got "
                f"{tuple(meta.shape)}"
            )
        if self.feat is not None and (
            feats is None or feats.dim() != 2 or feats.shape[1] != cfg.n_features
        ):
            raise ValueError(
                f"fusion {fusion!r} needs feats (batch, {cfg.n_features}) "
                "(FeatureScaler.transform of record_features), got "
                f"{None if feats is None else tuple(feats.shape)}"
            )
        # modality slots in the weights: 0 ECG, 1 metadata, 2 ECG features
        parts: list[Tensor] = []
        slots: list[int] = []
        if self.ecg is not None and self.ecg_proj is not None:
            ecg_emb, _ = self.ecg(ecg)
            parts.append(self.ecg_proj(ecg_emb))
            slots.append(0)
        if self.meta is not None and self.meta_proj is not None:
            parts.append(self.meta_proj(self.meta(meta)))
            slots.append(1)
        if self.feat is not None and self.feat_proj is not None and feats is not None:
            parts.append(self.feat_proj(self.feat(feats)))
            slots.append(2)
        b = parts[0].shape[0]
        weights = parts[0].new_zeros((b, self.n_modalities))
        if fusion in ATTENTION_FUSIONS:
            stack = torch.stack(parts, dim=1)  # (B, modalities used, d)
            att = torch.softmax(self.mod_vec(torch.tanh(self.mod_att(stack))).squeeze(2), dim=1)
            fused = (att.unsqueeze(2) * stack).sum(dim=1)
            weights = weights.index_copy(1, torch.tensor(slots), att)
        elif fusion == "concat":
            fused = torch.cat(parts, dim=1)
            weights = parts[0].new_full((b, 2), 0.5)
        else:
            fused = parts[0]
            weights[:, slots[0]] = 1.0
        age = (
            self.age_out(ecg_emb).squeeze(1)
            if self.age_out is not None and ecg_emb is not None
            else None
        )
        aux = (
            torch.stack([h(p) for h, p in zip(self.aux, parts, strict=True)], dim=1)
            if self.aux is not None
            else None
        )
        return MultimodalOutput(self.head(fused), weights, age, aux)

    @torch.no_grad()
    def modality_weights(self, ecg: Tensor, meta: Tensor, feats: Tensor | None = None) -> Tensor:
        """Attention weight of the (ECG, metadata[, ECG features]) modalities per record."""
        return self.forward(ecg, meta, feats).modality_weights


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, 7, stride=stride, padding=3, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(),
            nn.Conv1d(c_out, c_out, 7, padding=3, bias=False),
            nn.BatchNorm1d(c_out),
        )
        self.skip = (
            nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
            )
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNet1d(nn.Module):
    """A small 1-D ResNet on the ECG only (baseline; the ``resnet1d_wang`` family of
    Strodthoff et al. 2021 scaled down). ``forward(ecg, meta)`` ignores ``meta``."""

    def __init__(self, *, n_leads: int = 12, n_classes: int = 5, width: int = 24) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(n_leads, width, 7, padding=3, bias=False), nn.BatchNorm1d(width), nn.ReLU()
        )
        self.blocks = nn.Sequential(
            _ResBlock(width, width, 2),
            _ResBlock(width, 2 * width, 2),
            _ResBlock(2 * width, 2 * width, 2),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(4 * width, n_classes))

    def forward(self, ecg: Tensor, meta: Tensor, feats: Tensor | None = None) -> MultimodalOutput:
        h = self.blocks(self.stem(ecg))
        emb = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        w = emb.new_zeros((emb.shape[0], 2))
        w[:, 0] = 1.0
        return MultimodalOutput(self.head(emb), w, None)

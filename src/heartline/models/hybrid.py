"""The hybrid CNN-LSTM beat classifier.

Architecture (per beat, then over the beat sequence):

1. **Per-beat, per-lead CNN encoder** (weights shared by the leads). A stem convolution (5
   samples) with batch norm, ReLU and max pooling (2), then three parallel *dilated* branches
   whose receptive fields match the waves of the beat, each two Conv1d-BatchNorm-ReLU layers
   (kernel 5). The window is 128 samples for 0.7 s (0.25 s before to 0.45 s after the R-peak),
   i.e. 5.47 ms per sample; with the default branches the receptive fields are

   ============  =========  ===================  =====================================
   branch        dilations  receptive field      wave it is sized for
   ============  =========  ===================  =====================================
   ``qrs``       1, 1       22 samples = 120 ms  QRS complex (80-120 ms)
   ``p``         1, 2       30 samples = 164 ms  P wave (80-110 ms) and its baseline
   ``t``         2, 4       54 samples = 295 ms  T wave (160-250 ms)
   ============  =========  ===================  =====================================

   (see :func:`receptive_fields_ms`). The branch outputs are concatenated, max pooled (2),
   passed through dropout and globally pooled (average and maximum).
2. **Attention fusion across leads**: a score per lead and beat, ``w_l^T tanh(W f_l)`` with a
   lead-specific vector ``w_l``, softmax over the leads, weighted sum of the lead features
   (Bahdanau-style additive attention; the weights are returned by :meth:`HybridNet.lead_weights`).
3. **RR features** are concatenated after global pooling, then projected (dense, ReLU, dropout).
4. **Causal LSTM** over the current and previous ``context_k`` beats (oldest first); each beat is
   encoded once per batch (:meth:`~heartline.models.deep.BeatNet.forward_context`). The output at
   the current beat, concatenated with the current beat's own features, goes through a dense
   layer to the class logits (softmax at inference).

Optional parts, each switched by a parameter:

* ``early_alarm``: a second head on the same state predicting the NEXT beat's class (trained on
  the next beat's label, weight ``early_alarm_weight``), for alarms one beat ahead;
* ``consistency_weight``: temporal-consistency loss, the squared difference between the class
  probabilities of consecutive beats that carry the same label (prediction at the previous
  step of the same LSTM pass), so that runs of one rhythm are labelled steadily while ectopic
  beats are free to differ;
* ``morphology_weight``: a penalty on the QRS-branch kernels, ``"symmetry"`` (kernel minus its
  mirror image) and/or ``"tv"`` (total variation), favouring smooth, symmetric QRS detectors;
* ``template_features``: the input also holds the patient-adaptive template columns of
  :mod:`heartline.signal.templates` after the RR columns (beats built with
  ``build_beat_set(..., template_features=True)``); they get their own fixed encoding
  (:func:`encode_template_features`) and join the RR features.

The design follows the CNN-LSTM ECG classifiers of Oh et al. (2018) and Niu et al. (2020), the
multi-scale dilated convolutions of Yu & Koltun (2016) and the inter-beat LSTM context of
Mousavi & Afghah (2019).

References
----------
Oh SL, Ng EYK, Tan RS, Acharya UR. Automated diagnosis of arrhythmia using combination of CNN and
LSTM techniques with variable length heart beats. Comput Biol Med 102:278-287 (2018).
Niu J, Tang Y, Sun Z, Zhang W. Inter-patient ECG classification with symbolic representations and
multi-perspective convolutional neural networks. IEEE J Biomed Health Inform 24(5):1321-1332 (2020).
Yu F, Koltun V. Multi-scale context aggregation by dilated convolutions. ICLR (2016).
Mousavi S, Afghah F. Inter- and intra-patient ECG heartbeat classification for arrhythmia detection:
a sequence to sequence deep learning approach. ICASSP (2019).
Bahdanau D, Cho K, Bengio Y. Neural machine translation by jointly learning to align and
translate. ICLR (2015).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from heartline.models.deep import N_CLASSES, BeatNet, NetOutput
from heartline.signal.segmentation import RR_FEATURE_NAMES
from heartline.signal.templates import TEMPLATE_LEAD_FEATURES, template_feature_names

__all__ = [
    "DEFAULT_BRANCHES",
    "N_RR_COLUMNS",
    "RR_MODES",
    "HybridNet",
    "encode_template_features",
    "log_rr_ratios",
    "n_template_columns",
    "receptive_fields_ms",
]

#: Branch name -> dilations of its two kernel-5 convolutions (after the stem and 2x pooling).
DEFAULT_BRANCHES: dict[str, tuple[int, ...]] = {"qrs": (1, 1), "p": (1, 2), "t": (2, 4)}
STEM_KERNEL = 5
BRANCH_KERNEL = 5
MORPHOLOGY_MODES = ("symmetry", "tv", "both")
#: How the RR features enter the network: as computed, or as log-ratios (see :func:`log_rr_ratios`).
RR_MODES = ("raw", "log_ratios")
#: Number of features :func:`log_rr_ratios` returns.
N_LOG_RR = 7
#: The RR columns before the rhythm-irregularity ones (models trained before those existed
#: take exactly these; see :data:`heartline.signal.segmentation.RR_FEATURE_NAMES`).
N_RAW_RR = 8
#: The RR columns (:data:`heartline.signal.segmentation.RR_FEATURE_NAMES`); the template columns of a
#: ``template_features`` network follow them.
N_RR_COLUMNS = len(RR_FEATURE_NAMES)
#: Bound of the template log-ratios and of ``log1p`` of the normalised RMS differences.
TEMPLATE_CLAMP = 3.0
# encode_template_features relies on the per-lead column order: 3 correlations, 3 normalised
# RMS differences, 3 log-ratios
assert len(TEMPLATE_LEAD_FEATURES) == 9
assert [n.split("_")[1] for n in TEMPLATE_LEAD_FEATURES[:6]] == ["corr"] * 3 + ["nrmsd"] * 3
assert all(n.endswith("_logratio") for n in TEMPLATE_LEAD_FEATURES[6:])


def n_template_columns(n_leads: int) -> int:
    """Number of template columns for ``n_leads`` leads (:func:`~heartline.signal.templates.template_feature_names`).

    >>> n_template_columns(2)
    19
    """
    return len(template_feature_names(n_leads))


def encode_template_features(tpl: Tensor, n_leads: int) -> Tensor:
    """Fixed encoding of the template columns (:mod:`heartline.signal.templates`), same width.

    Chosen a priori from what the features measure, not tuned on any result: per lead, the
    three correlations stay as they are (clamped to [-1, 1]); the three RMS differences over the
    template RMS (>= 0, heavy right tail: an ectopic beat can differ by several template RMS)
    become ``log1p`` of themselves, capped at :data:`TEMPLATE_CLAMP` (a difference of 19
    template RMS); the three log-ratios of QRS width, energy and amplitude (already in log
    units) are clamped to +-:data:`TEMPLATE_CLAMP` (a factor of 20); ``tpl_fill`` is clamped to
    [0, 1]. Every output is then of order 1, like the log-RR ratios, with no scaler fitted on
    data (so nothing to carry to the device, and the same numbers for every patient).

    Parameters
    ----------
    tpl : torch.Tensor
        ``(U, 9 * n_leads + 1)`` template columns in the order of
        :func:`~heartline.signal.templates.template_feature_names`.
    n_leads : int
        Window channels.

    >>> import torch
    >>> row = torch.tensor([[0.5, 2.0, -2.0, 0.0, 1.0, 99.0, 0.2, -7.0, 7.0, 1.5]])
    >>> [round(v, 3) for v in encode_template_features(row, 1)[0].tolist()]
    [0.5, 1.0, -1.0, 0.0, 0.693, 3.0, 0.2, -3.0, 3.0, 1.0]
    """
    n_feat = len(TEMPLATE_LEAD_FEATURES)
    if tpl.shape[1] != n_feat * n_leads + 1:
        raise ValueError(
            f"expected {n_feat * n_leads + 1} template columns for {n_leads} lead(s), "
            f"got {tpl.shape[1]}"
        )
    lead = tpl[:, :-1].reshape(tpl.shape[0], n_leads, n_feat)
    corr = lead[..., 0:3].clamp(-1.0, 1.0)
    nrmsd = torch.log1p(lead[..., 3:6].clamp_min(0.0)).clamp_max(TEMPLATE_CLAMP)
    logratio = lead[..., 6:9].clamp(-TEMPLATE_CLAMP, TEMPLATE_CLAMP)
    per_lead = torch.cat([corr, nrmsd, logratio], dim=2).reshape(tpl.shape[0], n_feat * n_leads)
    return torch.cat([per_lead, tpl[:, -1:].clamp(0.0, 1.0)], dim=1)


def log_rr_ratios(rr: Tensor) -> Tensor:
    """Scale-free RR features from :data:`heartline.signal.segmentation.RR_FEATURE_NAMES` columns.

    From the previous, next, local (last 10) and running-average RR (columns 0-3, seconds):
    ``log(prev/local)``, ``log(next/local)``, ``log(prev/next)``, ``log(prev/avg)``,
    ``log(next/avg)``, ``log(local/avg)`` and ``log(avg)``. Prematurity relative to the *local*
    rhythm (prev/local) and the compensatory pause (next/local) are what marks an ectopic beat
    in any patient (de Chazal et al. 2004; Lin & Yang 2014), and a ratio is hard for a ReLU
    layer to form from raw seconds. Intervals are clamped to >= 10 ms. When ``rr`` also holds
    the rhythm-irregularity columns (:func:`heartline.signal.segmentation.rhythm_features`, columns 8
    onwards, already in log units) they are appended, the z-score scaled by 0.2, all clamped to
    +-3; a model trained on the first 8 columns only ignores them.

    >>> import torch
    >>> x = torch.tensor([[0.5, 1.0, 0.8, 0.8, 0.625, 1.25, 1.0, 0.5]])
    >>> [round(v, 3) for v in log_rr_ratios(x).exp()[0].tolist()]
    [0.625, 1.25, 0.5, 0.625, 1.25, 1.0, 0.8]
    """
    prev, nxt, local, avg = (rr[:, i].clamp_min(0.01) for i in range(4))
    ratios = torch.log(
        torch.stack(
            [prev / local, nxt / local, prev / nxt, prev / avg, nxt / avg, local / avg, avg], 1
        )
    )
    if rr.shape[1] <= N_RAW_RR:
        return ratios
    # rhythm columns (already log-domain, see heartline.signal.segmentation.rhythm_features); the
    # z-score is bounded and scaled to the range of the others
    extra = rr[:, N_RAW_RR:]
    extra = torch.cat([extra[:, :-1], 0.2 * extra[:, -1:]], 1).clamp(-3.0, 3.0)
    return torch.cat([ratios, extra], 1)


def n_log_rr(n_rr: int) -> int:
    """Width of :func:`log_rr_ratios` for ``n_rr`` input columns."""
    return N_LOG_RR + max(0, int(n_rr) - N_RAW_RR)


def receptive_fields_ms(
    branches: dict[str, tuple[int, ...]] | None = None,
    *,
    window_len: int = 128,
    window_s: float = 0.7,
) -> dict[str, float]:
    """Receptive field (ms) of each encoder branch, for a window of ``window_len`` samples.

    Stem conv (kernel 5) -> max pool 2 -> branch convs (kernel 5, given dilations, at stride 2).

    >>> {k: round(v) for k, v in receptive_fields_ms().items()}
    {'qrs': 120, 'p': 164, 't': 295}
    """
    branches = DEFAULT_BRANCHES if branches is None else branches
    ms_per_sample = 1000.0 * window_s / window_len
    out = {}
    for name, dilations in branches.items():
        rf = STEM_KERNEL + (2 - 1)  # stem, then pooling by 2 (jump becomes 2)
        rf += sum((BRANCH_KERNEL - 1) * d * 2 for d in dilations)
        out[name] = rf * ms_per_sample
    return out


class _Branch(nn.Sequential):
    def __init__(self, channels: int, dilations: tuple[int, ...]) -> None:
        layers: list[nn.Module] = []
        for d in dilations:
            layers += [
                nn.Conv1d(
                    channels, channels, BRANCH_KERNEL, padding=d * (BRANCH_KERNEL // 2), dilation=d
                ),
                nn.BatchNorm1d(channels),
                nn.ReLU(),
            ]
        super().__init__(*layers)


class HybridNet(BeatNet):
    """Multi-scale dilated CNN per beat + lead attention + RR + causal LSTM over beats.

    Parameters
    ----------
    n_leads, window_len, n_rr, n_classes : int
        Input shapes (set from the data).
    context_k : int
        Previous beats the LSTM sees (0: the current beat only).
    channels : int
        Filters of the stem and of each branch.
    branches : dict of str to tuple of int, optional
        Branch name -> dilations (default :data:`DEFAULT_BRANCHES`); must contain ``"qrs"`` when
        ``morphology_weight > 0``.
    feature_dim : int
        Size of the per-beat feature (CNN + RR) fed to the LSTM.
    lstm_hidden : int
        LSTM hidden size.
    dropout : float
        Dropout after pooling, after the projection and in the head.
    early_alarm : bool
        Add the next-beat head (``forward`` then returns ``(logits, next_logits)``).
    early_alarm_weight : float
        Weight of the next-beat cross-entropy.
    consistency_weight : float
        Weight of the temporal-consistency loss (0: off).
    morphology_weight : float
        Weight of the QRS-kernel penalty (0: off).
    morphology : {"symmetry", "tv", "both"}
        Which QRS-kernel penalty.
    fusion : {"sum", "concat", "mean"}
        How the attention-weighted lead features are combined: summed (one lead-agnostic vector)
        or concatenated (lead identity kept, ``n_leads`` times larger); ``"mean"`` drops the
        attention and averages the leads with equal weights (the ablation of attention fusion).
    contrast : bool
        Also feed the head the difference between the current beat's features and the mean
        features of its ``context_k`` previous beats (how unlike the patient's recent beats it is).
    rr_mode : {"raw", "log_ratios"}
        RR features as given, or turned into scale-free log-ratios (:func:`log_rr_ratios`) that
        also bypass the projection to reach the LSTM and the head directly.
    rhythm_rr : bool
        Use the rhythm-irregularity RR columns (8 onwards, :func:`heartline.signal.segmentation.rhythm_features`)
        when the data has them; ``False`` keeps only the first 8 (the ablation, and the
        behaviour of models trained before those columns existed).
    template_features : bool
        ``rr`` holds the :data:`N_RR_COLUMNS` RR columns followed by the
        ``9 * n_leads + 1`` template columns of :mod:`heartline.signal.templates` (so ``n_rr``
        must be their sum; build the beats with ``build_beat_set(..., template_features=True)``).
        The template columns are encoded by :func:`encode_template_features` and appended to the
        (encoded) RR features, on both ``rr_mode`` paths. ``False`` (default): every column of
        ``rr`` is an RR feature, as before this option existed.
    """

    def __init__(
        self,
        *,
        n_leads: int,
        window_len: int,
        n_rr: int,
        n_classes: int = N_CLASSES,
        context_k: int = 8,
        channels: int = 16,
        branches: dict[str, tuple[int, ...]] | None = None,
        feature_dim: int = 32,
        lstm_hidden: int = 32,
        dropout: float = 0.3,
        early_alarm: bool = False,
        early_alarm_weight: float = 0.3,
        consistency_weight: float = 0.0,
        morphology_weight: float = 0.0,
        morphology: str = "both",
        contrast: bool = False,
        fusion: str = "sum",
        rr_mode: str = "raw",
        rhythm_rr: bool = True,
        template_features: bool = False,
    ) -> None:
        super().__init__(n_leads=n_leads, window_len=window_len, n_rr=n_rr, n_classes=n_classes)
        self.template_features = bool(template_features)
        self.n_template = n_template_columns(n_leads) if self.template_features else 0
        if self.template_features and n_rr != N_RR_COLUMNS + self.n_template:
            raise ValueError(
                f"template_features=True needs n_rr = {N_RR_COLUMNS} RR + {self.n_template} "
                f"template columns = {N_RR_COLUMNS + self.n_template} for {n_leads} lead(s), got "
                f"{n_rr}: build the beats with build_beat_set(..., template_features=True)"
            )
        n_rr_base = n_rr - self.n_template  # the RR columns proper
        self.rhythm_rr = bool(rhythm_rr)
        self.n_rr_used = n_rr_base if self.rhythm_rr else min(n_rr_base, N_RAW_RR)
        if context_k < 0:
            raise ValueError(f"context_k must be >= 0, got {context_k}")
        if fusion not in ("sum", "concat", "mean"):
            raise ValueError(f"fusion must be 'sum', 'concat' or 'mean', got {fusion!r}")
        self.fusion = fusion
        if rr_mode not in RR_MODES:
            raise ValueError(f"rr_mode must be one of {list(RR_MODES)}, got {rr_mode!r}")
        if rr_mode == "log_ratios" and n_rr < 4:
            raise ValueError(
                "rr_mode='log_ratios' needs the previous/next/local/average RR columns"
            )
        self.rr_mode = rr_mode
        if morphology not in MORPHOLOGY_MODES:
            raise ValueError(
                f"morphology must be one of {list(MORPHOLOGY_MODES)}, got {morphology!r}"
            )
        branches = dict(DEFAULT_BRANCHES if branches is None else branches)
        if morphology_weight > 0 and "qrs" not in branches:
            raise ValueError("morphology_weight > 0 needs a 'qrs' branch")
        if min(early_alarm_weight, consistency_weight, morphology_weight) < 0:
            raise ValueError("loss weights must be >= 0")
        self.context_k = context_k
        self.has_next_head = early_alarm
        self.early_alarm_weight = early_alarm_weight
        self.consistency_weight = consistency_weight
        self.morphology_weight = morphology_weight
        self.morphology = morphology
        self.branch_dilations = {k: tuple(v) for k, v in branches.items()}

        self.stem = nn.Sequential(
            nn.Conv1d(1, channels, STEM_KERNEL, padding=STEM_KERNEL // 2),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.MaxPool1d(2),
        )
        self.branches = nn.ModuleDict(
            {k: _Branch(channels, d) for k, d in self.branch_dilations.items()}
        )
        self.pool = nn.Sequential(nn.MaxPool1d(2), nn.Dropout(dropout))
        lead_dim = 2 * channels * len(self.branches)  # average + max pooling of every branch
        att_dim = 16
        self.att_proj = nn.Linear(lead_dim, att_dim)
        self.att_vec = nn.Parameter(torch.empty(n_leads, att_dim))
        self.reset_attention()
        fused_dim = lead_dim * (n_leads if fusion == "concat" else 1)
        rr_dim = n_log_rr(self.n_rr_used) if rr_mode == "log_ratios" else self.n_rr_used
        rr_dim += self.n_template
        self.proj = nn.Sequential(
            nn.Linear(fused_dim + rr_dim, feature_dim), nn.ReLU(), nn.Dropout(dropout)
        )
        # log_ratios: the RR features also bypass the projection, straight to the LSTM and head
        beat_dim = feature_dim + (rr_dim if rr_mode == "log_ratios" else 0)
        self.lstm = nn.LSTM(beat_dim, lstm_hidden, batch_first=True)
        self.contrast = bool(contrast) and context_k > 0
        head_in = lstm_hidden + beat_dim * (2 if self.contrast else 1)
        self.head = nn.Sequential(
            nn.Linear(head_in, feature_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(feature_dim, n_classes),
        )
        self.next_head = (
            nn.Sequential(
                nn.Linear(head_in, feature_dim),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(feature_dim, n_classes),
            )
            if early_alarm
            else None
        )

    # -- per-beat encoder -------------------------------------------------------------------

    def reset_attention(self) -> None:
        """Draw the lead-attention vector anew from the global torch RNG (N(0, 0.1^2)).

        ``reset_parameters`` of the layers does not cover it, so callers that re-initialise a
        network (the cross-fitted ensemble's members) call this too.
        """
        with torch.no_grad():
            self.att_vec.copy_(torch.randn(self.att_vec.shape) * 0.1)

    def _lead_features(self, windows: Tensor) -> Tensor:
        """``(U, leads, L)`` -> per-lead features ``(U, leads, lead_dim)``."""
        u, c, n = windows.shape
        x = self.stem(windows.reshape(u * c, 1, n))
        x = torch.cat([branch(x) for branch in self.branches.values()], dim=1)
        x = self.pool(x)
        x = torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
        return x.reshape(u, c, -1)

    def _attention(self, feats: Tensor) -> Tensor:
        """Lead weights ``(U, leads)`` (softmax over leads) from per-lead features."""
        scores = (torch.tanh(self.att_proj(feats)) * self.att_vec.unsqueeze(0)).sum(dim=2)
        return torch.softmax(scores, dim=1)

    def encode(self, windows: Tensor, rr: Tensor) -> Tensor:
        """Per-beat features ``(U, feature_dim)`` from ``windows (U, leads, L)`` and ``rr (U, n_rr)``."""
        feats = self._lead_features(windows)
        if self.fusion == "mean":  # ablation: no attention, every lead weighs the same
            weights = feats.new_full(feats.shape[:2], 1.0 / feats.shape[1])
        else:
            weights = self._attention(feats)
        weighted = weights.unsqueeze(2) * feats
        fused = weighted.flatten(1) if self.fusion == "concat" else weighted.sum(dim=1)
        tpl = None
        if self.template_features:
            tpl = encode_template_features(rr[:, N_RR_COLUMNS:], self.n_leads)
            rr = rr[:, :N_RR_COLUMNS]
        if self.n_rr_used < rr.shape[1]:
            rr = rr[:, : self.n_rr_used]
        if self.rr_mode == "log_ratios":
            rr = log_rr_ratios(rr)
        if tpl is not None:
            rr = torch.cat([rr, tpl], dim=1)
        if self.rr_mode == "log_ratios":
            return torch.cat([self.proj(torch.cat([fused, rr], dim=1)), rr], dim=1)
        return self.proj(torch.cat([fused, rr], dim=1))

    @torch.no_grad()
    def lead_weights(self, windows: Tensor) -> Tensor:
        """Attention weight of each lead for each beat, ``(U, leads)``; rows sum to 1."""
        return self._attention(self._lead_features(windows))

    # -- sequence model ---------------------------------------------------------------------
    def forward_context(self, windows: Tensor, rr: Tensor, ctx: Tensor) -> NetOutput:
        # Each unique beat is encoded once, then gathered into (B, K+1, feature_dim) sequences.
        return self._sequence(self.encode(windows, rr)[ctx])

    def forward_sequence(self, windows: Tensor, rr: Tensor) -> NetOutput:
        b, t, c, n = windows.shape
        feats = self.encode(windows.reshape(b * t, c, n), rr.reshape(b * t, rr.shape[2]))
        return self._sequence(feats.reshape(b, t, feats.shape[1]))

    def _sequence(self, seq_in: Tensor) -> NetOutput:
        """LSTM over ``(B, K+1, feature_dim)``, oldest beat first: causal by construction."""
        seq, _ = self.lstm(seq_in)
        cur = self._head_input(seq, seq_in, seq_in.shape[1] - 1)
        logits = self.head(cur)
        prev_logits = None
        if self.training and self.consistency_weight > 0 and seq_in.shape[1] > 2:
            prev_logits = self.head(self._head_input(seq, seq_in, seq_in.shape[1] - 2))
        next_logits = self.next_head(cur) if self.next_head is not None else None
        return NetOutput(logits, prev_logits, next_logits)

    def _head_input(self, seq: Tensor, seq_in: Tensor, i: int) -> Tensor:
        """Head input at position ``i``: LSTM state, the beat's features (and its contrast)."""
        parts = [seq[:, i], seq_in[:, i]]
        if self.contrast:
            parts.append(seq_in[:, i] - seq_in[:, :i].mean(dim=1))
        return torch.cat(parts, dim=1)

    # -- optional losses --------------------------------------------------------------------
    def morphology_penalty(self) -> Tensor:
        """Symmetry and/or total-variation penalty of the QRS-branch kernels (mean over kernels)."""
        terms = []
        for module in self.branches["qrs"].modules():
            if isinstance(module, nn.Conv1d):
                w = module.weight
                if self.morphology in ("symmetry", "both"):
                    terms.append((w - torch.flip(w, dims=[2])).pow(2).mean())
                if self.morphology in ("tv", "both"):
                    terms.append((w[..., 1:] - w[..., :-1]).abs().mean())
        return torch.stack(terms).sum()

    def auxiliary_loss(self, out: NetOutput, y_ctx: Tensor, y_next: Tensor) -> Tensor:
        loss = out.logits.new_zeros(())
        if (
            out.next_logits is not None
            and self.early_alarm_weight > 0
            and bool((y_next >= 0).any())
        ):
            loss = loss + self.early_alarm_weight * F.cross_entropy(
                out.next_logits, y_next, ignore_index=-1
            )
        if out.prev_logits is not None and y_ctx.shape[1] > 1:
            same = (y_ctx[:, -1] >= 0) & (y_ctx[:, -1] == y_ctx[:, -2])
            if bool(same.any()):
                diff = torch.softmax(out.logits, 1) - torch.softmax(out.prev_logits, 1)
                loss = loss + self.consistency_weight * diff[same].pow(2).sum(dim=1).mean()
        if self.morphology_weight > 0:
            loss = loss + self.morphology_weight * self.morphology_penalty()
        return loss

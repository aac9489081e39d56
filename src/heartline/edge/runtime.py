"""Run an exported beat classifier with ONNX Runtime (numpy + onnxruntime only, no torch).

This is what the live service and devices use: the same ``.onnx`` artefact that
:func:`heartline.edge.onnx_export.export_onnx` writes.

When the split form of a hybrid (:func:`heartline.edge.onnx_export.export_onnx_split`:
``<stem>.encoder.onnx`` and ``<stem>.sequence.onnx``) lies next to the model and was made from it
(the SHA-256 of the full file in their metadata matches), :class:`OnnxBeatClassifier` loads it too
and offers :meth:`~OnnxBeatClassifier.encode` and
:meth:`~OnnxBeatClassifier.predict_proba_features`: a stream then encodes each beat once and
reuses its features as the context of the next ``context_k`` beats
(:func:`heartline.pipeline.beat_pipeline.classify_batches`) instead of re-encoding
``context_k + 1`` beats per beat. Without the split files everything runs on the full graph.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from heartline.data.beat_set import BeatSet
from heartline.signal.segmentation import model_rr_columns

__all__ = ["OnnxBeatClassifier", "file_sha256", "split_paths"]

log = logging.getLogger(__name__)

INPUT_NAMES = ("windows", "rr")
FEATURE_NAME = "features"


def split_paths(full_path: str | Path) -> tuple[Path, Path]:
    """``<stem>.encoder.onnx`` and ``<stem>.sequence.onnx`` beside ``full_path`` (the names
    :func:`heartline.edge.onnx_export.export_onnx_split` writes).

    >>> [p.name for p in split_paths("models/hybrid.onnx")]
    ['hybrid.encoder.onnx', 'hybrid.sequence.onnx']
    """
    full_path = Path(full_path)
    stem = full_path.name.removesuffix(".onnx")
    return (
        full_path.with_name(f"{stem}.encoder.onnx"),
        full_path.with_name(f"{stem}.sequence.onnx"),
    )


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (ties the split files to their full model)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _session(path: Path, num_threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxBeatClassifier:
    """Beat classifier backed by an ONNX model (inputs ``windows`` and ``rr``).

    Parameters
    ----------
    path : path
        The ``.onnx`` file.
    num_threads : int
        ONNX Runtime intra-op threads.
    split : bool, optional
        Load the split form (encoder + sequence graph, :func:`split_paths`): ``None`` (default)
        when both files are present and belong to this model (a stale or broken pair is logged
        and ignored), ``True`` to require it (``ValueError`` / ``FileNotFoundError`` otherwise),
        ``False`` to run the full graph only.

    Attributes
    ----------
    context_k : int
        Previous beats the model looks at (from the input shape).
    n_leads, window_len, n_rr : int
        Expected input shape per beat.
    classes : tuple of str
        Class of each probability column.
    has_next_head : bool
        Whether the model also predicts the next beat's class (early alarm).
    has_split : bool
        Whether the split form is loaded (:meth:`encode`, :meth:`predict_proba_features`).
    feature_dim : int or None
        Width of the per-beat features of the split form.
    """

    def __init__(
        self, path: str | Path, *, num_threads: int = 1, split: bool | None = None
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"path: no ONNX model at {self.path}")
        self.session = _session(self.path, num_threads)
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        if set(inputs) != set(INPUT_NAMES):
            raise ValueError(
                f"path: model inputs are {sorted(inputs)}, expected {list(INPUT_NAMES)}"
            )
        _, t, c, n = inputs["windows"]
        self.context_k = int(t) - 1
        self.n_leads, self.window_len = int(c), int(n)
        self.n_rr = int(inputs["rr"][2])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.has_next_head = "next_probabilities" in self.output_names
        meta = self.session.get_modelmeta().custom_metadata_map
        classes = meta.get("heartline.classes")
        self.classes: tuple[str, ...] = tuple(classes.split(",")) if classes else ()
        self.name = meta.get("heartline.model", self.path.stem)
        self.encoder_session = self.sequence_session = None
        self.feature_dim: int | None = None
        if split is not False:
            try:
                self._load_split(num_threads)
            except (FileNotFoundError, ValueError) as exc:
                if split:
                    raise
                if not isinstance(exc, FileNotFoundError):
                    log.warning("%s: split form not used (%s); running the full graph", path, exc)
        self.has_split = self.encoder_session is not None

    def _load_split(self, num_threads: int) -> None:
        """Load and check the split pair beside the full model (see :func:`split_paths`)."""
        enc_path, seq_path = split_paths(self.path)
        for p in (enc_path, seq_path):
            if not p.is_file():
                raise FileNotFoundError(f"path: no split file {p}")
        if self.context_k < 1:
            raise ValueError("split form of a model with context_k == 0")
        digest = file_sha256(self.path)
        enc, seq = _session(enc_path, num_threads), _session(seq_path, num_threads)
        for sess, p in ((enc, enc_path), (seq, seq_path)):
            made_for = sess.get_modelmeta().custom_metadata_map.get("heartline.full_sha256")
            if made_for != digest:
                raise ValueError(f"{p.name} was not exported from this {self.path.name}")
        e_in = {i.name: i.shape for i in enc.get_inputs()}
        if set(e_in) != set(INPUT_NAMES) or [o.name for o in enc.get_outputs()] != [FEATURE_NAME]:
            raise ValueError(f"{enc_path.name}: unexpected inputs/outputs")
        if list(e_in["windows"][1:]) != [self.n_leads, self.window_len] or e_in["rr"][1] != (
            self.n_rr
        ):
            raise ValueError(f"{enc_path.name}: input shapes do not match {self.path.name}")
        s_in = seq.get_inputs()
        if [i.name for i in s_in] != [FEATURE_NAME] or [
            o.name for o in seq.get_outputs()
        ] != self.output_names:
            raise ValueError(f"{seq_path.name}: unexpected inputs/outputs")
        _, t, d = s_in[0].shape
        d_enc = enc.get_outputs()[0].shape[1]
        if t != self.context_k + 1 or d != d_enc:
            raise ValueError(f"{seq_path.name}: expects ({t}, {d}) features, encoder gives {d_enc}")
        self.encoder_session, self.sequence_session = enc, seq
        self.feature_dim = int(d)

    def encode(self, windows: np.ndarray, rr: np.ndarray) -> np.ndarray:
        """Per-beat features ``(n, feature_dim)`` of the split encoder.

        Parameters
        ----------
        windows : numpy.ndarray
            ``(n, n_leads, window_len)``, one beat per row.
        rr : numpy.ndarray
            ``(n, n_rr)``.
        """
        if self.encoder_session is None:
            raise RuntimeError(f"{self.path.name}: no split form loaded")
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        rr = np.ascontiguousarray(rr, dtype=np.float32)
        if windows.ndim != 3 or windows.shape[1:] != (self.n_leads, self.window_len):
            raise ValueError(
                f"windows must have shape (n, {self.n_leads}, {self.window_len}), got {windows.shape}"
            )
        if rr.shape != (windows.shape[0], self.n_rr):
            raise ValueError(
                f"rr must have shape ({windows.shape[0]}, {self.n_rr}), got {rr.shape}"
            )
        if not windows.shape[0]:
            return np.zeros((0, self.feature_dim or 0), np.float32)
        return self.encoder_session.run(None, {"windows": windows, "rr": rr})[0]

    def predict_proba_features(self, features: np.ndarray, *, head: str = "current") -> np.ndarray:
        """Probabilities from encoder features ``(n, context_k + 1, feature_dim)``, oldest beat
        first (the sequence graph of the split form)."""
        if self.sequence_session is None:
            raise RuntimeError(f"{self.path.name}: no split form loaded")
        features = np.ascontiguousarray(features, dtype=np.float32)
        t = self.context_k + 1
        if features.ndim != 3 or features.shape[1:] != (t, self.feature_dim):
            raise ValueError(
                f"features must have shape (n, {t}, {self.feature_dim}), got {features.shape}"
            )
        self._check_head(head)
        if not features.shape[0]:
            return np.zeros((0, len(self.classes)), np.float32)
        outs = self.sequence_session.run(None, {FEATURE_NAME: features})
        return outs[0 if head == "current" else 1]

    def _check_head(self, head: str) -> None:
        if head not in ("current", "next"):
            raise ValueError(f"head must be 'current' or 'next', got {head!r}")
        if head == "next" and not self.has_next_head:
            raise ValueError("head: this model has no early-alarm output")

    def _run(self, windows: np.ndarray, rr: np.ndarray, batch_size: int) -> list[np.ndarray]:
        outs: list[list[np.ndarray]] = [[] for _ in self.output_names]
        for start in range(0, windows.shape[0], batch_size):
            res = self.session.run(
                None,
                {
                    "windows": windows[start : start + batch_size],
                    "rr": rr[start : start + batch_size],
                },
            )
            for i, r in enumerate(res):
                outs[i].append(r)
        return [
            np.concatenate(o) if o else np.zeros((0, len(self.classes)), np.float32) for o in outs
        ]

    def predict_proba_arrays(
        self, windows: np.ndarray, rr: np.ndarray, *, batch_size: int = 1024, head: str = "current"
    ) -> np.ndarray:
        """Probabilities from context arrays.

        Parameters
        ----------
        windows : numpy.ndarray
            ``(n, context_k + 1, n_leads, window_len)``, oldest beat first, current beat last.
            With ``context_k == 0`` a ``(n, n_leads, window_len)`` array is accepted too.
        rr : numpy.ndarray
            ``(n, context_k + 1, n_rr)`` (or ``(n, n_rr)`` when ``context_k == 0``).
        head : {"current", "next"}
            ``"next"``: the early-alarm head's prediction of the following beat's class.
        """
        windows = np.asarray(windows, dtype=np.float32)
        rr = np.asarray(rr, dtype=np.float32)
        if self.context_k == 0 and windows.ndim == 3:
            windows = windows[:, None]
        if self.context_k == 0 and rr.ndim == 2:
            rr = rr[:, None]
        t = self.context_k + 1
        if windows.ndim != 4 or windows.shape[1:] != (t, self.n_leads, self.window_len):
            raise ValueError(
                f"windows must have shape (n, {t}, {self.n_leads}, {self.window_len}), got {windows.shape}"
            )
        if rr.shape != (windows.shape[0], t, self.n_rr):
            raise ValueError(
                f"rr must have shape ({windows.shape[0]}, {t}, {self.n_rr}), got {rr.shape}"
            )
        self._check_head(head)
        outs = self._run(np.ascontiguousarray(windows), np.ascontiguousarray(rr), batch_size)
        return outs[0 if head == "current" else 1]

    def predict_proba(
        self,
        beats: BeatSet,
        *,
        batch_size: int = 1024,
        head: str = "current",
        use_split: bool = False,
    ) -> np.ndarray:
        """Probabilities ``(len(beats), n_classes)``, each beat with its causal context from ``beats``.

        ``use_split``: encode every beat once with the split encoder and run the sequence graph
        on the gathered contexts (needs :attr:`has_split`); the default runs the full graph.
        """
        if use_split and not self.has_split:
            raise ValueError("use_split: no split form loaded")
        if (
            beats.n_leads != self.n_leads
            or beats.window_len != self.window_len
            or beats.rr.shape[1] < self.n_rr
        ):
            raise ValueError(
                f"beats: shape (leads={beats.n_leads}, len={beats.window_len}, n_rr={beats.rr.shape[1]}) "
                f"does not match the model ({self.n_leads}, {self.window_len}, {self.n_rr})"
            )
        ctx = beats.context_index(self.context_k)
        if use_split:
            rr = model_rr_columns(beats.rr, self.n_rr)
            feats = np.concatenate(
                [
                    self.encode(beats.windows[s : s + batch_size], rr[s : s + batch_size])
                    for s in range(0, len(beats), batch_size)
                ]
                or [np.zeros((0, self.feature_dim or 0), np.float32)]
            )
            parts = [
                self.predict_proba_features(feats[ctx[s : s + batch_size]], head=head)
                for s in range(0, len(beats), batch_size)
            ]
            return np.concatenate(parts) if parts else np.zeros((0, len(self.classes)), np.float32)
        out = []
        for start in range(0, len(beats), batch_size):
            c = ctx[start : start + batch_size]
            out.append(
                self.predict_proba_arrays(
                    beats.windows[c],
                    model_rr_columns(beats.rr[c], self.n_rr),
                    batch_size=batch_size,
                    head=head,
                )
            )
        if not out:
            return np.zeros((0, len(self.classes) or 5), np.float32)
        return np.concatenate(out)

    def predict(self, beats: BeatSet) -> np.ndarray:
        """Most probable class index of every beat."""
        return self.predict_proba(beats).argmax(axis=1)

"""Run an exported beat classifier with ONNX Runtime (numpy + onnxruntime only, no torch).

This is what the live service and devices use: the same ``.onnx`` artefact that
:func:`heartline.edge.onnx_export.export_onnx` writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heartline.data.beats import BeatSet
from heartline.signal.beats import model_rr_columns

__all__ = ["OnnxBeatClassifier"]

INPUT_NAMES = ("windows", "rr")


class OnnxBeatClassifier:
    """Beat classifier backed by an ONNX model (inputs ``windows`` and ``rr``).

    Parameters
    ----------
    path : path
        The ``.onnx`` file.
    num_threads : int
        ONNX Runtime intra-op threads.

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
    """

    def __init__(self, path: str | Path, *, num_threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"path: no ONNX model at {self.path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.path), opts, providers=["CPUExecutionProvider"]
        )
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
        if head not in ("current", "next"):
            raise ValueError(f"head must be 'current' or 'next', got {head!r}")
        if head == "next" and not self.has_next_head:
            raise ValueError("head: this model has no early-alarm output")
        outs = self._run(np.ascontiguousarray(windows), np.ascontiguousarray(rr), batch_size)
        return outs[0 if head == "current" else 1]

    def predict_proba(
        self, beats: BeatSet, *, batch_size: int = 1024, head: str = "current"
    ) -> np.ndarray:
        """Probabilities ``(len(beats), n_classes)``, each beat with its causal context from ``beats``."""
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

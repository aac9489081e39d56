"""Denoising benchmark on the MIT-BIH Noise Stress Test Database (NSTDB).

NSTDB records ``118e24`` .. ``118e_6`` and ``119e24`` .. ``119e_6`` are MIT-BIH records 118 and
119 with electrode-motion ("em") noise added at a nominal SNR of 24, 18, 12, 6, 0 and -6 dB
(Moody, Muldrow & Mark 1984 [1]_). The first 5 minutes are clean; afterwards noise is added in
alternating 2-minute segments. The noise-free original (``mitdb/118``, ``mitdb/119``) gives the
exact reference, so that SNR can be measured before and after each denoiser.

Protocol (see :func:`run_denoise_benchmark`):

* the noisy segments are found from ``noisy - clean`` (1-s blocks whose difference is not
  constant), and SNR is measured over them only;
* in every segment the mean of the signal and of the error is removed (the NSTDB files carry
  piecewise-constant offsets against the originals that no ECG measure cares about);
* input SNR: ``10 log10(sum clean^2 / sum (noisy - clean)^2)``;
* output SNR, **matched reference** (headline): the denoiser ``f`` is applied to the noisy and to
  the clean record, and ``SNR = 10 log10(sum f(clean)^2 / sum (f(noisy) - f(clean))^2)``: the
  residual noise only, so a denoiser is not charged for removing signal content (below 0.5 Hz,
  above 40 Hz) that it removes from the clean ECG as well;
* output SNR, **fixed reference**: the same against the clean record through one common 0.5-40 Hz
  zero-phase Butterworth band-pass, which also charges a method for what it distorts or leaves
  (e.g. baseline wander kept by wavelet or EMD shrinkage);
* gain = output SNR - input SNR.

EMD is slow, so every method is also scored on a bounded excerpt: the first ``excerpt_s``
seconds of the first noisy segment of each record (processed with ``context_s`` of signal either
side); EMD is scored on that excerpt only.

References
----------
.. [1] G. B. Moody, W. K. Muldrow, R. G. Mark, "A noise stress test for arrhythmia detectors",
   Computers in Cardiology 11:381-384, 1984.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from heartline.errors import DataError
from heartline.revision import git_head

__all__ = [
    "DEFAULT_METHODS",
    "NSTDB_SNR_LABELS",
    "DenoiseBenchConfig",
    "DenoiseReport",
    "DenoiseScore",
    "find_noisy_segments",
    "run_denoise_benchmark",
    "segment_snr_db",
    "write_report",
]

logger = logging.getLogger(__name__)

#: NSTDB record suffixes and their nominal SNR in dB.
NSTDB_SNR_LABELS: dict[str, float] = {
    "24": 24.0,
    "18": 18.0,
    "12": 12.0,
    "06": 6.0,
    "00": 0.0,
    "_6": -6.0,
}
#: Methods scored by default (``emd`` on the excerpt only).
DEFAULT_METHODS: tuple[str, ...] = ("bandpass", "wavelet", "emd", "clean_ecg", "neurokit")
_FIXED_BAND_HZ = (0.5, 40.0)


# --------------------------------------------------------------------------------------------
# methods under test
# --------------------------------------------------------------------------------------------
def _per_lead(func: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    return np.column_stack([func(x[:, j]) for j in range(x.shape[1])])


def _method_bandpass(x: np.ndarray, fs: float, mains_hz: float) -> np.ndarray:
    from heartline.signal.filters import bandpass

    return bandpass(x, fs=fs, low_hz=0.5, high_hz=40.0, order=4)


def _method_wavelet(x: np.ndarray, fs: float, mains_hz: float) -> np.ndarray:
    from heartline.signal.denoise import wavelet_denoise

    return wavelet_denoise(x, fs=fs)


def _method_emd(x: np.ndarray, fs: float, mains_hz: float) -> np.ndarray:
    from heartline.signal.denoise import emd_denoise

    return emd_denoise(x, fs=fs)


def _method_clean_ecg(x: np.ndarray, fs: float, mains_hz: float) -> np.ndarray:
    from heartline.signal.preprocess import clean_ecg

    return clean_ecg(x, fs=fs, mains_hz=mains_hz)


def _method_neurokit(x: np.ndarray, fs: float, mains_hz: float) -> np.ndarray:
    import neurokit2 as nk

    # NeuroKit2 default ("neurokit": 0.5 Hz order-5 Butterworth high-pass + 50 Hz powerline
    # filter), called as a user would, without our mains setting.
    return _per_lead(
        lambda c: np.asarray(nk.ecg_clean(c, sampling_rate=round(fs)), dtype=np.float64), x
    )


_METHODS: dict[str, tuple[Callable[[np.ndarray, float, float], np.ndarray], str]] = {
    "bandpass": (
        _method_bandpass,
        "Butterworth 0.5-40 Hz, order 4, zero-phase (heartline.signal.filters.bandpass)",
    ),
    "wavelet": (
        _method_wavelet,
        "sym8 wavelet shrinkage, universal threshold, finest-level MAD noise estimate, soft (wavelet_denoise defaults)",
    ),
    "emd": (
        _method_emd,
        "EMD partial reconstruction, first IMF dropped, 10 s blocks with 1 s overlap (emd_denoise defaults)",
    ),
    "clean_ecg": (
        _method_clean_ecg,
        "clean_ecg defaults: 200/600 ms median baseline, 0.5-40 Hz band-pass, 60 Hz notch",
    ),
    "neurokit": (
        _method_neurokit,
        "NeuroKit2 nk.ecg_clean default (0.5 Hz high-pass order 5 + 50 Hz powerline)",
    ),
}
_EXCERPT_ONLY = frozenset({"emd"})


# --------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------
def find_noisy_segments(
    noisy: np.ndarray, clean: np.ndarray, *, fs: float, min_segment_s: float = 5.0
) -> list[tuple[int, int]]:
    """Half-open sample ranges where NSTDB noise is present.

    The noise is taken as present in every 1-s block where ``noisy - clean`` is not constant on
    any lead (outside the noisy segments the difference is a constant offset). Runs of such
    blocks shorter than ``min_segment_s`` are dropped.

    Parameters
    ----------
    noisy, clean : numpy.ndarray
        Same-shape signals, ``(n_samples,)`` or ``(n_samples, n_leads)``.
    fs : float
        Sampling rate in Hz.
    min_segment_s : float
        Shortest segment kept, in seconds.

    Returns
    -------
    list of (int, int)
        ``(start_idx, stop_idx)`` pairs.

    Examples
    --------
    >>> import numpy as np
    >>> clean = np.zeros(100)
    >>> noisy = clean.copy(); noisy[30:70] = np.arange(40.0)
    >>> find_noisy_segments(noisy, clean, fs=10.0, min_segment_s=1.0)
    [(30, 70)]
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    clean = np.asarray(clean, dtype=np.float64)
    if noisy.shape != clean.shape:
        raise DataError(f"noisy and clean records differ in shape: {noisy.shape} vs {clean.shape}")
    diff = noisy - clean
    if diff.ndim == 1:
        diff = diff[:, None]
    block = max(round(fs), 1)
    n = diff.shape[0]
    active = np.zeros(n, dtype=bool)
    for start in range(0, n, block):
        seg = diff[start : start + block]
        active[start : start + block] = bool(np.any(np.ptp(seg, axis=0) > 1e-9))
    # refine block edges to the exact samples: extend/trim each run to where diff changes
    padded = np.r_[False, active, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    segments = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        changing = np.flatnonzero(np.any(np.abs(np.diff(diff[start:stop], axis=0)) > 1e-9, axis=1))
        if changing.size == 0:
            continue
        s, e = int(start + changing[0]), int(start + changing[-1] + 2)
        if e - s >= min_segment_s * fs:
            segments.append((s, e))
    return segments


def segment_snr_db(
    reference: np.ndarray, estimate: np.ndarray, segments: Sequence[tuple[int, int]]
) -> float:
    """SNR in dB of ``estimate`` against ``reference`` over ``segments`` (1-D signals).

    In each segment the mean of the reference and of the error is removed first.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.sin(np.linspace(0, 20, 1000))
    >>> round(segment_snr_db(ref, ref + 0.1 * ref, [(0, 1000)]), 1)
    20.0
    """
    sig = 0.0
    err = 0.0
    for s, e in segments:
        r = reference[s:e] - np.mean(reference[s:e])
        d = estimate[s:e] - reference[s:e]
        d = d - np.mean(d)
        sig += float(np.sum(r**2))
        err += float(np.sum(d**2))
    if err == 0:
        return float("inf")
    if sig == 0:
        return float("-inf")
    return float(10.0 * np.log10(sig / err))


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DenoiseScore:
    """One (record, lead, method, scope) measurement, SNRs in dB."""

    record: str
    nominal_snr_db: float
    lead: str
    method: str
    scope: str  # "all" (every noisy segment) or "excerpt"
    duration_s: float
    input_snr_db: float
    output_snr_db: float  # matched reference
    gain_db: float
    output_snr_fixed_db: float  # fixed 0.5-40 Hz reference
    gain_fixed_db: float


@dataclass(frozen=True)
class DenoiseBenchConfig:
    """Settings of :func:`run_denoise_benchmark` (saved with every run)."""

    records: tuple[str, ...] = ("118", "119")
    snr_labels: tuple[str, ...] = tuple(NSTDB_SNR_LABELS)
    methods: tuple[str, ...] = DEFAULT_METHODS
    leads: tuple[int, ...] = (0, 1)
    mains_hz: float = 60.0  # MIT-BIH was recorded in the USA
    excerpt_s: float = 120.0
    context_s: float = 10.0
    max_duration_s: float | None = None  # read only the first N seconds (tests)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in _METHODS]
        if unknown:
            raise ValueError(
                f"unknown denoising benchmark method(s) {unknown}; valid: {sorted(_METHODS)}"
            )
        bad = [s for s in self.snr_labels if s not in NSTDB_SNR_LABELS]
        if bad:
            raise ValueError(f"unknown NSTDB SNR label(s) {bad}; valid: {list(NSTDB_SNR_LABELS)}")
        if not self.excerpt_s > 0 or not self.context_s >= 0:
            raise ValueError("excerpt_s must be > 0 and context_s >= 0")


@dataclass(frozen=True)
class DenoiseReport:
    """All scores of one benchmark run, plus what is needed to reproduce it."""

    config: DenoiseBenchConfig
    scores: tuple[DenoiseScore, ...]
    method_descriptions: dict[str, str] = field(default_factory=dict)
    data_dir: str = ""
    git_revision: str = ""
    fs: float = 360.0

    def summary(
        self, *, scope: str, lead: str | None = None
    ) -> dict[tuple[float, str], dict[str, float]]:
        """Mean over records (and leads unless ``lead``) per (nominal SNR, method)."""
        groups: dict[tuple[float, str], list[DenoiseScore]] = {}
        for s in self.scores:
            if s.scope == scope and (lead is None or s.lead == lead):
                groups.setdefault((s.nominal_snr_db, s.method), []).append(s)
        return {
            key: {
                "input_snr_db": float(np.mean([s.input_snr_db for s in group])),
                "output_snr_db": float(np.mean([s.output_snr_db for s in group])),
                "gain_db": float(np.mean([s.gain_db for s in group])),
                "gain_fixed_db": float(np.mean([s.gain_fixed_db for s in group])),
                "n": float(len(group)),
            }
            for key, group in groups.items()
        }


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------
def run_denoise_benchmark(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    config: DenoiseBenchConfig | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DenoiseReport:
    """Score every denoiser on NSTDB (see the module docstring for the protocol).

    Parameters
    ----------
    data_dir : path-like, optional
        Data directory holding ``mitdb/`` and ``nstdb/`` (default: :func:`resolve_data_dir`).
    config : DenoiseBenchConfig, optional
        Records, SNR levels, methods, leads, excerpt length.
    on_step : callable, optional
        Called with a description after each (noisy record, method) step, for progress bars.

    Returns
    -------
    DenoiseReport
    """
    from heartline.data.paths import database_dir
    from heartline.io import read_record
    from heartline.signal.filters import bandpass

    cfg = config if config is not None else DenoiseBenchConfig()
    mitdb = database_dir("mitdb", data_dir=data_dir)
    nstdb = database_dir("nstdb", data_dir=data_dir)
    scores: list[DenoiseScore] = []
    fs_seen = 360.0
    for rec in cfg.records:
        clean_rec = read_record(mitdb / rec)
        fs = clean_rec.fs
        fs_seen = fs
        sampto = None if cfg.max_duration_s is None else round(cfg.max_duration_s * fs)
        clean_all = clean_rec.signal[:sampto][:, list(cfg.leads)]
        lead_names = [clean_rec.lead_names[j] for j in cfg.leads]
        clean_cache: dict[tuple[str, str], np.ndarray] = {}
        fixed_all = bandpass(
            clean_all, fs=fs, low_hz=_FIXED_BAND_HZ[0], high_hz=_FIXED_BAND_HZ[1], order=4
        )
        for label in cfg.snr_labels:
            name = f"{rec}e{label}"
            noisy_rec = read_record(nstdb / name, sampto=sampto)
            noisy_all = noisy_rec.signal[:, list(cfg.leads)]
            if noisy_rec.fs != fs:
                raise DataError(f"{name}: fs {noisy_rec.fs} Hz differs from {rec}: {fs} Hz")
            segments = find_noisy_segments(noisy_all, clean_all, fs=fs)
            if not segments:
                raise DataError(f"{name}: no noisy segment found against mitdb/{rec}")
            # excerpt: the first excerpt_s seconds of the first noisy segment, with context
            s0, e0 = segments[0]
            e0 = min(e0, s0 + round(cfg.excerpt_s * fs))
            ctx = round(cfg.context_s * fs)
            lo, hi = max(0, s0 - ctx), min(noisy_all.shape[0], e0 + ctx)
            scopes = {
                "all": (slice(None), segments),
                "excerpt": (slice(lo, hi), [(s0 - lo, e0 - lo)]),
            }
            for method in cfg.methods:
                func = _METHODS[method][0]
                for scope, (window, segs) in scopes.items():
                    if scope == "all" and method in _EXCERPT_ONLY:
                        continue
                    noisy = noisy_all[window]
                    clean = clean_all[window]
                    key = (method, scope)
                    if key not in clean_cache:
                        clean_cache[key] = func(clean, fs, cfg.mains_hz)
                    ref = clean_cache[key]
                    out = func(noisy, fs, cfg.mains_hz)
                    fixed = fixed_all[window]
                    for j, lead in enumerate(lead_names):
                        snr_in = segment_snr_db(clean[:, j], noisy[:, j], segs)
                        snr_out = segment_snr_db(ref[:, j], out[:, j], segs)
                        snr_fixed = segment_snr_db(fixed[:, j], out[:, j], segs)
                        scores.append(
                            DenoiseScore(
                                record=name,
                                nominal_snr_db=NSTDB_SNR_LABELS[label],
                                lead=lead,
                                method=method,
                                scope=scope,
                                duration_s=sum(e - s for s, e in segs) / fs,
                                input_snr_db=snr_in,
                                output_snr_db=snr_out,
                                gain_db=snr_out - snr_in,
                                output_snr_fixed_db=snr_fixed,
                                gain_fixed_db=snr_fixed - snr_in,
                            )
                        )
                logger.debug("%s %s done", name, method)
                if on_step is not None:
                    on_step(f"{name} {method}")
    return DenoiseReport(
        config=cfg,
        scores=tuple(scores),
        method_descriptions={m: _METHODS[m][1] for m in cfg.methods},
        data_dir=str(Path(mitdb).parent),
        git_revision=git_head(),
        fs=fs_seen,
    )


def n_steps(config: DenoiseBenchConfig) -> int:
    """Number of ``on_step`` calls a run makes (for a progress bar)."""
    return len(config.records) * len(config.snr_labels) * len(config.methods)


# --------------------------------------------------------------------------------------------
# report files
# --------------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return f"{v:+.1f}" if np.isfinite(v) else str(v)


def _table(report: DenoiseReport, *, scope: str, lead: str | None, value: str) -> list[str]:
    summary = report.summary(scope=scope, lead=lead)
    methods = [m for m in report.config.methods if not (scope == "all" and m in _EXCERPT_ONLY)]
    levels = sorted({k[0] for k in summary}, reverse=True)
    head = "| nominal SNR | input SNR | " + " | ".join(methods) + " |"
    lines = [head, "|" + "---|" * (2 + len(methods))]
    for level in levels:
        first = summary.get((level, methods[0]))
        row = [f"{level:+.0f} dB", _fmt(first["input_snr_db"]) if first else "-"]
        for m in methods:
            entry = summary.get((level, m))
            row.append(_fmt(entry[value]) if entry else "-")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _markdown(report: DenoiseReport) -> str:
    cfg = report.config
    leads = sorted(
        {s.lead for s in report.scores}, key=lambda x: [s.lead for s in report.scores].index(x)
    )
    excerpt = [s for s in report.scores if s.scope == "excerpt"]
    all_ = [s for s in report.scores if s.scope == "all"]
    dur_all = np.mean([s.duration_s for s in all_]) if all_ else 0.0
    dur_ex = np.mean([s.duration_s for s in excerpt]) if excerpt else 0.0
    out = [
        "# Denoising benchmark (NSTDB, electrode-motion noise)",
        "",
        f"Records: NSTDB {', '.join(r + 'e' + lab for r in cfg.records for lab in cfg.snr_labels)} against "
        f"the noise-free MIT-BIH {', '.join(cfg.records)}; fs = {report.fs:g} Hz; leads: {', '.join(leads)} "
        "(both reported separately and averaged over the two records). Mains for `clean_ecg`: "
        f"{cfg.mains_hz:g} Hz (NeuroKit2 keeps its 50 Hz default).",
        "",
        f"SNR is measured over the noisy segments only (found from noisy - clean; {dur_all:.0f} s per record "
        f"for scope *all*), with the per-segment mean of signal and error removed. Scope *excerpt*: the "
        f"first {dur_ex:.0f} s of the first noisy segment of each record (processed with {cfg.context_s:g} s "
        "of context on each side); EMD is slow and is scored on the excerpt only.",
        "",
        "**Matched reference** (headline): output SNR compares f(noisy) with f(clean), the clean record "
        "through the same denoiser, so it counts residual noise only. **Fixed reference**: compares "
        f"f(noisy) with the clean record through one {_FIXED_BAND_HZ[0]}-{_FIXED_BAND_HZ[1]:g} Hz zero-phase "
        "Butterworth band-pass, so it also charges distortion and kept baseline wander.",
        "",
        "Methods:",
        "",
    ]
    out += [f"- `{m}`: {d}" for m, d in report.method_descriptions.items()]
    for scope, title in (("all", "all noisy segments"), ("excerpt", "excerpt (with EMD)")):
        for lead in leads:
            out += ["", f"## SNR gain (dB), matched reference, {title}, lead {lead}", ""]
            out += _table(report, scope=scope, lead=lead, value="gain_db")
        out += [
            "",
            f"## SNR gain (dB), fixed 0.5-40 Hz reference, {title}, both leads averaged",
            "",
        ]
        out += _table(report, scope=scope, lead=None, value="gain_fixed_db")
    out += ["", f"git revision: `{report.git_revision or 'unknown'}`", ""]
    return "\n".join(out)


def _plot(report: DenoiseReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    leads = list(dict.fromkeys(s.lead for s in report.scores))
    fig, axes = plt.subplots(len(leads), 2, figsize=(11, 4 * len(leads)), squeeze=False)
    for i, lead in enumerate(leads):
        for k, scope in enumerate(("all", "excerpt")):
            ax = axes[i][k]
            summary = report.summary(scope=scope, lead=lead)
            for method in report.config.methods:
                pts = sorted(
                    (v["input_snr_db"], v["gain_db"])
                    for (lvl, m), v in summary.items()
                    if m == method
                )
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    color = f"C{report.config.methods.index(method)}"  # same colour in every panel
                    ax.plot(xs, ys, marker="o", label=method, color=color)
            ax.axhline(0.0, color="grey", lw=0.8)
            ax.set_title(f"lead {lead}, {'all noisy segments' if scope == 'all' else 'excerpt'}")
            ax.set_xlabel("input SNR (dB, measured)")
            ax.set_ylabel("SNR gain (dB, matched reference)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("NSTDB 118/119 electrode-motion noise: SNR gain vs input SNR")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: DenoiseReport, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``denoise.json``, ``denoise.md`` and ``denoise.png`` into ``out_dir`` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "denoise.json", "md": out / "denoise.md", "png": out / "denoise.png"}
    payload = {
        "benchmark": "denoise",
        "config": asdict(report.config),
        "data_dir": report.data_dir,
        "git_revision": report.git_revision,
        "fs": report.fs,
        "methods": report.method_descriptions,
        "reference": {
            "matched": "output SNR of f(noisy) against f(clean) (same denoiser on the clean record)",
            "fixed": f"output SNR of f(noisy) against the clean record band-passed {_FIXED_BAND_HZ[0]}-{_FIXED_BAND_HZ[1]} Hz",
        },
        "scores": [asdict(s) for s in report.scores],
        "summary": {
            scope: [
                {"nominal_snr_db": k[0], "method": k[1], **v}
                for k, v in sorted(
                    report.summary(scope=scope).items(), key=lambda kv: (-kv[0][0], kv[0][1])
                )
            ]
            for scope in ("all", "excerpt")
        },
    }
    paths["json"].write_text(json.dumps(payload, indent=2, default=float))
    paths["md"].write_text(_markdown(report))
    _plot(report, paths["png"])
    return paths

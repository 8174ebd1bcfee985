"""Every figure of the course: waveforms, spectrograms, distributions, results.

Each function takes arrays or manifests (pandas DataFrames) and returns a
:class:`matplotlib.figure.Figure`; notebooks display the returned figure and
:func:`save` writes it to ``imgs/`` as a PNG under 200 KB. Titles, axis
labels with units and colour bars are drawn by default.

Figures are built with the object-oriented API (``matplotlib.figure.Figure``),
never through ``pyplot``: nothing is drawn twice in a notebook, no figure is
kept alive by a global registry, and no backend is forced on the caller. A
returned figure shows itself as a PNG when it is a notebook cell's value.
Functions that draw a single panel also accept ``ax=`` to draw into an
existing axes (and then return that axes' figure).

Conventions
-----------
* Features are stored **time-major** in speechlib: ``(frames, bins)``, as
  :func:`speechlib.features.compute` returns them. The plots transpose them
  for display, so time runs left to right and frequency bottom to top.
* Time axes are in seconds; frequency axes in Hz, linear for the STFT and
  mel-scaled for log-mel, and never above the Nyquist frequency
  (``sample_rate / 2`` = 8 kHz for Speech Commands).
* Log-power features are shown in dB (``10 * log10(power)``) with colour bars
  reading ``+xx dB``. speechlib's STFT is in dB already; its log-mel is the
  natural log of mel power and is converted for display
  (:func:`spectrogram`'s ``log`` argument).
* Features of a waveform are computed with :func:`speechlib.features.compute`
  and its default parameters: the figures show what the models are fed.

Public API
----------
Audio and features
    :func:`waveform`, :func:`waveforms_grid`, :func:`spectrogram`,
    :func:`feature_panel`, :func:`class_means`, :func:`noise_overview`,
    :func:`augmentation_before_after`, :func:`compare_real_synthetic`
Embeddings
    :func:`embed`, :func:`embedding`
Distributions
    :func:`histogram`, :func:`duration_hist`, :func:`loudness_hist`,
    :func:`position_hist`, :func:`counts_bar`, :func:`split_counts`
Results
    :func:`training_curves`, :func:`confusion_matrix`, :func:`accuracy_vs_cost`
Files
    :func:`save`

Examples
--------
>>> import numpy as np
>>> from speechlib import plot
>>> from speechlib.config import SAMPLE_RATE
>>> t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
>>> fig = plot.waveform(0.5 * np.sin(2 * np.pi * 440 * t), title="440 Hz tone")
>>> fig.axes[0].get_xlabel()
'time (s)'
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import librosa.display
import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.preprocessing import StandardScaler

from speechlib import features
from speechlib.config import HOP_LENGTH, SAMPLE_RATE, SEED

__all__ = [
    "FEATURE_KINDS",
    "MAX_PNG_BYTES",
    "accuracy_vs_cost",
    "augmentation_before_after",
    "class_means",
    "compare_real_synthetic",
    "confusion_matrix",
    "counts_bar",
    "duration_hist",
    "embed",
    "embedding",
    "feature_panel",
    "histogram",
    "loudness_hist",
    "noise_overview",
    "position_hist",
    "save",
    "spectrogram",
    "split_counts",
    "training_curves",
    "waveform",
    "waveforms_grid",
]

MAX_PNG_BYTES = 200 * 1024  # committed figures stay small (notebooks well under 3 MB)
DISPLAY_DPI = 80  # resolution of figures shown in notebooks (their outputs are committed)
FEATURE_KINDS = ("stft", "logmel", "mfcc", "chroma", "tempogram")
DB_FORMAT = "%+2.0f dB"  # colour-bar tick format for log-power features
DB_PER_NEPER = float(10 * np.log10(np.e))  # natural log of power -> dB: 4.34 dB per unit
WAVE_COLOR = "C0"
HIGHLIGHT_COLOR = "C3"
# Above this many samples a waveform is drawn as its min/max envelope: same picture, far smaller PNG.
_ENVELOPE_ABOVE = 8_000
_LONG_FRAMES = 120  # frames drawn for a long recording's spectrogram

# What each feature's colour bar and y axis show, and how librosa.display labels its y axis.
_KIND_INFO = {
    "stft": {"y_axis": "linear", "ylabel": "frequency (Hz)", "units": "dB", "name": "STFT log-power"},
    "logmel": {"y_axis": "mel", "ylabel": "frequency (Hz)", "units": "dB", "name": "log-mel"},
    "mfcc": {"y_axis": None, "ylabel": "MFCC index", "units": "coefficient", "name": "MFCC"},
    "chroma": {"y_axis": "chroma", "ylabel": "pitch class", "units": "energy (normalised)", "name": "chroma"},
    "tempogram": {"y_axis": "tempo", "ylabel": "tempo (BPM)", "units": "autocorrelation", "name": "tempogram"},
}


# --- small helpers -------------------------------------------------------------------------------


class _NotebookFigure(Figure):
    """A Figure that Jupyter shows as a PNG whatever the matplotlib backend.

    Figures made without ``pyplot`` have no display hook of their own; IPython calls
    ``_repr_png_`` when a cell returns one.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=DISPLAY_DPI)
        return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    """A new figure with constrained layout (colour bars and titles never overlap)."""
    return _NotebookFigure(figsize=(width, height), layout="constrained")


def _single_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """Use ``ax`` when given, else a fresh one-panel figure."""
    if ax is not None:
        return ax.figure, ax
    fig = _figure(*figsize)
    return fig, fig.add_subplot()


def _as_waveform(waveform: np.ndarray, name: str = "waveform") -> np.ndarray:
    """Check and return a 1-D float array."""
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {x.shape}; mix to mono or pass one clip")
    if x.size == 0:
        raise ValueError(f"{name} is empty; there is nothing to plot")
    return x


def _as_features(S: np.ndarray, name: str = "features") -> np.ndarray:
    """Check and return a 2-D time-major (frames, bins) array."""
    S = np.asarray(S, dtype=np.float32)
    if S.ndim == 3 and S.shape[-1] == 1:  # a channel axis added for a CNN
        S = S[..., 0]
    if S.ndim != 2:
        raise ValueError(f"{name} must be 2-D (frames, bins), got shape {S.shape}")
    return S


def _nyquist(sample_rate: int) -> float:
    return sample_rate / 2.0


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return math.ceil(n / ncols), ncols


def _hide_unused(axes: np.ndarray, used: int) -> None:
    for ax in axes.ravel()[used:]:
        ax.set_visible(False)


# --- waveforms ------------------------------------------------------------------------------------


def waveform(
    waveform: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    title: str | None = None,
    ax: Axes | None = None,
    color: str = WAVE_COLOR,
    ylim: float | None = None,
) -> Figure:
    """Plot a waveform against time in seconds.

    Parameters
    ----------
    waveform : np.ndarray, shape (n_samples,), float in [-1, 1]
        The samples of one mono clip.
    sample_rate : int, Hz
        Sampling rate of ``waveform``.
    title : str, optional
        Axes title (default: the duration).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.
    color : str
        Line colour.
    ylim : float, optional
        Symmetric amplitude limit; default: the clip's peak (at least 0.01), so quiet clips stay visible.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes: x "time (s)" from 0 to the clip's duration, y "amplitude".

    Notes
    -----
    Long recordings (more than a few thousand samples per pixel column) are drawn as their
    min/max envelope, which looks the same and keeps the PNG small.
    """
    x = _as_waveform(waveform)
    fig, ax = _single_axes(ax, (6.0, 2.2))
    duration = x.size / sample_rate
    if x.size > _ENVELOPE_ABOVE:
        n_cols = 1_000  # about two columns per pixel of a full-width panel
        edges = np.linspace(0, x.size, n_cols + 1).astype(int)
        lo = np.minimum.reduceat(x, edges[:-1])
        hi = np.maximum.reduceat(x, edges[:-1])
        t = edges[:-1] / sample_rate
        ax.fill_between(t, lo, hi, color=color, linewidth=0.3)
    else:
        ax.plot(np.arange(x.size) / sample_rate, x, color=color, linewidth=0.6)
    peak = float(np.max(np.abs(x)))
    lim = ylim if ylim is not None else max(peak * 1.05, 0.01)
    ax.set_ylim(-lim, lim)
    ax.set_xlim(0.0, duration)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_title(title if title is not None else f"waveform, {duration:.2f} s")
    return fig


_plot_waveform = waveform  # for functions whose `waveform` argument shadows the function


def waveforms_grid(
    clips: Mapping[str, Sequence[np.ndarray]],
    *,
    sample_rate: int = SAMPLE_RATE,
    max_per_class: int = 3,
    title: str | None = "A few clips per class",
) -> Figure:
    """A grid of waveforms: one row per class, a few clips per row.

    Parameters
    ----------
    clips : mapping str -> sequence of np.ndarray, each shape (n_samples,)
        Label -> waveforms of that class (float in [-1, 1]).
    sample_rate : int, Hz
        Sampling rate of every waveform.
    max_per_class : int
        At most this many clips per row.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        ``len(clips)`` rows x ``max_per_class`` columns; the row's label is the y label of its
        first panel, all panels share the amplitude range [-1, 1] so loudness can be compared.
    """
    if not clips:
        raise ValueError("clips is empty: pass a mapping label -> list of waveforms")
    labels = list(clips)
    ncols = max(1, min(max_per_class, max(len(v) for v in clips.values())))
    fig = _figure(2.4 * ncols, 1.0 * len(labels) + 0.6)
    axes = np.asarray(fig.subplots(len(labels), ncols, squeeze=False, sharex=True, sharey=True))
    for r, label in enumerate(labels):
        row = list(clips[label])[:ncols]
        for c in range(ncols):
            ax = axes[r, c]
            if c < len(row):
                waveform(row[c], sample_rate=sample_rate, ax=ax, title="", ylim=1.0)
            else:
                ax.set_axis_off()
            ax.set_xlabel("time (s)" if r == len(labels) - 1 else "")
            ax.set_ylabel(label if c == 0 else "")
            ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    return fig


# --- spectrogram-like features ---------------------------------------------------------------------


def spectrogram(
    S: np.ndarray,
    *,
    kind: str = "logmel",
    sample_rate: int = SAMPLE_RATE,
    hop_length: int = HOP_LENGTH,
    fmin: float | None = None,
    fmax: float | None = None,
    log: str | None = None,
    title: str | None = None,
    ax: Axes | None = None,
    colorbar: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str | None = None,
) -> Figure:
    """Show a time-frequency feature with the right axes and a colour bar.

    Parameters
    ----------
    S : np.ndarray, shape (frames, bins), float
        The feature, **time-major** as speechlib stores it (``features.compute``); it is
        transposed here for display (time left to right, bins bottom to top). A trailing channel
        axis of size 1 is dropped.

        - ``"stft"``: ``bins = n_fft // 2 + 1`` log-power values in dB;
        - ``"logmel"``: ``bins = n_mels`` log mel power, natural log as ``features.compute``
          gives it (``log="ln"``) or in dB (``log="dB"``);
        - ``"mfcc"``: ``bins = n_mfcc`` coefficients;
        - ``"chroma"``: 12 pitch classes, energy normalised to [0, 1];
        - ``"tempogram"``: onset autocorrelation per lag.
    kind : {"stft", "logmel", "mfcc", "chroma", "tempogram"}
        What ``S`` holds; decides the y axis and the colour bar.
    sample_rate : int, Hz
        Sampling rate of the audio the feature was computed from.
    hop_length : int, samples
        Frame hop; frame ``i`` is centred at ``i * hop_length / sample_rate`` seconds.
    fmin, fmax : float, Hz, optional
        Frequency range of the mel filterbank (``"logmel"``), needed to place the bands on the
        axis. Default: ``speechlib.features``' log-mel defaults (20 Hz to ``sample_rate / 2``).
        ``fmax`` may not exceed the Nyquist frequency ``sample_rate / 2``.
    log : {"ln", "dB"}, optional
        How ``S`` is logarithmic, for ``"logmel"`` and ``"stft"``: ``"ln"`` (natural log of power)
        is converted to dB for display (``dB = 10 log10(e) * ln``); ``"dB"`` is shown as is.
        Default: speechlib's convention, ``"ln"`` for log-mel and ``"dB"`` for the STFT.
        ``vmin`` and ``vmax`` are in dB either way.
    title : str, optional
        Axes title (default: the feature's name and shape).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.
    colorbar : bool
        Draw a colour bar (ticks ``"+xx dB"`` for STFT and log-mel).
    vmin, vmax : float, optional
        Colour range; give the same values to several plots to compare them.
    cmap : str, optional
        Colour map (default ``"magma"`` for dB, ``"coolwarm"`` for MFCC, ``"viridis"`` else).

    Returns
    -------
    matplotlib.figure.Figure
        x axis "time (s)" from 0 to ``(frames - 1) * hop_length / sample_rate``; y axis
        "frequency (Hz)" (linear for the STFT, mel-scaled for log-mel, never above the Nyquist
        frequency), "MFCC index", "pitch class" or "tempo (BPM)".
    """
    if kind not in _KIND_INFO:
        raise ValueError(f"unknown feature kind {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
    S = _in_db(_as_features(S, kind), kind, log)
    fig, ax = _single_axes(ax, (6.0, 3.0))
    axis = _frequency_axis(kind, S.shape[1], sample_rate, fmin=fmin, fmax=fmax)
    img = _specshow(ax, S, kind, sample_rate=sample_rate, hop_length=hop_length, cmap=cmap, vmin=vmin, vmax=vmax,
                    **axis)  # fmt: skip
    _label_axes(ax, kind, S.shape, sample_rate=sample_rate, hop_length=hop_length, fmax=axis.get("fmax"), title=title)
    if colorbar:
        _colorbar(fig, img, ax, kind)
    return fig


def _in_db(S: np.ndarray, kind: str, log: str | None) -> np.ndarray:
    """A log-power feature in dB (``log="ln"`` converted); other features as they are."""
    if _KIND_INFO[kind]["units"] != "dB":
        return S
    log = ("ln" if kind == "logmel" else "dB") if log is None else log
    if log not in ("ln", "dB"):
        raise ValueError(f"log={log!r}: say how S is logarithmic, 'ln' (natural log of power) or 'dB'")
    return S * DB_PER_NEPER if log == "ln" else S


def _frequency_axis(kind: str, n_bins: int, sample_rate: int, *, fmin: float | None, fmax: float | None) -> dict:
    """``specshow``'s frequency arguments: the STFT's ``n_fft``, the mel range checked against Nyquist."""
    if kind == "stft":
        return {"n_fft": 2 * (n_bins - 1)}
    if kind != "logmel":
        return {}
    nyquist = _nyquist(sample_rate)
    default_fmin, default_fmax = _mel_range(sample_rate)
    fmin = default_fmin if fmin is None else float(fmin)
    fmax = default_fmax if fmax is None else float(fmax)
    if fmax > nyquist:
        raise ValueError(
            f"fmax={fmax:g} Hz is above the Nyquist frequency {nyquist:g} Hz of {sample_rate} Hz audio; "
            f"use fmax <= {nyquist:g}"
        )
    return {"fmin": fmin, "fmax": fmax}


def _specshow(ax: Axes, S: np.ndarray, kind: str, *, sample_rate: int, hop_length: int, cmap: str | None,
              vmin: float | None, vmax: float | None, **axis) -> QuadMesh:  # fmt: skip
    """Draw the (frames, bins) feature with time left to right, in the feature's default colour map."""
    units = _KIND_INFO[kind]["units"]
    if cmap is None:
        cmap = "magma" if units == "dB" else ("coolwarm" if kind == "mfcc" else "viridis")
    return librosa.display.specshow(
        S.T,
        sr=sample_rate,
        hop_length=hop_length,
        x_axis="s",
        y_axis=_KIND_INFO[kind]["y_axis"],
        ax=ax,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        **axis,
    )


def _label_axes(ax: Axes, kind: str, shape: tuple[int, int], *, sample_rate: int, hop_length: int,
                fmax: float | None, title: str | None) -> None:  # fmt: skip
    """Clip the axes to the signal's time and frequency range; label them and title the panel."""
    n_frames, n_bins = shape
    info = _KIND_INFO[kind]
    # librosa draws each bin as a cell centred on its frame/frequency; clip to the signal's range.
    ax.set_xlim(0.0, max(n_frames - 1, 1) * hop_length / sample_rate)
    if kind == "stft":
        ax.set_ylim(0.0, _nyquist(sample_rate))
    elif kind == "logmel":
        ax.set_ylim(0.0, fmax)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(info["ylabel"])
    if kind == "mfcc":
        ax.set_yticks(range(0, n_bins, max(1, n_bins // 6)))
    ax.set_title(title if title is not None else f"{info['name']} ({n_frames} frames x {n_bins} bins)")


def _colorbar(fig: Figure, mappable, ax, kind: str, label: str | None = None, **kwargs):
    """A colour bar labelled for ``kind`` ("level (dB)" with +xx dB ticks for log-power)."""
    units = _KIND_INFO[kind]["units"]
    if units == "dB":
        cbar = fig.colorbar(mappable, ax=ax, format=DB_FORMAT, **kwargs)
        cbar.set_label(label or "level (dB)")
    else:
        cbar = fig.colorbar(mappable, ax=ax, **kwargs)
        cbar.set_label(label or units)
    return cbar


def _mel_range(sample_rate: int) -> tuple[float, float]:
    """(fmin, fmax) of speechlib's log-mel filterbank, Hz."""
    params = features.default_params("logmel")
    return float(params["fmin"]), float(params["fmax"] or _nyquist(sample_rate))


def _feature(waveform: np.ndarray, kind: str, sample_rate: int, **params) -> tuple[np.ndarray, dict]:
    """``features.compute`` for display; returns the (frames, bins) array and :func:`spectrogram`'s axis arguments."""
    p = features.resolve_params(kind, sample_rate=sample_rate, **params)
    S = features.compute(waveform, kind, **p)
    axes = {"hop_length": int(p["hop_length"])}
    if kind == "logmel":
        axes.update(fmin=float(p["fmin"]), fmax=float(p["fmax"] or _nyquist(sample_rate)), log="ln")
    return S, axes


def _logmel_db(waveform: np.ndarray, sample_rate: int, **params) -> np.ndarray:
    """speechlib's log-mel of ``waveform`` in dB re. full scale, (frames, n_mels)."""
    S, _ = _feature(waveform, "logmel", sample_rate, **params)
    return S * DB_PER_NEPER


def feature_panel(
    waveform: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    kinds: Sequence[str] = ("stft", "logmel", "mfcc", "chroma"),
    title: str | None = None,
) -> Figure:
    """One clip seen several ways: the waveform, then its STFT, log-mel, MFCC and chroma.

    Every feature is computed with ``speechlib.features.compute`` and its default parameters,
    so the figure shows exactly what the models are fed.

    Parameters
    ----------
    waveform : np.ndarray, shape (n_samples,), float in [-1, 1]
        One clip.
    sample_rate : int, Hz
        Sampling rate of ``waveform``.
    kinds : sequence of str
        Features to show, in order (any of :data:`FEATURE_KINDS`).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        ``1 + len(kinds)`` axes: the waveform, then one :func:`spectrogram` per kind, each with
        its own colour bar.
    """
    x = _as_waveform(waveform)
    fig = _figure(7.0, 1.6 * (len(kinds) + 1) + 0.4)
    axes = np.atleast_1d(fig.subplots(len(kinds) + 1, 1, sharex=True))
    _plot_waveform(x, sample_rate=sample_rate, ax=axes[0], title="waveform")
    for ax, kind in zip(axes[1:], kinds, strict=True):
        S, axis_kw = _feature(x, kind, sample_rate)
        if kind == "mfcc":  # c0 (the overall level) is tens of times the others: on one scale they are flat
            _mfcc_without_c0(S, sample_rate=sample_rate, ax=ax, **axis_kw)
            continue
        spectrogram(S, kind=kind, sample_rate=sample_rate, ax=ax, title=_KIND_INFO[kind]["name"], **axis_kw)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    if title:
        fig.suptitle(title)
    return fig


def _mfcc_without_c0(S: np.ndarray, *, sample_rate: int, ax: Axes, **axis_kw) -> None:
    """MFCC 1 to n-1 on a colour scale symmetric about 0, their own indices on the y axis."""
    rest = S[:, 1:]
    limit = float(np.abs(rest).max()) or 1.0
    spectrogram(rest, kind="mfcc", sample_rate=sample_rate, ax=ax, vmin=-limit, vmax=limit,
                title=f"MFCC 1-{S.shape[1] - 1} (c0, the overall level, left out)", **axis_kw)  # fmt: skip
    ticks = ax.get_yticks()
    ax.set_yticks(ticks, [f"{t + 1:g}" for t in ticks])


def class_means(
    means: Mapping[str, np.ndarray],
    *,
    kind: str = "logmel",
    sample_rate: int = SAMPLE_RATE,
    hop_length: int = HOP_LENGTH,
    log: str | None = None,
    ncols: int = 4,
    title: str | None = None,
) -> Figure:
    """The mean feature of each class in a grid with one shared colour scale.

    Parameters
    ----------
    means : mapping str -> np.ndarray, shape (frames, bins)
        Label -> mean time-major feature over that class's clips, e.g. the mean of
        ``features.compute(waveform)`` (log-mel, natural log) over the class.
    kind : str
        Feature kind of every array (see :func:`spectrogram`).
    sample_rate : int, Hz
    hop_length : int, samples
    log : {"ln", "dB"}, optional
        How log-power arrays are logarithmic (see :func:`spectrogram`; default speechlib's convention).
    ncols : int
        Panels per row.
    title : str, optional
        Figure title (default: "Mean <feature> per class").

    Returns
    -------
    matplotlib.figure.Figure
        One panel per class (titled with the label) and a single colour bar for all of them.
    """
    if not means:
        raise ValueError("means is empty: pass a mapping label -> (frames, bins) array")
    if kind not in _KIND_INFO:
        raise ValueError(f"unknown feature kind {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
    arrays = {label: _as_features(S, f"means[{label!r}]") for label, S in means.items()}
    if _KIND_INFO[kind]["units"] == "dB" and (log or ("ln" if kind == "logmel" else "dB")) == "ln":
        arrays = {label: S * DB_PER_NEPER for label, S in arrays.items()}
        log = "dB"
    vmin = min(float(np.nanmin(S)) for S in arrays.values())
    vmax = max(float(np.nanmax(S)) for S in arrays.values())
    nrows, ncols = _grid(len(arrays), ncols)
    fig = _figure(2.2 * ncols + 0.9, 1.8 * nrows + 0.5)
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True))
    for i, (label, S) in enumerate(arrays.items()):
        ax = axes.ravel()[i]
        spectrogram(
            S, kind=kind, sample_rate=sample_rate, hop_length=hop_length, log=log, ax=ax, colorbar=False,
            vmin=vmin, vmax=vmax, title=label,
        )  # fmt: skip
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.tick_params(labelsize=7)
        if i % ncols:
            ax.set_ylabel("")
        if i < len(arrays) - ncols:
            ax.set_xlabel("")
        else:  # the bottom panel of its column: show its time ticks even when sharex hid them
            ax.xaxis.set_tick_params(labelbottom=True)
    _hide_unused(axes, len(arrays))
    _colorbar(fig, axes.ravel()[0].collections[0], axes, kind, shrink=0.8)
    fig.suptitle(title if title is not None else f"Mean {_KIND_INFO[kind]['name']} per class")
    return fig


def noise_overview(
    recordings: Mapping[str, np.ndarray],
    *,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    title: str | None = "Background-noise recordings",
) -> Figure:
    """Waveform and log-mel spectrogram of each background-noise recording, one row each.

    Parameters
    ----------
    recordings : mapping str -> np.ndarray, shape (n_samples,)
        Name (e.g. ``"white_noise"``) -> waveform, float in [-1, 1].
    sample_rate : int, Hz
    max_seconds : float, optional
        Show only the first ``max_seconds`` of each recording.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        ``len(recordings)`` rows x 2 axes: waveform (time in s) and log-mel (Hz, mel scale, dB
        relative to the recording's peak, one shared colour bar).

    Notes
    -----
    The spectrograms use speechlib's log-mel with a stretched hop: recordings last about a minute,
    so about 120 frames per row are drawn (the features the models see use ``HOP_LENGTH``).
    """
    if not recordings:
        raise ValueError("recordings is empty: pass a mapping name -> waveform")
    names = list(recordings)
    fig = _figure(7.5, 1.1 * len(names) + 0.5)
    axes = np.asarray(fig.subplots(len(names), 2, squeeze=False, width_ratios=[1, 1.3]))
    img = None
    for r, name in enumerate(names):
        x = _as_waveform(recordings[name], f"recordings[{name!r}]")
        if max_seconds is not None:
            x = x[: int(max_seconds * sample_rate)]
        waveform(x, sample_rate=sample_rate, ax=axes[r, 0], title=name)
        hop = max(HOP_LENGTH, x.size // _LONG_FRAMES)
        S = _logmel_db(x, sample_rate, hop_length=hop)
        spectrogram(
            S - S.max(), kind="logmel", sample_rate=sample_rate, hop_length=hop, ax=axes[r, 1], colorbar=False,
            log="dB", vmin=-60.0, vmax=0.0, title=f"{name}: log-mel",
        )  # fmt: skip
        img = axes[r, 1].collections[0]
        if r < len(names) - 1:
            axes[r, 0].set_xlabel("")
            axes[r, 1].set_xlabel("")
    _colorbar(fig, img, axes[:, 1], "logmel", "level (dB re. the recording's peak)", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def augmentation_before_after(
    before: np.ndarray,
    after: np.ndarray | Mapping[str, np.ndarray],
    *,
    sample_rate: int = SAMPLE_RATE,
    title: str | None = None,
) -> Figure:
    """A clip before and after augmentation: waveform and log-mel side by side.

    Parameters
    ----------
    before : np.ndarray, shape (n_samples,)
        The original clip, float in [-1, 1].
    after : np.ndarray, shape (n_samples,), or mapping str -> np.ndarray
        The augmented clip, or name (e.g. ``"noise 10 dB"``) -> augmented clip for several.
    sample_rate : int, Hz
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One row per version ("original" first) x 2 axes (waveform, log-mel); amplitudes and
        colours share one scale so the rows compare directly; one colour bar in dB.
    """
    versions = {"original": _as_waveform(before, "before")}
    if isinstance(after, Mapping):
        versions.update({name: _as_waveform(x, f"after[{name!r}]") for name, x in after.items()})
    else:
        versions["augmented"] = _as_waveform(after, "after")
    return _waveform_logmel_rows(versions, sample_rate=sample_rate, title=title)


def _waveform_logmel_rows(versions: Mapping[str, np.ndarray], *, sample_rate: int, title: str | None) -> Figure:
    """Rows of (waveform, log-mel) with a shared amplitude range and a shared dB scale."""
    feats = {name: _logmel_db(x, sample_rate) for name, x in versions.items()}
    vmax = max(float(S.max()) for S in feats.values())
    vmin = vmax - 80.0
    peak = max(max(float(np.max(np.abs(x))) for x in versions.values()) * 1.05, 0.01)
    fig = _figure(8.0, 1.6 * len(versions) + 0.6)
    axes = np.asarray(fig.subplots(len(versions), 2, squeeze=False, width_ratios=[1, 1.2]))
    for r, (name, x) in enumerate(versions.items()):
        waveform(x, sample_rate=sample_rate, ax=axes[r, 0], title=name, ylim=peak)
        spectrogram(
            feats[name], kind="logmel", sample_rate=sample_rate, ax=axes[r, 1], colorbar=False,
            log="dB", vmin=vmin, vmax=vmax, title=f"{name}: log-mel",
        )  # fmt: skip
        if r < len(versions) - 1:
            axes[r, 0].set_xlabel("")
            axes[r, 1].set_xlabel("")
    _colorbar(fig, axes[0, 1].collections[0], axes[:, 1], "logmel", "level (dB re. full scale)", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def compare_real_synthetic(
    real: Mapping[str, np.ndarray],
    synthetic: Mapping[str, np.ndarray],
    *,
    sample_rate: int = SAMPLE_RATE,
    words: Sequence[str] | None = None,
    title: str | None = "Real (left) and synthetic (right) clips of the same words",
) -> Figure:
    """Real and synthetic clips of the same words side by side (log-mel, shared dB scale).

    Parameters
    ----------
    real, synthetic : mapping str -> np.ndarray, shape (n_samples,)
        Word -> one clip, float in [-1, 1].
    sample_rate : int, Hz
    words : sequence of str, optional
        Words to show, in order (default: the words present in both, in ``real``'s order).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One row per word x 2 log-mel axes titled "<word>: real" and "<word>: synthetic", one
        shared colour bar in dB.
    """
    if words is None:
        words = [w for w in real if w in synthetic]
    missing = [w for w in words if w not in real or w not in synthetic]
    if missing:
        raise ValueError(f"no real and synthetic clip for {missing}; pass words present in both mappings")
    if not words:
        raise ValueError("real and synthetic have no word in common; nothing to compare")
    feats = {}
    for source, clips in (("real", real), ("synthetic", synthetic)):
        for w in words:
            feats[w, source] = _logmel_db(_as_waveform(clips[w], f"{source}[{w!r}]"), sample_rate)
    vmax = max(float(S.max()) for S in feats.values())
    vmin = vmax - 80.0
    fig = _figure(7.5, 1.7 * len(words) + 0.6)
    axes = np.asarray(fig.subplots(len(words), 2, squeeze=False, sharex=True, sharey=True))
    for r, w in enumerate(words):
        for c, source in enumerate(("real", "synthetic")):
            ax = axes[r, c]
            spectrogram(
                feats[w, source], kind="logmel", sample_rate=sample_rate, ax=ax, colorbar=False,
                log="dB", vmin=vmin, vmax=vmax, title=f"{w}: {source}",
            )  # fmt: skip
            if c:
                ax.set_ylabel("")
            if r < len(words) - 1:
                ax.set_xlabel("")
    _colorbar(fig, axes[0, 0].collections[0], axes, "logmel", "level (dB re. full scale)", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


# --- embeddings -----------------------------------------------------------------------------------


def embed(X: np.ndarray, *, method: str = "pca", seed: int = SEED, standardize: bool = True, **kwargs) -> np.ndarray:
    """Project per-clip feature vectors to 2-D for a scatter plot.

    Parameters
    ----------
    X : np.ndarray, shape (N, D), float
        One feature vector per clip (e.g. the mean and standard deviation of each MFCC).
    method : {"pca", "tsne"}
        Principal component analysis (linear, fast) or t-SNE (non-linear, keeps neighbours).
    seed : int
        Random state of t-SNE (and PCA's randomized solver), for reproducible figures.
    standardize : bool
        Scale each column to zero mean and unit variance first, so no feature dominates by its units.
    **kwargs
        Passed to the scikit-learn estimator, e.g. ``perplexity`` or ``max_iter`` for t-SNE
        (default perplexity: ``min(30, (N - 1) / 3)``).

    Returns
    -------
    np.ndarray, shape (N, 2), float32
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 3 or X.shape[1] < 2:
        raise ValueError(f"X must be (N, D) with N >= 3 clips and D >= 2 features, got shape {X.shape}")
    if standardize:
        X = StandardScaler().fit_transform(X)
    if method == "pca":
        out = PCA(n_components=2, random_state=seed, **kwargs).fit_transform(X)
    elif method == "tsne":
        kwargs.setdefault("perplexity", min(30.0, (X.shape[0] - 1) / 3.0))
        out = TSNE(n_components=2, init="pca", random_state=seed, **kwargs).fit_transform(X)
    else:
        raise ValueError(f"unknown embedding method {method!r}; choose 'pca' or 'tsne'")
    return out.astype(np.float32)


def class_colors(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` colours, neighbours in the list far apart in hue: the classes ``yes``/``no`` and ``stop``/``go``,
    adjacent in the label order, never get two shades of one hue.

    Up to 10: ``tab10``. More: ``tab20``'s ten dark shades first, then its ten light ones (``tab20``
    in its own order pairs a dark and a light shade of each hue, which put yes and no both in blue).
    """
    if n <= 10:
        return [mpl.colormaps["tab10"](i) for i in range(n)]
    tab20 = mpl.colormaps["tab20"]
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    return [tab20(order[i % 20]) for i in range(n)]


def embedding(
    points: np.ndarray,
    labels: Sequence[str],
    *,
    title: str = "2-D embedding of the clips",
    classes: Sequence[str] | None = None,
    xlabel: str = "component 1",
    ylabel: str = "component 2",
    ax: Axes | None = None,
) -> Figure:
    """Scatter 2-D points coloured by class, with a legend.

    Parameters
    ----------
    points : np.ndarray, shape (N, 2)
        The embedding (from :func:`embed` or any method).
    labels : sequence of str, length N
        The class of each point.
    title : str
        Axes title (say which method and which features).
    classes : sequence of str, optional
        Legend order (default: sorted labels).
    xlabel, ylabel : str
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        One scatter collection and one legend entry per class.
    """
    P = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels).astype(str)
    if P.ndim != 2 or P.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got shape {P.shape}; reduce with plot.embed(X) first")
    if len(labels) != len(P):
        raise ValueError(f"{len(labels)} labels for {len(P)} points; pass one label per point")
    classes = list(classes) if classes is not None else sorted(set(labels))
    fig, ax = _single_axes(ax, (6.5, 4.8))
    colors = class_colors(len(classes))
    for i, c in enumerate(classes):
        mask = labels == c
        ax.scatter(P[mask, 0], P[mask, 1], s=12, alpha=0.75, color=colors[i], label=c, linewidths=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(title="class", fontsize=8, markerscale=1.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


# --- distributions --------------------------------------------------------------------------------


def histogram(
    values: np.ndarray | Sequence[float] | pd.Series,
    *,
    xlabel: str,
    bins: int | Sequence[float] = 30,
    ylabel: str = "clips",
    title: str | None = None,
    marks: Mapping[str, float] | None = None,
    xlim: tuple[float, float] | None = None,
    log: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """A histogram with labelled axes and optional marked values.

    Parameters
    ----------
    values : array-like, shape (N,)
        The values; NaN are dropped.
    xlabel : str
        What the values are, with units (e.g. ``"duration (s)"``).
    bins : int or sequence of float
        Number of bins or their edges.
    ylabel : str
        What is counted.
    title : str, optional
        Axes title (default: count and median).
    marks : mapping str -> float, optional
        Vertical dashed lines with a legend, e.g. ``{"median": 0.98, "clip length": 1.0}``.
    xlim : (float, float), optional
    log : bool
        Logarithmic count axis (for long-tailed distributions).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        One bar patch per bin; one legend entry per mark.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError(f"no finite values to plot for {xlabel!r}")
    fig, ax = _single_axes(ax, (6.0, 3.0))
    ax.hist(v, bins=bins, range=xlim, color=WAVE_COLOR, edgecolor="white", linewidth=0.4, log=log)
    for i, (name, x) in enumerate((marks or {}).items()):
        ax.axvline(x, color=f"C{(i + 1) % 10}", linestyle="--", linewidth=1.2, label=f"{name}: {x:.3g}")
    if marks:
        ax.legend(fontsize=8)
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else f"{v.size:,} values, median {np.median(v):.3g}")
    return fig


def duration_hist(durations_s: np.ndarray | Sequence[float] | pd.Series, *, clip_seconds: float = 1.0, **kwargs):
    """Histogram of clip durations in seconds, the padded clip length marked.

    Parameters
    ----------
    durations_s : array-like, shape (N,), s
        Duration of each clip (the ``duration`` column of ``datasets.scan``).
    clip_seconds : float, s
        The length every clip is padded or trimmed to (marked).
    **kwargs
        Passed to :func:`histogram` (``bins``, ``title``, ``ax``, ...).

    Returns
    -------
    matplotlib.figure.Figure
    """
    v = np.asarray(durations_s, dtype=np.float64)
    short = float(np.mean(v < clip_seconds)) if v.size else 0.0  # as padding sees it: any sample missing
    kwargs.setdefault("title", f"Clip duration: {short:.1%} of {v.size:,} clips shorter than {clip_seconds:g} s")
    kwargs.setdefault("marks", {"clip length (s)": clip_seconds})
    kwargs.setdefault("log", True)
    return histogram(v, xlabel="duration (s)", **kwargs)


def loudness_hist(rms_db: np.ndarray | Sequence[float] | pd.Series, **kwargs) -> Figure:
    """Histogram of clip loudness as RMS level in dB re. full scale (dBFS).

    Parameters
    ----------
    rms_db : array-like, shape (N,), dBFS
        ``20 * log10(rms)`` of each clip; 0 dBFS is a full-scale square wave, digital silence is -inf
        (dropped).
    **kwargs
        Passed to :func:`histogram`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    v = np.asarray(rms_db, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if finite.size:
        kwargs.setdefault("marks", {"median (dBFS)": float(np.median(finite))})
        kwargs.setdefault(
            "title", f"Loudness: 90% of clips between {np.percentile(finite, 5):.0f} and "
            f"{np.percentile(finite, 95):.0f} dBFS",
        )  # fmt: skip
    return histogram(v, xlabel="RMS level (dBFS)", **kwargs)


def position_hist(
    centres_s: np.ndarray | Sequence[float] | pd.Series, *, clip_seconds: float = 1.0, **kwargs
) -> Figure:
    """Histogram of where the word sits in the clip (its energy centre, in seconds from the start).

    Parameters
    ----------
    centres_s : array-like, shape (N,), s
        Time of each clip's energy centre (or of its loudest frame).
    clip_seconds : float, s
        Clip length; the x axis spans ``[0, clip_seconds]`` and the middle is marked.
    **kwargs
        Passed to :func:`histogram`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    kwargs.setdefault("marks", {"clip middle (s)": clip_seconds / 2})
    kwargs.setdefault("xlim", (0.0, clip_seconds))
    kwargs.setdefault("title", "Where the word sits in the clip")
    return histogram(centres_s, xlabel="word centre (s from clip start)", **kwargs)


def counts_bar(
    counts: pd.Series | Mapping[str, float],
    *,
    title: str,
    ylabel: str = "clips",
    xlabel: str = "",
    highlight: str | Sequence[str] | None = None,
    sort: bool = False,
    annotate: bool | None = None,
    ax: Axes | None = None,
) -> Figure:
    """A bar per category: clips per class, speakers per class, clips per speaker, ...

    Parameters
    ----------
    counts : pandas.Series or mapping str -> number
        Category -> count, drawn in this order (or sorted, descending, with ``sort=True``).
    title : str
    ylabel, xlabel : str
    highlight : str or sequence of str, optional
        Categories drawn in a contrasting colour (e.g. the 10 command words, or ``"unknown"``).
    sort : bool
        Sort bars by count, largest first.
    annotate : bool, optional
        Write each count above its bar (default: when there are at most 15 bars).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        One bar per category; with more than 40 bars the category names are hidden (the axis
        then reads as a distribution).
    """
    s = pd.Series(counts, dtype="float64") if not isinstance(counts, pd.Series) else counts.astype("float64")
    if s.empty:
        raise ValueError(f"no counts to plot for {title!r}")
    if sort:
        s = s.sort_values(ascending=False)
    marked = {highlight} if isinstance(highlight, str) else set(highlight or ())
    names = [str(k) for k in s.index]
    colors = [HIGHLIGHT_COLOR if n in marked else WAVE_COLOR for n in names]
    fig, ax = _single_axes(ax, (max(5.0, min(10.0, 0.35 * len(s) + 2)), 3.2))
    bars = ax.bar(np.arange(len(s)), s.to_numpy(), color=colors, width=0.8)
    if len(s) <= 40:
        ax.set_xticks(
            np.arange(len(s)), names, rotation=45 if len(s) > 6 else 0, ha="right" if len(s) > 6 else "center"
        )
    else:
        ax.set_xticks([])
    if annotate or (annotate is None and len(s) <= 15):
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in s.to_numpy()], fontsize=7, padding=1)
    ax.set_xlim(-0.6, len(s) - 0.4)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    return fig


def split_counts(
    table: pd.DataFrame, *, title: str = "Clips per class and split", ylabel: str = "clips", log: bool = True
) -> Figure:
    """Grouped bars: clips per class (groups) and split (bars within a group), on a log scale by default.

    ``unknown`` gathers twenty words, so it has many times the clips of a command; on a
    linear axis the commands' bars, and their cv and test counts, are too short to read.

    Parameters
    ----------
    table : pandas.DataFrame, index = labels, columns = splits
        Counts, e.g. ``pd.crosstab(manifest.label, manifest.split)`` or
        ``pd.DataFrame(split_info["counts"])``.
    title, ylabel : str
    log : bool
        A logarithmic count axis (default); False for a linear one.

    Returns
    -------
    matplotlib.figure.Figure
        ``len(index) * len(columns)`` bars and one legend entry per split.
    """
    if table.empty:
        raise ValueError("the counts table is empty; pass labels x splits counts")
    table = table.fillna(0)
    n_labels, n_splits = table.shape
    width = 0.8 / n_splits
    fig = _figure(max(6.0, min(12.0, 0.55 * n_labels + 2)), 3.4)
    ax = fig.add_subplot()
    x = np.arange(n_labels)
    for j, split in enumerate(table.columns):
        ax.bar(x - 0.4 + width * (j + 0.5), table[split].to_numpy(dtype=float), width=width, label=str(split))
    ax.set_xticks(x, [str(i) for i in table.index], rotation=45 if n_labels > 6 else 0, ha="right")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(f"{ylabel} (log scale)" if log else ylabel)
    ax.set_title(title)
    ax.legend(title="split", fontsize=8)
    return fig


# --- results --------------------------------------------------------------------------------------


def training_curves(history: Mapping[str, Sequence[float]] | pd.DataFrame, *, title: str | None = None) -> Figure:
    """Loss and accuracy per epoch, training and validation.

    Parameters
    ----------
    history : mapping or pandas.DataFrame
        Keras' ``History.history`` or the CSV log as a DataFrame: columns ``loss`` and
        optionally ``val_loss``, ``accuracy``, ``val_accuracy`` (one value per epoch). An
        ``epoch`` column, if present, is ignored (epochs are numbered from 1).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes for the loss and, when accuracies are present, one for the accuracy; the best
        validation epoch is marked.
    """
    df = pd.DataFrame(dict(history)) if not isinstance(history, pd.DataFrame) else history
    if "loss" not in df:
        raise ValueError(f"history has no 'loss' column (columns: {list(df.columns)}); pass Keras' History.history")
    epochs = np.arange(1, len(df) + 1)
    panels = [("loss", "loss")]
    if "accuracy" in df or "val_accuracy" in df:
        panels.append(("accuracy", "accuracy"))
    fig = _figure(5.0 * len(panels), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    best = int(np.nanargmin(df["val_loss"].to_numpy())) + 1 if "val_loss" in df else None
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        if key in df:
            ax.plot(epochs, df[key], marker="o", markersize=3, label="train")
        if f"val_{key}" in df:
            ax.plot(epochs, df[f"val_{key}"], marker="o", markersize=3, label="validation (cv)")
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", label=f"best cv loss, epoch {best}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel)
        ax.legend(fontsize=8)
        ax.set_xlim(0.5, len(df) + 0.5)
    if title:
        fig.suptitle(title)
    return fig


def confusion_matrix(
    cm: np.ndarray,
    labels: Sequence[str],
    *,
    normalize: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """A confusion matrix, true class by row and predicted class by column, annotated.

    Parameters
    ----------
    cm : np.ndarray, shape (K, K), int
        Counts: ``cm[i, j]`` clips of true class ``i`` predicted as class ``j``
        (``sklearn.metrics.confusion_matrix``).
    labels : sequence of str, length K
        Class names in the order of ``cm``.
    normalize : bool
        Colour and annotate by the fraction of each true class (rows sum to 100%); the count is
        written below the percentage. Otherwise colour by count.
    title : str, optional
        Axes title (default: the overall accuracy).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        The matrix image, K x K text annotations, and a colour bar ("% of true class" or "clips").
    """
    cm = np.asarray(cm)
    k = len(labels)
    if cm.shape != (k, k):
        raise ValueError(f"cm has shape {cm.shape} but there are {k} labels; pass a ({k}, {k}) matrix")
    totals = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)
    values = frac * 100 if normalize else cm.astype(float)
    fig, ax = _single_axes(ax, (0.45 * k + 2.8, 0.45 * k + 1.8))
    img = ax.imshow(values, cmap="Blues", vmin=0, vmax=100 if normalize else max(float(values.max()), 1.0))
    threshold = (100 if normalize else values.max()) / 2
    size = 7 if k <= 12 else 5
    for i in range(k):
        for j in range(k):
            if cm[i, j] == 0 and i != j:
                continue
            text = f"{values[i, j]:.0f}%\n{cm[i, j]:,}" if normalize else f"{cm[i, j]:,}"
            color = "white" if values[i, j] > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=size, color=color, linespacing=0.9)
    ax.set_xticks(range(k), list(labels), rotation=45, ha="right")
    ax.set_yticks(range(k), list(labels))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(title if title is not None else f"Confusion matrix (accuracy {accuracy:.1%}, {cm.sum():,} clips)")
    cbar = fig.colorbar(img, ax=ax, shrink=0.8)
    cbar.set_label("% of true class" if normalize else "clips")
    return fig


def accuracy_vs_cost(
    df: pd.DataFrame,
    *,
    costs: Sequence[str] = ("params", "ms_per_clip"),
    accuracy: str = "accuracy",
    title: str | None = "Accuracy against cost",
) -> Figure:
    """Accuracy of each model against its cost, on a logarithmic cost axis, points labelled.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per model: columns ``model`` (str), ``accuracy`` (fraction in [0, 1]) and the
        cost columns, e.g. ``params`` (count) and ``ms_per_clip`` (ms, batch of 1).
    costs : sequence of str
        Cost columns, one axes each; columns absent from ``df`` are skipped.
    accuracy : str
        The accuracy column.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One log-x scatter per cost column, y "accuracy (%)", each point annotated with its model.
    """
    units = {"params": "parameters", "ms_per_clip": "inference time (ms per clip)", "s_per_epoch": "s per epoch"}
    missing = [c for c in ("model", accuracy) if c not in df]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; columns present: {list(df.columns)}")
    costs = [c for c in costs if c in df]
    if not costs:
        raise ValueError(f"df has none of the cost columns; columns present: {list(df.columns)}")
    fig = _figure(5.2 * len(costs), 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(costs), sharey=True))
    for ax, cost in zip(axes, costs, strict=True):
        ok = df[cost] > 0  # a log axis cannot show zero cost (e.g. the majority-class baseline)
        x, y = df.loc[ok, cost].to_numpy(float), 100 * df.loc[ok, accuracy].to_numpy(float)
        ax.scatter(x, y, s=25, color=WAVE_COLOR, zorder=3)
        for xi, yi, name in zip(x, y, df.loc[ok, "model"], strict=True):
            ax.annotate(str(name), (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(f"{units.get(cost, cost)} (log scale)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    if title:
        fig.suptitle(title)
    return fig


# --- files ----------------------------------------------------------------------------------------


def save(fig: Figure, path: str | Path, *, dpi: int = 100, max_bytes: int = MAX_PNG_BYTES) -> Path:
    """Write a figure as a PNG no larger than ``max_bytes``.

    If the PNG is too large at ``dpi``, it is written again at lower resolutions (down to 50 dpi);
    if it is still too large, the file is removed and ``ValueError`` says what to do.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
        Output file; ``.png`` is appended when the name has no suffix. Parent folders are created.
    dpi : int
        Resolution to try first, dots per inch.
    max_bytes : int
        Size limit (default 200 KB, the limit for figures committed to the repository).

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    if path.suffix == "":
        path = path.with_suffix(".png")
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: save() writes PNG files; use a .png name")
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in sorted({dpi, *(d for d in (80, 65, 50) if d < dpi)}, reverse=True):
        fig.savefig(path, format="png", dpi=attempt)
        size = path.stat().st_size
        if size <= max_bytes:
            return path
    path.unlink()
    raise ValueError(
        f"{path}: the figure is {size / 1024:.0f} KB as a PNG even at {attempt} dpi, above the "
        f"{max_bytes / 1024:.0f} KB limit; make it smaller (fewer panels, smaller figsize) or split it"
    )

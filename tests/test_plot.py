"""speechlib.plot: every figure function on small synthetic inputs (tones and noise).

Checks the structure of the returned figures (axes, labels, limits, colour bars, bars and
legend entries), not their pixels. Functions that compute features from a waveform need
``speechlib.features`` and skip without it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from speechlib import plot
from speechlib.config import HOP_LENGTH, KAGGLE12_LABELS, N_MELS, SAMPLE_RATE

NYQUIST = SAMPLE_RATE / 2


def _tone(freq: float = 440.0, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _noise(seconds: float = 1.0, amplitude: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def _main_axes(fig: Figure) -> list:
    """Axes of the figure that are not colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.get_visible()]


def _colorbars(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def _logmel_ln(frames: int = 101, seed: int = 0) -> np.ndarray:
    """A plausible time-major natural-log mel spectrogram, as features.compute returns it."""
    rng = np.random.default_rng(seed)
    return (rng.normal(-6.0, 2.0, size=(frames, N_MELS))).astype(np.float32)


@pytest.fixture
def need_features():
    return pytest.importorskip("speechlib.features", reason="speechlib.features is not available yet")


# --- waveforms --------------------------------------------------------------------------------------


def test_waveform_time_axis_in_seconds():
    fig = plot.waveform(_tone(seconds=0.5), title="tone")
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "time (s)"
    assert ax.get_ylabel() == "amplitude"
    assert ax.get_title() == "tone"
    assert ax.get_xlim() == pytest.approx((0.0, 0.5))
    assert ax.get_ylim()[1] >= 0.5


def test_waveform_draws_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.waveform(_noise(seconds=0.1), ax=ax) is fig
    assert len(fig.axes) == 1


def test_waveform_rejects_2d_input():
    with pytest.raises(ValueError, match="1-D"):
        plot.waveform(np.zeros((2, 100)))


def test_waveforms_grid_rows_per_class_cols_per_clip():
    clips = {"yes": [_tone(), _noise(), _tone(880)], "no": [_noise(), _tone(220)]}
    fig = plot.waveforms_grid(clips, max_per_class=3)
    axes = fig.axes
    assert len(axes) == 6  # 2 rows x 3 columns (the missing clip is an empty panel)
    assert axes[0].get_ylabel() == "yes"
    assert axes[3].get_ylabel() == "no"
    assert not axes[5].axison
    assert all(ax.get_xlim()[1] == pytest.approx(1.0) for ax in axes[:5])


# --- spectrogram-like features -----------------------------------------------------------------------


def test_spectrogram_logmel_axes_and_db_colorbar():
    fig = plot.spectrogram(_logmel_ln(), kind="logmel")
    (ax,) = _main_axes(fig)
    (cbar,) = _colorbars(fig)
    assert ax.get_xlabel() == "time (s)"
    assert "Hz" in ax.get_ylabel()
    assert ax.get_xlim()[0] == pytest.approx(0.0)
    assert ax.get_xlim()[1] == pytest.approx(1.0, abs=0.02)  # 101 centred 10 ms frames: 0 .. 1 s
    assert 0 <= ax.get_ylim()[0] < ax.get_ylim()[1] <= NYQUIST
    assert ax.get_ylim()[1] == pytest.approx(NYQUIST)
    assert "dB" in cbar.get_ylabel()
    assert cbar.yaxis.get_major_formatter()(-20.0) == "-20 dB"


def test_spectrogram_converts_natural_log_to_db():
    S = np.full((101, N_MELS), np.log(1e-3), dtype=np.float32)  # -30 dB of power
    fig = plot.spectrogram(S, kind="logmel", log="ln")
    mesh = _main_axes(fig)[0].collections[0]
    assert np.asarray(mesh.get_array()).mean() == pytest.approx(-30.0, abs=1e-3)
    fig = plot.spectrogram(S * plot.DB_PER_NEPER, kind="logmel", log="dB")
    assert np.asarray(_main_axes(fig)[0].collections[0].get_array()).mean() == pytest.approx(-30.0, abs=1e-3)


def test_spectrogram_stft_linear_frequency_up_to_nyquist():
    rng = np.random.default_rng(1)
    S = rng.uniform(-80, 0, size=(101, 257)).astype(np.float32)  # n_fft 512
    fig = plot.spectrogram(S, kind="stft")
    (ax,) = _main_axes(fig)
    assert ax.get_yscale() == "linear"
    assert ax.get_ylim() == pytest.approx((0.0, NYQUIST))
    assert ax.get_xlim()[1] == pytest.approx(1.0, abs=0.02)
    assert "dB" in _colorbars(fig)[0].get_ylabel()


def test_spectrogram_time_axis_follows_hop_length():
    S = _logmel_ln(frames=50)
    fig = plot.spectrogram(S, kind="logmel", hop_length=321)
    assert _main_axes(fig)[0].get_xlim()[1] == pytest.approx(49 * 321 / SAMPLE_RATE)


def test_spectrogram_mfcc_has_no_db_colorbar():
    rng = np.random.default_rng(2)
    fig = plot.spectrogram(rng.normal(size=(101, 13)), kind="mfcc")
    (ax,) = _main_axes(fig)
    assert ax.get_ylabel() == "MFCC index"
    assert ax.get_ylim() == pytest.approx((-0.5, 12.5))
    assert "dB" not in _colorbars(fig)[0].get_ylabel()


@pytest.mark.parametrize(("kind", "bins", "ylabel"), [("chroma", 12, "pitch class"), ("tempogram", 100, "BPM")])
def test_spectrogram_other_kinds(kind, bins, ylabel):
    rng = np.random.default_rng(3)
    fig = plot.spectrogram(rng.uniform(0, 1, size=(101, bins)), kind=kind, colorbar=False)
    (ax,) = fig.axes
    assert ylabel in ax.get_ylabel()
    assert ax.get_xlabel() == "time (s)"


def test_spectrogram_refuses_fmax_above_nyquist_and_unknown_kind():
    with pytest.raises(ValueError, match="Nyquist"):
        plot.spectrogram(_logmel_ln(), kind="logmel", fmax=11_025)
    with pytest.raises(ValueError, match="unknown feature kind"):
        plot.spectrogram(_logmel_ln(), kind="cqt")


def test_spectrogram_drops_channel_axis():
    fig = plot.spectrogram(_logmel_ln()[..., None], kind="logmel", colorbar=False)
    assert np.asarray(fig.axes[0].collections[0].get_array()).size == 101 * N_MELS


def test_feature_panel_shows_waveform_and_four_features(need_features):
    fig = plot.feature_panel(_tone(1000) + _noise(amplitude=0.01), title="tone")
    axes = _main_axes(fig)
    assert [ax.get_title() for ax in axes] == [
        "waveform", "STFT log-power", "log-mel", "MFCC 1-12 (c0, the overall level, left out)", "chroma"
    ]  # fmt: skip
    assert len(_colorbars(fig)) == 4
    mfcc = axes[3]  # c0 is not drawn: 12 rows, indexed from 1, on a scale symmetric about 0
    assert np.asarray(mfcc.collections[0].get_array()).size % 12 == 0
    assert mfcc.get_yticklabels()[0].get_text() == "1"
    low, high = mfcc.collections[0].get_clim()
    assert low == pytest.approx(-high)
    for ax in axes[1:3]:  # STFT and log-mel: Hz, at most the Nyquist frequency
        assert ax.get_ylim()[1] <= NYQUIST
    for ax in axes:
        assert ax.get_xlim()[1] == pytest.approx(1.0, abs=0.02)
    assert fig.get_suptitle() == "tone"


def test_feature_panel_tone_lands_in_its_mel_band(need_features):
    """The brightest log-mel row of a 1 kHz tone is drawn at about 1 kHz on the frequency axis."""
    fig = plot.feature_panel(_tone(1000), kinds=("logmel",))
    mesh = _main_axes(fig)[1].collections[0]
    values = np.asarray(mesh.get_array()).reshape(N_MELS, -1)
    row = int(values.mean(axis=1).argmax())
    y_edges = np.unique(mesh.get_coordinates()[:, 0, 1])
    centre = (y_edges[row] + y_edges[row + 1]) / 2
    assert 800 < centre < 1250


def test_class_means_share_one_colour_scale():
    means = {label: _logmel_ln(seed=i) + i for i, label in enumerate(KAGGLE12_LABELS[:6])}
    fig = plot.class_means(means, ncols=4)
    axes = _main_axes(fig)
    assert [ax.get_title() for ax in axes] == KAGGLE12_LABELS[:6]
    assert len(_colorbars(fig)) == 1
    assert "dB" in _colorbars(fig)[0].get_ylabel()
    climits = {ax.collections[0].get_clim() for ax in axes}
    assert len(climits) == 1
    assert all(ax.get_ylim()[1] <= NYQUIST for ax in axes)


def test_noise_overview_waveform_and_spectrogram_per_recording(need_features):
    recordings = {"white_noise": _noise(seconds=3.0), "tone": _tone(seconds=2.0)}
    fig = plot.noise_overview(recordings)
    axes = _main_axes(fig)
    assert len(axes) == 4
    assert axes[0].get_title() == "white_noise"
    assert axes[0].get_xlim()[1] == pytest.approx(3.0)
    assert axes[3].get_xlim()[1] == pytest.approx(2.0, abs=0.05)
    assert all(ax.get_ylim()[1] <= NYQUIST for ax in (axes[1], axes[3]))
    assert len(_colorbars(fig)) == 1


def test_augmentation_before_after_rows(need_features):
    clean = _tone()
    fig = plot.augmentation_before_after(clean, {"noise": clean + _noise(), "quiet": 0.1 * clean})
    axes = _main_axes(fig)
    assert len(axes) == 6
    assert [axes[i].get_title() for i in (0, 2, 4)] == ["original", "noise", "quiet"]
    assert len({ax.get_ylim() for ax in axes[0::2]}) == 1  # one amplitude scale
    assert len({ax.collections[0].get_clim() for ax in axes[1::2]}) == 1  # one dB scale
    single = plot.augmentation_before_after(clean, clean[::-1].copy())
    assert len(_main_axes(single)) == 4


def test_compare_real_synthetic_side_by_side(need_features):
    real = {"yes": _tone(300), "no": _noise(), "up": _tone(500)}
    synthetic = {"no": _tone(700), "yes": _tone(900)}
    fig = plot.compare_real_synthetic(real, synthetic)
    titles = [ax.get_title() for ax in _main_axes(fig)]
    assert titles == ["yes: real", "yes: synthetic", "no: real", "no: synthetic"]
    with pytest.raises(ValueError, match="up"):
        plot.compare_real_synthetic(real, synthetic, words=["up"])


# --- embeddings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "kwargs"), [("pca", {}), ("tsne", {"max_iter": 250})])
@pytest.mark.slow
def test_embed_returns_two_columns(method, kwargs):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(15, 6))
    Y = plot.embed(X, method=method, seed=1, **kwargs)
    assert Y.shape == (15, 2)
    np.testing.assert_allclose(Y, plot.embed(X, method=method, seed=1, **kwargs))
    with pytest.raises(ValueError, match="method"):
        plot.embed(X, method="umap")


def test_embed_separates_clusters_along_first_component():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 5))
    X[:30] += 3  # two clusters apart along the diagonal: the direction of largest variance
    Y = plot.embed(X, method="pca")
    assert abs(Y[:30, 0].mean() - Y[30:, 0].mean()) > 2


def test_embedding_one_legend_entry_per_class():
    rng = np.random.default_rng(6)
    labels = ["yes"] * 10 + ["no"] * 10 + ["up"] * 5
    fig = plot.embedding(rng.normal(size=(25, 2)), labels, title="PCA of MFCC statistics")
    (ax,) = fig.axes
    assert ax.get_title() == "PCA of MFCC statistics"
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["no", "up", "yes"]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 25


def test_embedding_checks_shapes():
    with pytest.raises(ValueError, match="one label per point"):
        plot.embedding(np.zeros((3, 2)), ["a", "b"])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot.embedding(np.zeros((3, 3)), ["a", "b", "c"])


# --- distributions ----------------------------------------------------------------------------------


def test_histogram_bins_labels_and_marks():
    fig = plot.histogram(np.arange(100.0), xlabel="value (units)", bins=10, marks={"median": 49.5})
    (ax,) = fig.axes
    assert len(ax.patches) == 10
    assert ax.get_xlabel() == "value (units)"
    assert ax.get_ylabel() == "clips"
    assert len(ax.get_legend().get_texts()) == 1


def test_duration_loudness_position_histograms():
    rng = np.random.default_rng(7)
    one_sample_short = 15_999 / 16_000  # padded like any other short clip: the title counts it
    fig = plot.duration_hist(np.r_[np.ones(90), rng.uniform(0.4, 0.99, 9), one_sample_short], bins=20)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "duration (s)"
    assert "10.0% of 100 clips" in ax.get_title()
    fig = plot.loudness_hist(np.r_[rng.normal(-25, 5, 200), -np.inf])
    assert "dBFS" in fig.axes[0].get_xlabel()
    fig = plot.position_hist(rng.uniform(0.2, 0.8, 200))
    assert fig.axes[0].get_xlim() == pytest.approx((0.0, 1.0))
    assert "(s" in fig.axes[0].get_xlabel()


def test_histogram_without_values_raises():
    with pytest.raises(ValueError, match="no finite values"):
        plot.histogram([np.nan], xlabel="x")


def test_counts_bar_highlights_and_annotates():
    counts = pd.Series([30, 20, 50], index=["yes", "no", "unknown"])
    fig = plot.counts_bar(counts, title="clips per class", highlight="unknown", sort=True)
    (ax,) = fig.axes
    assert len(ax.patches) == 3
    assert [t.get_text() for t in ax.get_xticklabels()] == ["unknown", "yes", "no"]
    colors = [p.get_facecolor() for p in ax.patches]
    assert colors[0] != colors[1] and colors[1] == colors[2]
    assert ax.get_title() == "clips per class"
    assert [t.get_text() for t in ax.texts] == ["50", "30", "20"]


def test_counts_bar_many_categories_hides_names():
    fig = plot.counts_bar({f"spk{i}": i % 7 + 1 for i in range(200)}, title="clips per speaker")
    ax = fig.axes[0]
    assert len(ax.patches) == 200
    assert len(ax.get_xticks()) == 0


def test_split_counts_grouped_bars():
    table = pd.DataFrame({"train": [80, 70, 60], "cv": [10, 9, 8], "test": [10, 11, 12]}, index=["yes", "no", "up"])
    fig = plot.split_counts(table)
    (ax,) = fig.axes
    assert len(ax.patches) == 9
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "cv", "test"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["yes", "no", "up"]
    assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()
    assert plot.split_counts(table, log=False).axes[0].get_yscale() == "linear"


@pytest.mark.parametrize("n", [3, 12, 35])
def test_class_colors_are_distinct_and_neighbours_differ_in_hue(n):
    import colorsys

    colors = plot.class_colors(n)
    assert len(colors) == n
    assert len(set(colors[:20])) == min(n, 20)
    hues = [colorsys.rgb_to_hsv(*c[:3])[0] for c in colors]
    grey = [colorsys.rgb_to_hsv(*c[:3])[1] < 0.15 for c in colors]
    for i in range(min(n, 20) - 1):  # yes/no, stop/go: next to each other in the label order
        if not (grey[i] or grey[i + 1]):
            assert abs(hues[i] - hues[i + 1]) > 0.03, (i, colors[i], colors[i + 1])


# --- results ----------------------------------------------------------------------------------------


def test_training_curves_from_dict_and_dataframe():
    history = {
        "loss": [2.0, 1.0, 0.6],
        "val_loss": [2.1, 0.9, 1.0],
        "accuracy": [0.3, 0.6, 0.8],
        "val_accuracy": [0.3, 0.7, 0.68],
    }
    fig = plot.training_curves(history)
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert "epoch 2" in fig.axes[0].get_legend().get_texts()[-1].get_text()
    fig = plot.training_curves(pd.DataFrame({"epoch": [0, 1], "loss": [1.0, 0.5]}))
    assert len(fig.axes) == 1
    assert len(fig.axes[0].lines) == 1
    with pytest.raises(ValueError, match="loss"):
        plot.training_curves({"accuracy": [0.5]})


def test_confusion_matrix_annotations_and_colorbar():
    cm = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 10]])
    labels = ["yes", "no", "silence"]
    fig = plot.confusion_matrix(cm, labels)
    ax = _main_axes(fig)[0]
    assert ax.get_xlabel() == "predicted class"
    assert ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    texts = [t.get_text() for t in ax.texts]
    assert "80%\n8" in texts and "100%\n10" in texts
    assert "90.0%" in ax.get_title()
    assert "%" in _colorbars(fig)[0].get_ylabel()
    counts = plot.confusion_matrix(cm, labels, normalize=False)
    assert "8" in [t.get_text() for t in _main_axes(counts)[0].texts]
    with pytest.raises(ValueError, match="labels"):
        plot.confusion_matrix(cm, labels[:2])


def test_accuracy_vs_cost_log_x_labelled_points():
    df = pd.DataFrame(
        {
            "model": ["majority", "cnn", "ds_cnn"],
            "accuracy": [0.1, 0.9, 0.93],
            "params": [0, 100_000, 20_000],
            "ms_per_clip": [0.01, 2.0, 1.0],
        }
    )
    fig = plot.accuracy_vs_cost(df)
    assert len(fig.axes) == 2
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    assert fig.axes[0].get_ylabel() == "accuracy (%)"
    assert [t.get_text() for t in fig.axes[0].texts] == ["cnn", "ds_cnn"]  # zero parameters cannot sit on a log axis
    assert len(fig.axes[1].texts) == 3
    with pytest.raises(ValueError, match="accuracy"):
        plot.accuracy_vs_cost(df.drop(columns="accuracy"))


# --- files ------------------------------------------------------------------------------------------


def test_save_writes_small_png(tmp_path):
    fig = plot.spectrogram(_logmel_ln(), kind="logmel", title="a log-mel")
    path = plot.save(fig, tmp_path / "imgs" / "logmel")
    assert path == tmp_path / "imgs" / "logmel.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 1_000 < len(data) < plot.MAX_PNG_BYTES


def test_save_lowers_resolution_then_refuses(tmp_path):
    rng = np.random.default_rng(8)
    fig = Figure(figsize=(8, 8))
    fig.add_subplot().imshow(rng.uniform(size=(400, 400)), interpolation="nearest")
    with pytest.raises(ValueError, match="KB"):
        plot.save(fig, tmp_path / "big.png", max_bytes=20_000)
    assert not (tmp_path / "big.png").exists()
    path = plot.save(fig, tmp_path / "ok.png", dpi=100, max_bytes=400_000)
    assert path.stat().st_size <= 400_000
    with pytest.raises(ValueError, match="PNG"):
        plot.save(fig, tmp_path / "x.jpg")


def test_hop_length_constant_matches_frame_time():
    """Sanity of the time axis convention: 101 frames at a 10 ms hop span 1 s."""
    assert (101 - 1) * HOP_LENGTH / SAMPLE_RATE == pytest.approx(1.0)


def test_returned_figures_show_as_png_in_notebooks():
    fig = plot.waveform(_tone(seconds=0.1))
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"

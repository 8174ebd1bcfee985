"""Render the benchmark results in bench/results/ as the README's results table.

Every figure in the README's "Results" section comes from a file that a
benchmark in this folder wrote (JSON, or the CSV of runs of
bench/model_experiments_real.py); this script only formats them, so the README
can never show a number that no command measured.

Usage::

    python bench/featurize.py && python bench/spark_featurize.py && python bench/train.py
    python bench/report.py            # prints Markdown to paste into README.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _load_runs(name: str):
    """bench/results/<name>.csv (one row per run) as a DataFrame, or None."""
    import pandas as pd

    path = RESULTS / f"{name}.csv"
    return pd.read_csv(path) if path.is_file() else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _machine(result: dict) -> str:
    machine = result.get("machine", {})
    cores = machine.get("cores") or machine.get("cpu_count")
    load = result.get("load_average_1min", {}).get("before") or (machine.get("load_average") or [None])[0]
    text = f"{cores} cores, {machine.get('cpu_model', '?')}"
    return text + (f", 1-min load {load:.1f} at start" if load is not None else "")


def featurize_rows(result: dict) -> list[str]:
    f, b, r, s = result["featurizer"], result["baselines"], result["ratios"], result["store"]
    t = result["targets"]
    return [
        f"| log-mel featurizer, {f['workers']} workers, {result['files']:,} files | {_fmt(f['files_per_s'])} files/s "
        f"| ≥ {t['files_per_s']:,} files/s | `{result['command']}` |",
        f"| — against the original Spark per-file loop ({_fmt(b['spark_loop']['files_per_s'])} files/s) "
        f"| {_fmt(r['vs_spark_loop'], 2)}x | ≥ {t['speedup_vs_spark_loop']:g}x | same run |",
        f"| — against the original course loop ({_fmt(b['course_loop']['files_per_s'])} files/s) "
        f"| {_fmt(r['vs_course_loop'], 2)}x | – | same run |",
        f"| peak memory of the featurizer (all processes) | {_fmt(f['peak_rss_mb'], 0)} MB "
        f"| < {t['peak_rss_mb']:,} MB | same run |",
        f"| feature store: compression, write, read | {s['compression_ratio']:.2f}x, "
        f"{_fmt(s['write_mb_per_s'])} MB/s, {_fmt(s['read_mb_per_s'])} MB/s | – | same run |",
    ]


def spark_rows(result: dict) -> list[str]:
    res, ratios, targets = result["results"], result["ratios"], result["targets"]
    return [
        f"| Spark local[2] log-mel, {result['clips']:,} clips | {_fmt(res['spark_logmel']['files_per_s'])} files/s "
        f"| – | `{result['command']}` |",
        f"| — against the local featurizer ({_fmt(res['local_featurizer']['files_per_s'])} files/s) "
        f"| {_fmt(ratios['spark_logmel_vs_local_featurizer'], 2)}x "
        f"| ≥ {targets['spark_logmel_vs_local_featurizer']:g}x | same run |",
        f"| — against the original binaryFiles + RDD map ({_fmt(res['original_binaryfiles_rdd']['files_per_s'])} "
        f"files/s) | {_fmt(ratios['spark_logmel_vs_original'], 2)}x | ≥ {targets['spark_logmel_vs_original']:g}x "
        "| same run |",
    ]


def train_rows(result: dict) -> list[str]:
    final, course = result["training"]["final"], result["training"]["course"]
    inference = result.get("inference", {})
    command = result["command"] if result["command"].startswith("python") else f"python bench/{result['command']}"
    rows = [
        f"| training, {final['model']} ({final['params']:,} params) | {_fmt(final['samples_per_s'])} samples/s "
        f"| – | `{command}` |",
        f"| — against the course's raw-waveform CNN ({course['params']:,} params, "
        f"{_fmt(course['samples_per_s'])} samples/s) | {_fmt(result['speedup_per_sample'], 1)}x per sample "
        f"| ≥ {result['target_speedup']:g}x | same run |",
    ]
    if inference.get("ms_per_clip_wav_to_label") is not None:
        rows.append(
            f"| inference, wav to label, batch 1, one core | {_fmt(inference['ms_per_clip_wav_to_label'], 2)} ms/clip "
            "| – | same run |"
        )
    return rows


REAL_SPEECH_NAMES = {
    "final": "the final recipe (shift, noise, gain, SpecAugment)",
    "no_shift": "without time shift",
    "no_noise": "without background noise",
    "no_gain": "without gain",
    "no_spec_augment": "without SpecAugment",
    "no_augmentation": "without any augmentation",
    "mixup": "the final recipe + mixup",
    "no_noise_gain": "without background noise and gain (shift and SpecAugment only)",
    "pretrained": "pre-trained on the synthetic default, then the final recipe",
    "pretrained_no_noise_gain": "pre-trained on the synthetic default, then fine-tuned without noise and gain",
    "synthetic": "trained on the synthetic default only (no real speech)",
}


REAL_SPEECH_TARGETS = {
    "final": "≥ 0.93",
    "pretrained": "≥ 0.93",
    "pretrained_no_noise_gain": "≥ 0.93",
    "synthetic": "≥ 0.60",
}  # the targets of the project


def real_speech_what(name: str) -> str:
    """A real-speech row in words: its variant, its training seed when another, or the members of an ensemble."""
    if "+" in name:
        return "the mean of the logits of " + " and ".join(f"`{member}`" for member in name.split("+"))
    variant, _, seed = name.partition("@s")
    return REAL_SPEECH_NAMES.get(variant, variant) + (f" (training seed {seed})" if seed else "")


def real_speech_rows(result: dict) -> list[str]:
    rows = []
    order = list(REAL_SPEECH_NAMES)

    def rank(row: dict) -> tuple:
        """Ensembles first (of two members before more; members of two recipes before one recipe's seeds), then
        the variants in REAL_SPEECH_NAMES' order, each before its other seeds."""
        if "+" in row["variant"]:
            members = row["variant"].split("+")
            recipes = {m.split("@")[0] for m in members}
            return (0, len(members), len(recipes) < len(members), row["variant"].count("@"), row["variant"])
        variant = row["variant"].split("@")[0]
        return (1, order.index(variant) if variant in order else 99, False, row["variant"].count("@"), row["variant"])

    for row in sorted(result["rows"], key=rank):
        low, high = row["accuracy_ci95"]
        spread = f", folds ±{row['per_fold_std']:.3f}" if row.get("per_fold_std") is not None else ""
        partial = "" if row["folds_done"] == result["folds"] else f" ({row['folds_done']} of {result['folds']} folds)"
        what = real_speech_what(row["variant"])
        model = "" if row["variant"] == "synthetic" else f"{row['model']}, "
        paired = ""
        v = row.get("vs") or ({"variant": "final", **row["vs_final"]} if row.get("vs_final") else None)
        if v:  # the same clips as another variant: the paired difference separates them
            base = "the final recipe" if v["variant"] == "final" else f"`{v['variant']}`"
            paired = (f"; against {base} on the same clips {v['difference']:+.3f} (95% CI "
                      f"{v['ci95'][0]:+.3f} to {v['ci95'][1]:+.3f}, McNemar p {v['p_value']:.3f})")  # fmt: skip
        ensemble = "+" in row["variant"]
        target = "–" if partial else "≥ 0.93" if ensemble else REAL_SPEECH_TARGETS.get(row["variant"], "–")
        options = row.get("options", result.get("options"))  # a row's own options where a run recorded them
        options = f" {options}" if options else ""
        which = f"--ensembles {row['variant']}" if ensemble else f"--variants {row['variant'].split('@')[0]}"
        cost = ""
        if row.get("ms_per_clip") is not None:
            cost = (f"; {row['params']:,} parameters, {row['ms_per_clip']:.2f} ms/clip on one core against "
                    f"{row['member_ms_per_clip']:.2f} for one member")  # fmt: skip
        rows.append(
            f"| real speech, speaker-grouped {result['folds']}-fold CV over {row['clips']:,} clips{partial}: "
            f"{model}{what} | {row['accuracy']:.3f} (95% CI {low:.3f}-{high:.3f}; macro F1 {row['macro_f1']:.3f}"
            f"{spread}{paired}{cost}) | {target} | "
            f"`python bench/real_speech.py {which}"
            + (f" --epochs {row['epochs']}" if row.get("epochs") else "")
            + f"{options}` |"
        )
    return rows


def model_ranking_rows(runs) -> list[str]:
    """Notebook 3's comparison repeated on real speech (bench/model_experiments_real.py's runs): the leaders with
    their spread over seeds, the model notebook 3's rule picks there, and the agreement with notebook 3's ranking."""
    import pandas as pd

    from speechlib import experiments

    table = experiments.summarize(runs)
    keras = table[table["params"].notna()]
    first = runs.iloc[0]
    epochs = int(runs["max_epochs"].max())
    setting = (f"notebook 3's comparison on real speech ({first['dataset']}: {int(first['train_rows']):,} training "
               f"clips, scored on {int(first['num_samples'])} cv clips; every model the same recipe, at most {epochs} "
               "epochs, early stopping on cv macro F1)")  # fmt: skip
    chosen = experiments.choose_final(keras, tolerance=0.01)
    spread = f" ± {chosen['macro_f1_std']:.3f} over {chosen['seeds']} seeds" if chosen["seeds"] > 1 else ""
    rows = [
        f"| {setting}: the model notebook 3's rule picks (cv macro F1 first; within 1 point, fewest parameters) | "
        f"{chosen['model']} (cv macro F1 {chosen['macro_f1_mean']:.3f}{spread}) | – | "
        "`python bench/model_experiments_real.py` |"
    ]
    for row in keras[keras["seeds"] > 1].itertuples():
        rows.append(
            f"| — {row.model} ({int(row.params):,} parameters, {row.macs / 1e6:.1f} M multiply-adds) | "
            f"cv macro F1 {row.macro_f1_mean:.3f} ± {row.macro_f1_std:.3f} over {row.seeds} seeds (accuracy "
            f"{row.accuracy_mean:.3f} ± {row.accuracy_std:.3f}) | – | same run |"
        )
    others = ", ".join(f"{r.model} {r.macro_f1_mean:.3f}" for r in table[table["seeds"] == 1].itertuples())
    rows.append(f"| — the models run with one seed: cv macro F1 | {others} | – | same run |")
    synthetic = RESULTS / "model_experiments.csv"
    if synthetic.is_file():
        rankings = experiments.compare_rankings(pd.read_csv(synthetic), runs)
        leaders = rankings.attrs["leaders"]
        moved = "; ".join(
            f"{r.model} {r.synthetic_rank} → {r.real_rank}" for r in rankings[rankings["moved"]].itertuples()
        )
        rows.append(
            f"| — against notebook 3's ranking on the synthetic default ({len(rankings)} models; rank there → rank "
            f"here where it moved 3 or more places) | Spearman {rankings.attrs['spearman']:.2f}; leader "
            f"{leaders['synthetic']} there, {leaders['real']} here; {moved or 'none moved 3 places'} | – | same run "
            "and notebook 3 |"
        )
    return rows


def _accuracy(row: dict, prefix: str, detail: str) -> str:
    """'0.946 (95% CI 0.898-0.973; DETAIL; 57 epochs)' from a row of evaluate.accuracy_summary's figures."""
    low, high = row[f"{prefix}_accuracy_ci95"]
    epochs = f"; {row['epochs_run']} epochs" if row.get("epochs_run") is not None else ""
    return f"{row[f'{prefix}_accuracy']:.3f} (95% CI {low:.3f}-{high:.3f}; {detail}{epochs})"


README_PATH_NAMES = {
    "pretrained_ensemble": "the mean of the logits of the two fine-tuned models below (`speechlib ensemble`)",
    "pretrained": "pre-trained on the synthetic default (`--init_from`), then the final recipe",
    "pretrained_no_noise_gain": "pre-trained on the synthetic default, then fine-tuned without noise and gain",
    "scratch": "the final recipe from random weights",
}


def readme_path_rows(result: dict) -> list[str]:
    rows = []
    for row in result["rows"]:
        detail = f"{row['test_clips']} clips; macro F1 {row['test_macro_f1']:.3f}"
        rows.append(
            f"| README's real-data path ({result['data']}: split, featurized, trained by train_keras.py), "
            f"{row['model']}, {README_PATH_NAMES.get(row['variant'], row['variant'])}: its own test split | "
            f"{_accuracy(row, 'test', detail)} | "
            f"≥ {result['target_accuracy']:.2f} | "
            f"`{row['command']}` (`python bench/readme_path.py`) |"
        )
    return rows


def final_model_metrics() -> dict | None:
    """metrics.json of the final model trained on the synthetic default (train_keras.py or notebook 4)."""
    from speechlib import config, train

    path = config.work_dir(config.synthetic_dir(small=False), small=False) / "models" / train.DEFAULT_MODEL
    path = path / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def synthetic_test_rows(result: dict) -> list[str]:
    test = result["test"]
    correct = round(test["accuracy"] * test["num_samples"])
    made_by = result.get("created_by", "train_keras.py")
    epochs = (result.get("args") or {}).get("epochs")
    epochs = result["epochs_run"] if epochs in (None, "None") else epochs  # the budget the run had, to reproduce it
    script = f"python train_keras.py --epochs {epochs}"
    command = f"`{script}`" if made_by.endswith("train_keras.py") else f"`speechlib course run` ({made_by})"
    return [
        f"| final model {result['model']} ({result['params']:,} params), synthetic default's test split: accuracy "
        f"| {100 * test['accuracy']:.3f}% ({correct:,}/{test['num_samples']:,}; macro F1 {test['macro_f1']:.3f}; "
        f"{result['epochs_run']} epochs{', best ' + str(result['best_epoch']) if 'best_epoch' in result else ''}) "
        f"| ≥ 97% | {command} |"
    ]


EXPORT_ORDER = ("keras", "saved_model", "tflite float", "tflite float16", "tflite int8", "tflite waveform float")


def export_rows(result: dict) -> list[str]:
    formats, targets = result["formats"], result["targets"]
    float_kb = formats["tflite float"]["bytes"] / 1024
    rows = []
    for name in [n for n in EXPORT_ORDER if n in formats]:
        row = formats[name]
        target = "–"
        if name == "tflite int8":
            target = (
                f"≤ {targets['int8_size_vs_float_max']:.0%} of float, accuracy within "
                f"{100 * targets['int8_accuracy_drop_max']:.0f} point, "
                f"agreement ≥ {targets['int8_agreement_min']:.0%}, "
                f"< {targets['int8_ms_per_clip_max']:.0f} ms/clip"
            )
        rows.append(
            f"| {result['model']} as {name}, synthetic test split ({result['test_clips']:,} clips), one core | "
            f"{row['bytes'] / 1024:,.0f} KB ({row['size_vs_float']:.2f}x the float TFLite file of {float_kb:,.0f} KB), "
            f"accuracy {row['accuracy']:.4f}, agreement with Keras {row['agreement']:.1%}, "
            f"{row['ms_per_clip']:.2f} ms/clip | {target} | `{result['command']}` |"
        )
    return rows


def _substitutions(point: dict) -> str:
    """Keywords heard as another keyword, beside the false accepts (results recorded before they were counted apart
    have none)."""
    if "substitutions" not in point:
        return ""
    n = point["substitutions"]
    return f"; {n} keyword{'s' if n != 1 else ''} heard as another ({point['substitutions_per_hour']:.1f}/h)"


def _false_accept_sources(point: dict) -> str:
    """What the false accepts fired on (results recorded before they were told apart have no such field)."""
    sources = point.get("false_accepts_on")
    if not sources or not point["false_accepts"]:
        return ""
    words = {"unknown word": ("an unknown word", "unknown words"), "keyword": ("a keyword again", "keywords again"),
             "noise": ("noise alone", "noise alone")}  # fmt: skip
    of = f" (of {point['unknown_words']} in the audio)" if "unknown_words" in point else ""
    said = ", ".join(f"{n} on {words[k][n != 1]}{of if k == 'unknown word' else ''}" for k, n in sources.items() if n)
    return f": {said}"


def _operating_point(data: dict) -> str:
    """The threshold, and the smoothing when it was chosen on cv too."""
    if "smooth_choices" in data:
        return f"smoothing over {data['smooth_windows']} windows and threshold {data['threshold']} chosen on cv audio"
    return f"threshold {data['threshold']} chosen on cv audio"


def streaming_rows(result: dict) -> list[str]:
    targets, rows = result["targets"], []
    for name, data in result["datasets"].items():
        real, _, spec = name.partition(" ")
        model = f"ensemble of {spec.replace('+', ' and ')}" if "+" in spec else spec or "final recipe"
        what = (f"real dev subset (res8, {model}, trained on its training speakers)" if real == "real"
                else "synthetic default")  # fmt: skip
        whose = f"the real dev subset's res8, {model}" if real == "real" else "the synthetic default's model"
        passes = data.get("test_passes", 1)
        each = f" (each test clip {passes} times)" if passes > 1 else ""
        for snr, point in sorted(data["test"].items(), key=lambda kv: float(kv[0])):
            target = "–"
            if real == "real" and float(snr) == 10.0:
                target = (
                    f"recall ≥ {targets['real_recall_min']:.0%} at ≤ {targets['real_false_accepts_per_hour_max']:.0f} "
                    "false accept/h"
                )
            rows.append(
                f"| streaming detection, {what}: {point['keywords']} keywords in {point['hours']:.2f} h of the test "
                f"split's noise{each} at {float(snr):.0f} dB SNR, {_operating_point(data)} | "
                f"recall {point['recall']:.3f} at {point['false_accepts_per_hour']:.1f} false accepts/h "
                f"({point['false_accepts']} in all{_false_accept_sources(point)}){_substitutions(point)} | {target} | "
                f"`{data.get('command', result['command'])}` |"
            )
        rtf = data["real_time_factor"]
        rows.append(
            f"| detector real-time factor ({whose}, {data['hop_seconds'] * 1000:.0f} ms hop, one core) | "
            + ", ".join(f"{k} {v:.3f}" for k, v in rtf.items())
            + f" | ≤ {targets['real_time_factor_max']} | same run |"
        )
    return rows


def ctc_rows(result: dict) -> list[str]:
    rows = []
    for name, data in result["datasets"].items():
        what = "real dev subset (trained on its training speakers)" if name == "real" else "synthetic default"
        g, b, lab, det = data["ctc_greedy"], data["ctc_beam"], data["ctc_greedy_labels"], data["detector_labels"]
        target = f"≤ {result['targets']['synthetic_wer_max']:.0%}" if name == "synthetic" else "–"
        rows.append(
            f"| CTC word model (conv + 2 BiGRU, {data['train']['steps']:,} steps), {what}: WER on "
            f"{data['test_utterances']} test utterances ({g['words']:,} words) | greedy {g['wer']:.3f} "
            f"({g['substitutions']} sub, {g['deletions']} del, {g['insertions']} ins), beam {b['wer']:.3f} "
            f"| {target} | `{result['command']}` |"
        )
        if "ctc_confident" in data:
            c = data["ctc_confident"]
            rows.append(
                f"| — greedy, leaving out words of mean posterior below {data['ctc_min_score']:.1f} (chosen on cv, "
                f"`ctc.choose_min_score`) | {c['wer']:.3f} ({c['substitutions']} sub, {c['deletions']} del, "
                f"{c['insertions']} ins) | – | same run |"
            )
            lab = data["ctc_confident_labels"]  # both decoders tuned on cv: the comparison the target names
        paired = data.get("ctc_minus_detector_labels")
        interval = (f" (CTC minus detector {paired['difference']:+.3f}, 95% CI {paired['ci95'][0]:+.3f} to "
                    f"{paired['ci95'][1]:+.3f} over {paired['utterances']} utterances)" if paired else "")  # fmt: skip
        rows.append(
            f"| — against the streaming keyword detector (its threshold and refractory period chosen on cv), on the "
            f"classifier's labels (commands + unknown) | CTC {lab['wer']:.3f}, detector {det['wer']:.3f}{interval} | "
            "CTC ahead | same run |"
        )
    return rows


def serve_rows(result: dict) -> list[str]:
    burst, long, rss, base = result["burst"], result["long"], result["rss_mb"], result["baseline"]
    health = result.get("health_during_long") or {}
    return [
        f"| web app (`speechlib serve`, {result['model']}) on 127.0.0.1: {burst['requests']} POST /api/predict at once "
        f"| {_fmt(burst['throughput_per_s'])} requests/s, p50 {_fmt(burst['p50_ms'], 0)} ms, p99 "
        f"{_fmt(burst['p99_ms'], 0)} ms, {burst['errors']} errors | 0 errors | `{result['command']}` |",
        f"| — {long['requests']:,} requests, {long['concurrency']} in flight | {_fmt(long['throughput_per_s'])} "
        f"requests/s ({result['throughput_vs_baseline']:.2f}x "
        f"the in-process rate of {_fmt(base['per_s'])}/s), p50 {_fmt(long['p50_ms'], 0)} ms, p99 "
        f"{_fmt(long['p99_ms'], 0)} ms, {long['errors']} errors, {long['label_mismatches']} wrong labels | 0 errors "
        "| same run |",
        f"| — server memory (RSS) at start, after the burst, at the end; /health during the long run "
        f"| {_fmt(rss['start'], 0)}, {_fmt(rss['after_burst'], 0)}, {_fmt(rss['end'], 0)} MB; p50 "
        f"{_fmt(health.get('p50_ms'), 0)} ms, max {_fmt(health.get('max_ms'), 0)} ms | flat | same run |",
    ]


OWN_DATA_NAMES = {
    "scratch": "from random weights",
    "pretrained": "from the synthetic default's model (`--init_from`: its body, a new output layer for the digits)",
    "pretrained_digits": "from a model of the ten digits trained on the synthetic default's own digit clips",
    "pretrained_real": "from a res8 trained on the real folder's clips of every other speaker (the 12 Speech Commands "
    "labels; the held-out speakers never heard)",
    "pretrained_real_8k": "from the same res8 of real speech trained on the real folder resampled to 8 kHz (the "
    "digits set's band)",
    "pretrained_real_8k_head": "from that 8 kHz res8 of real speech, only its new output layer trained (`--head_only`)",
}


def own_data_rows(result: dict) -> list[str]:
    sizes, data = result["sizes"], result["data"].replace("<", "&lt;")
    rows = []
    for row in result["rows"]:
        detail = f"{row['heldout_clips']} clips of {len(result['test_speakers'])} speakers"
        rows.append(
            f"| your own data: {data} ({result['clips']} clips, {result['speakers']} speakers; train "
            f"{sizes['train']}, cv {sizes['cv']}), {row['model']} through the command line, "
            f"{OWN_DATA_NAMES.get(row['variant'], row['variant'])}: held-out speakers' accuracy | "
            f"{_accuracy(row, 'heldout', detail)} "
            f"| ≥ {result['target_accuracy']:.2f} | `python bench/own_data.py` |"
        )
    return rows


def distributed_rows(result: dict) -> list[str]:
    rows = [
        f"| training on Spark (`speechlib spark train`, local-cluster, one core per executor), {result['model']}, "
        f"global batch {result['global_batch']}: {run['workers']} worker{'s' if run['workers'] > 1 else ''} | "
        f"{run['samples_per_second']:.1f} rows/s ({run['seconds_per_epoch']:.0f} s per epoch) | – | "
        + ("`python bench/distributed.py --store data/work/synthetic/features/logmel --epochs 3` |" if i == 0
           else "same run |")
        for i, run in enumerate(result["runs"])
    ]  # fmt: skip
    rows.append(f"| — 2 workers against 1 | {result['speedup_2_over_1']:.2f}x | – | same run |")
    rows.append(f"| training on GPUs (1 and all) against the CPU | {result['gpu']} | – | – |")
    return rows


def distributed_accuracy_rows(result: dict) -> list[str]:
    single, spark, paired = result["single_machine"], result["spark_2_workers"], result["spark_minus_single"]
    low, high = paired["ci95"]
    command = (f"`python bench/distributed.py --store data/work/synthetic/features/logmel --accuracy --model "
               f"{result['model']} --epochs {result['max_epochs']}`")  # fmt: skip
    return [
        f"| {result['model']} trained on Spark with 2 workers against `train_keras.py` on one machine (same store "
        f"{result['store']}, at most {result['max_epochs']} epochs, global batch {result['global_batch']}, seed): "
        f"test accuracy on the same {paired['clips']:,} clips | {spark['accuracy']:.4f} ({spark['epochs']} epochs) "
        f"against {single['accuracy']:.4f} ({single['epochs']} epochs): {paired['difference']:+.4f} (95% CI "
        f"{low:+.4f} to {high:+.4f}, McNemar p {paired['p_value']:.3f}) | within 1 point | {command} |"
    ]


NOT_MEASURED_COMMANDS = {  # what measures a result that is not there yet, where it is not bench/<name>.py
    "synthetic_test": "python train_keras.py",
    "distributed_accuracy": "python bench/distributed.py --store data/work/synthetic/features/logmel --accuracy "
    "--model res8 --epochs 16",
    "real_speech_ablation": "python bench/real_speech.py --variants final,no_noise,no_spec_augment,no_shift,no_gain "
    "--epochs 97 --run_folds 0 --out bench/results/real_speech_ablation.json",
}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    print("| measure | result | target | command |")
    print("|---|---|---|---|")
    machines = []
    benchmarks = (  # real speech first: the number the project is judged by
        ("real_speech", real_speech_rows),
        ("real_speech_ablation", real_speech_rows),  # each augmentation left out, on one fold, paired with final
        ("real_speech_noise_gain_fold0", real_speech_rows),  # noise and gain left out together, fold 0, paired
        ("readme_path", readme_path_rows),
        ("model_experiments_real", model_ranking_rows),  # notebook 3's comparison on real speech (a CSV of runs)
        ("synthetic_test", synthetic_test_rows),
        ("featurize", featurize_rows),
        ("spark_featurize", spark_rows),
        ("train", train_rows),
        ("export", export_rows),
        ("streaming", streaming_rows),
        ("ctc", ctc_rows),
        ("serve_load", serve_rows),
        ("own_data", own_data_rows),
        ("distributed", distributed_rows),
        ("distributed_accuracy", distributed_accuracy_rows),
    )
    for name, rows in benchmarks:
        if name == "synthetic_test":
            result = final_model_metrics()
        elif name == "model_experiments_real":
            result = _load_runs(name)
        else:
            result = _load(name)
        if result is None:
            command = NOT_MEASURED_COMMANDS.get(name, f"python bench/{name}.py")
            print(f"| {name} | not measured yet | – | `{command}` |")
            continue
        print("\n".join(rows(result)))
        per_row = sorted({_machine(row) for row in result.get("rows", []) if "machine" in row})
        if per_row:  # rows measured on different machines (real_speech merges runs)
            machines.append(f"{name}: {' and '.join(per_row)}")
        elif "machine" in result:
            machines.append(f"{name}: {_machine(result)}")
    print()
    print("Machines: " + "; ".join(machines) + ".")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

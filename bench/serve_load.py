"""Benchmark: ``speechlib serve`` under load — a real uvicorn server on 127.0.0.1 and many clients at once.

The server is the command itself (``python -m speechlib serve --port 0``) in
its own process, so its memory is measured alone (psutil RSS at start, after
each phase, and the peak of samples every 0.2 s). The clients are one asyncio
process (httpx2) posting test-split WAV files of the model's own feature
store to ``POST /api/predict``:

1. a burst of ``--burst`` (200) requests sent at once;
2. a longer run of ``--requests`` (3,000) requests with ``--concurrency`` (32)
   in flight, while ``GET /health`` is polled every 0.25 s: its latency shows
   whether inference blocks the event loop.

Every answer must be a 200 with the label the library gives for the same file
(``serve.Service.predict`` in this process, the baseline): errors and
mismatches are counted. The baseline's sequential rate (the same work with no
HTTP) is measured first; throughput is reported against it.

::

    python bench/serve_load.py                              # the final model of the synthetic default
    python bench/serve_load.py --model DIR --requests 5000
    python bench/serve_load.py --screenshot imgs/serve.png  # also the page with a prediction (chromium)

Results go to ``bench/results/serve_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
from _machine import cpu_model  # bench/_machine.py (bench/ is on sys.path when run)

import speechlib  # noqa: F401  (TensorFlow starts quietly)
from speechlib import config, serve, train

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "serve_load.json"
CLIPS = 64  # distinct test files cycled through by the clients
BASELINE_CALLS = 300  # sequential in-process predictions for the baseline rate
HEALTH_EVERY = 0.25  # s between two /health probes during the long run
RSS_EVERY = 0.2  # s between two samples of the server's memory
TARGETS = {"errors": 0, "label_mismatches": 0, "rss_growth_mb_max": 50}


def default_model() -> Path:
    """The final model of the synthetic default (train_keras.py / notebook 4)."""
    return config.work_dir(config.synthetic_dir(small=False), small=False) / "models" / train.DEFAULT_MODEL


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (see --help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="bundle (default: the synthetic default's res8)")
    parser.add_argument("--burst", type=int, default=200, help="requests sent at once (default 200)")
    parser.add_argument("--requests", type=int, default=3000, help="requests of the long run (default 3000)")
    parser.add_argument("--concurrency", type=int, default=32, help="in flight during the long run (default 32)")
    parser.add_argument("--screenshot", type=Path, default=None, help="save the page with a prediction here")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    return parser.parse_args(argv)


def test_clips(service: serve.Service, n: int) -> list[tuple[str, str, bytes]]:
    """(label, file name, bytes) of ``n`` test-split clips of the store the model was trained on."""
    from speechlib.store import FeatureStore

    store = service.bundle.meta.get("data")
    if not store or not Path(store).is_dir():
        raise SystemExit(f"the model records no feature store ({store!r}); train it with train_keras.py")
    rows = FeatureStore(store).manifest("test")
    rows = rows[(rows["augment"] == 0) & (rows["path"].astype(str) != "")]
    rows = rows[rows["offset"].fillna(0).astype(int) == 0]  # whole files, not windows of the noise recordings
    rows = rows.sample(min(n, len(rows)), random_state=config.SEED)
    return [(r["label"], Path(r["path"]).name, Path(r["path"]).read_bytes()) for r in rows.to_dict("records")]


def baseline(service: serve.Service, clips: list, calls: int) -> tuple[dict, list[str]]:
    """The same work with no HTTP: ``Service.predict`` on the files, one after another."""
    labels = [service.predict(data)["label"] for _, _, data in clips]
    started = time.perf_counter()
    for i in range(calls):
        service.predict(clips[i % len(clips)][2])
    seconds = time.perf_counter() - started
    return {"calls": calls, "per_s": calls / seconds, "ms_per_call": 1000 * seconds / calls}, labels


class RssSampler:
    """The server's resident memory, sampled in a thread; ``now()`` reads it at once."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> float:
        rss = self.process.memory_info().rss
        self.peak = max(self.peak, rss)
        return rss / 2**20

    def _run(self) -> None:
        while not self._stop.wait(RSS_EVERY):
            self.now()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def _stats(latencies: list[float], seconds: float, errors: int, mismatches: int, concurrency: int) -> dict:
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies), "concurrency": concurrency, "seconds": round(seconds, 3),
        "throughput_per_s": round(len(latencies) / seconds, 1), "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2),
        "errors": errors, "label_mismatches": mismatches,
    }  # fmt: skip


async def _load(url: str, clips: list, expected: list[str], *, total: int, concurrency: int,
                probe_health: bool) -> tuple[dict, dict | None]:  # fmt: skip
    import httpx2

    limits = httpx2.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    latencies: list[float] = []
    errors = mismatches = 0
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    health: list[float] = []
    done = asyncio.Event()
    async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=120) as http:

        async def worker() -> None:
            nonlocal errors, mismatches
            while not queue.empty():
                i = queue.get_nowait()
                _, name, data = clips[i % len(clips)]
                started = time.perf_counter()
                try:
                    r = await http.post("/api/predict", files={"file": (name, data, "audio/wav")})
                except httpx2.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if r.status_code != 200:
                    errors += 1
                elif r.json()["label"] != expected[i % len(clips)]:
                    mismatches += 1

        async def prober() -> None:
            while not done.is_set():
                started = time.perf_counter()
                r = await http.get("/health")
                if r.status_code == 200:
                    health.append(time.perf_counter() - started)
                await asyncio.sleep(HEALTH_EVERY)

        probe = asyncio.create_task(prober()) if probe_health else None
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        done.set()
        if probe is not None:
            await probe
    result = _stats(latencies, seconds, errors, mismatches, concurrency)
    probes = None
    if health:
        h = np.array(health) * 1000
        probes = {"probes": len(h), "p50_ms": round(float(np.median(h)), 2), "max_ms": round(float(h.max()), 2)}
    return result, probes


def screenshot(url: str, clip: tuple[str, str, bytes], path: Path) -> str:
    """The page after uploading ``clip``, saved as PNG; returns the label it shows."""
    import tempfile

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        wav = Path(tmp) / f"{clip[0]}.wav"
        wav.write_bytes(clip[2])
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])  # fmt: skip
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        page.set_input_files("#file", str(wav))
        page.click("#upload")
        page.wait_for_selector("body[data-predictions='1']")
        label = page.inner_text("#prediction")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_png = path.with_name(f".{path.name}.partial.png")
        page.screenshot(path=str(tmp_png), full_page=True)
        tmp_png.replace(path)
        browser.close()
    return label


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = args.model or default_model()
    service = serve.Service(model)
    clips = test_clips(service, CLIPS)
    base, expected = baseline(service, clips, BASELINE_CALLS)
    print(f"baseline (in process, no HTTP): {base['per_s']:.1f} predictions/s, {base['ms_per_call']:.2f} ms each")
    accuracy = float(np.mean([label == want for (want, _, _), label in zip(clips, expected, strict=True)]))

    server = serve.launch(model)
    url = server.url
    try:
        rss = RssSampler(server.process.pid)
        rss_start = rss.now()
        burst, _ = asyncio.run(_load(url, clips, expected, total=args.burst, concurrency=args.burst,
                                     probe_health=False))  # fmt: skip
        rss_burst = rss.now()
        print(f"burst: {burst}")
        long, health = asyncio.run(_load(url, clips, expected, total=args.requests, concurrency=args.concurrency,
                                         probe_health=True))  # fmt: skip
        rss_end = rss.now()
        print(f"long run: {long}\n/health during it: {health}")
        shown = screenshot(url, next(c for c in clips if c[0] in config.COMMANDS), args.screenshot) \
            if args.screenshot else None  # fmt: skip
        rss_peak = rss.stop()
    finally:
        server.stop(timeout=30)

    result = {
        "benchmark": "serve_load",
        "command": "python bench/serve_load.py" + (f" --screenshot {args.screenshot}" if args.screenshot else ""),
        "model": service.name, "clips": len(clips), "clip_accuracy": accuracy, "targets": TARGETS,
        "baseline": {k: round(v, 3) for k, v in base.items()}, "burst": burst, "long": long,
        "health_during_long": health,
        "throughput_vs_baseline": round(long["throughput_per_s"] / base["per_s"], 3),
        "rss_mb": {"start": round(rss_start, 1), "after_burst": round(rss_burst, 1), "end": round(rss_end, 1),
                   "peak": round(rss_peak, 1), "growth_after_burst": round(rss_end - rss_burst, 1)},
        "screenshot": {"path": str(args.screenshot), "label_shown": shown} if shown else None,
        "machine": {"cores": os.cpu_count(), "cpu_model": cpu_model(),
                    "load_average_end": [round(x, 2) for x in os.getloadavg()]},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.partial")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The web app: ``speechlib serve`` — say a word into the browser and see what the model hears.

::

    speechlib serve --model data/work/synthetic/models/res8     # then open http://127.0.0.1:8000/
    curl -F file=@yes.wav http://127.0.0.1:8000/api/predict
    curl http://127.0.0.1:8000/api/model

One page, plain HTML/JS/CSS shipped in ``speechlib/web`` (no build step): upload
a WAV file or record from the microphone, and it shows the waveform, the log-mel
spectrogram of the second the model classified and the top-k probabilities as a
bar chart; a live mode streams microphone chunks over a WebSocket into
:class:`speechlib.stream.Detector` and lists detections as they happen.

Why FastAPI on uvicorn
    The app is an async server: a live connection holds a WebSocket open for
    minutes while uploads keep being answered, which Flask (WSGI, one thread
    per request, no WebSockets without an extension) does not do on its own.
    FastAPI gives typed request and response models, the OpenAPI schema and
    docs (``/docs``, ``/openapi.json``) from them, exception handlers that
    turn every error into JSON, and a test client that drives the app
    without a socket; uvicorn is the ASGI server it is made for (HTTP/1.1 and
    WebSockets). Inference runs in worker threads, so the event loop keeps
    accepting connections while the model works.

The API
    ``POST /api/predict`` (multipart form field ``file``: a WAV of any rate,
    channels and bit depth, decoded by :func:`speechlib.audio.load`, the one
    validating decoder) -> label, probabilities, the detections of a clip
    longer than a second; ``?display=true`` adds the waveform envelope and
    the log-mel the page draws. ``GET /api/model`` -> labels, feature
    parameters, accuracy recorded in the bundle, limits. ``GET /health``.
    ``WS /ws/live?sample_rate=48000`` -> send float32 little-endian mono
    samples as binary messages, receive JSON ``update`` messages (the
    smoothed top-k and the detections that became due); send the text
    ``stop`` to end the stream (pending detections are flushed).
Clips longer than a second
    The detector's one-second window slides over the whole clip (50 ms hop,
    smoothed posteriors): its detections are returned, and the prediction is
    the model's on the window where a class other than silence is most
    probable (``window_start``/``window_end`` say which). Nothing is cut
    silently.
Safety
    Request bodies over ``max_upload_bytes`` (10 MB) get 413; audio longer
    than ``max_seconds`` (30 s), a missing or wrong form field, an empty,
    truncated or non-audio file get 422 with the decoder's sentence; a body
    that does not arrive within ``timeout_seconds`` gets 408, an inference
    that does not finish in time 503. Every error is JSON ``{"detail":
    "..."}`` and never a traceback. Nothing the client sends is used as a
    path (the page's files are served from a fixed table, the upload is
    decoded in memory), the model is loaded once at start-up and cannot be
    changed, no CORS headers are sent (the page and the API share an
    origin; a WebSocket opened by another site's page is refused, since
    browsers apply no CORS to WebSockets), and the server binds 127.0.0.1
    unless told otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import soxr
import uvicorn
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from speechlib import __version__, audio, config, features, inference, stream

__all__ = ["Launched", "Limits", "Service", "bind", "create_app", "launch", "run"]

DEFAULT_HOST = "127.0.0.1"  # only this machine can connect unless the user says otherwise
DEFAULT_PORT = 8000
LOOPBACK_NAMES = ("127.0.0.1", "localhost")  # the Host a browser on this machine sends to a loopback server
MB = 1_000_000
DEFAULT_MAX_UPLOAD_MB = 10.0  # a 30-s 48 kHz stereo 16-bit WAV is 5.8 MB
DEFAULT_MAX_SECONDS = 30.0  # longer recordings belong to `speechlib listen`
DEFAULT_TIMEOUT_SECONDS = 30.0  # to receive a request body, and for its inference
DEFAULT_TOP_K = 5
MULTIPART_OVERHEAD = 4096  # form boundaries and headers on top of the file itself
UPLOAD_NAME = "upload.wav"  # the name of every upload in messages: the client's file name is not used
INFERENCE_THREADS = 4  # requests decoded / featurized at once; the model itself runs one batch at a time
ENVELOPE_POINTS = 800  # min/max pairs of the waveform drawn by the page
LIVE_MAX_MESSAGE_BYTES = 1 << 20  # one WebSocket message: at most 1 MiB of float32 samples (5.5 s at 48 kHz)
LIVE_MAX_SECONDS = 600.0  # one live connection streams at most 10 minutes of audio
LIVE_RATES = (8_000, 192_000)  # sample rates a live stream may declare, Hz
WEB_FILES = {  # every file the page needs: name -> media type (nothing else is served)
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "capture-worklet.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
PAGE_HEADERS = {  # the page loads only its own files and talks only to its own origin
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HIDDEN_META = ("data", "normalization", "path")  # bundle fields not shown by /api/model (paths of the server, arrays)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the server accepts.

    Attributes
    ----------
    max_upload_bytes : int, bytes
        Largest request body (the file plus the multipart wrapping).
    max_seconds : float, seconds
        Longest audio accepted by ``/api/predict``.
    timeout_seconds : float, seconds
        Time to receive a request body, and time for its inference.
    top_k : int
        Labels returned by default.
    live_max_seconds : float, seconds
        Audio one live connection may stream.
    """

    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * MB)
    max_seconds: float = DEFAULT_MAX_SECONDS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    top_k: int = DEFAULT_TOP_K
    live_max_seconds: float = LIVE_MAX_SECONDS

    def __post_init__(self) -> None:
        if self.max_upload_bytes <= 0 or self.max_seconds <= 0 or self.timeout_seconds <= 0:
            raise ValueError("the upload size, duration and timeout limits must be positive")


# --- Response models (the OpenAPI schema) -----------------------------------------------------------


class Score(BaseModel):
    label: str
    probability: float = Field(ge=0, le=1)


class DetectionOut(BaseModel):
    time: float = Field(description="seconds from the start of the audio (middle of the word)")
    label: str
    score: float


class Display(BaseModel):
    """What the page draws: the waveform the model heard and the log-mel of the classified window."""

    sample_rate: int
    envelope_min: list[float] = Field(description=f"up to {ENVELOPE_POINTS} minima of the 16 kHz waveform")
    envelope_max: list[float]
    logmel: list[list[float]] = Field(description="log-mel of the classified window, (frames, n_mels)")
    hop_seconds: float


class Prediction(BaseModel):
    label: str
    probability: float
    top: list[Score]
    duration: float = Field(description="seconds of audio in the upload")
    sample_rate: int = Field(description="the upload's sample rate, Hz (resampled to the model's)")
    channels: int
    subtype: str = Field(description="the upload's sample format, e.g. PCM_16")
    window_start: float = Field(description="seconds: start of the one-second window classified")
    window_end: float
    scanned: bool = Field(description="true when the clip was longer than a window and the detector scanned it")
    detections: list[DetectionOut]
    inference_ms: float
    display: Display | None = None


class ModelInfo(BaseModel):
    name: str
    labels: list[str]
    keywords: list[str]
    kind: str
    params: dict[str, Any]
    sample_rate: int
    clip_samples: int
    threshold: float
    accuracy: dict[str, float] = Field(description="accuracies recorded in the bundle (cv, test), when there")
    limits: dict[str, float]
    meta: dict[str, Any] = Field(description="the bundle's description, without server paths")


class Health(BaseModel):
    status: str
    model: str
    uptime_seconds: float


# --- The service: the model and what it does with audio -------------------------------------------


class Service:
    """The model of a server, loaded once, and the work of each request (run in worker threads).

    Parameters
    ----------
    bundle : inference.Bundle or path
        The trained bundle (``model.keras`` or its folder).
    limits : Limits
    threshold : float
        The detector's threshold for long clips and the live mode.
    """

    def __init__(self, bundle: inference.Bundle | str | Path, *, limits: Limits | None = None,
                 threshold: float = stream.DEFAULT_THRESHOLD) -> None:  # fmt: skip
        self.bundle = bundle if isinstance(bundle, inference.Bundle) else inference.load_bundle(bundle)
        self.limits = limits or Limits()
        self.threshold = float(threshold)
        self.predictor = inference.Predictor(self.bundle, batch_size=1)
        self.sample_rate = int(self.bundle.meta["sample_rate"])
        self.clip_samples = int(self.bundle.meta["clip_samples"])
        self._lock = threading.Lock()  # one model call at a time: Keras models are not made for concurrent calls
        self.score = self._locked(stream.keras_scorer(self.bundle))
        self.started = time.monotonic()
        self.detector()  # a log-mel model with keywords, or a clear error now rather than at the first long clip
        self.score(self.predictor.features([np.zeros(self.clip_samples, np.float32)]))  # trace the model once

    def _locked(self, scorer: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        def score(X: np.ndarray) -> np.ndarray:
            with self._lock:
                return scorer(X)

        return score

    @property
    def name(self) -> str:
        meta = self.bundle.meta
        return str(meta.get("model_name") or getattr(self.bundle.model, "name", "model"))

    def detector(self) -> stream.Detector:
        """A fresh detector sharing the service's model (one per long clip, one per live connection)."""
        return stream.Detector(self.bundle, scorer=self.score, threshold=self.threshold)

    def model_info(self) -> dict:
        meta = self.bundle.meta
        accuracy = {k.removesuffix("_accuracy"): float(v) for k, v in meta.items()
                    if k.endswith("_accuracy") and isinstance(v, int | float)}  # fmt: skip
        limits = dataclasses.asdict(self.limits)
        return {
            "name": self.name, "labels": self.bundle.labels, "keywords": self.detector().keywords,
            "kind": self.bundle.kind, "params": self.bundle.params, "sample_rate": self.sample_rate,
            "clip_samples": self.clip_samples, "threshold": self.threshold, "accuracy": accuracy,
            "limits": {k: float(v) for k, v in limits.items()},
            "meta": {k: v for k, v in meta.items() if k not in HIDDEN_META},
        }  # fmt: skip

    def decode(self, data: bytes) -> tuple[np.ndarray, audio.AudioInfo]:
        """The upload as a waveform at the model's rate; :class:`speechlib.audio.AudioError` when unusable."""
        info = audio.inspect(data, name=UPLOAD_NAME)
        if info.duration > self.limits.max_seconds:
            raise audio.AudioError(
                UPLOAD_NAME,
                f"{info.duration:.1f} s of audio, longer than the {self.limits.max_seconds:g} s this server accepts; "
                "send a shorter clip (or run `speechlib listen` on a long recording)",
            )
        return audio.load(data, sample_rate=self.sample_rate, name=UPLOAD_NAME), info

    def _best_window(self, waveform: np.ndarray) -> tuple[int, list[stream.Detection]]:
        """Scan a long waveform with the detector: the start of the window to classify, and the detections."""
        detector = self.detector()
        times, scores = detector.scores([waveform])
        labels = self.bundle.labels
        speech = [i for i, label in enumerate(labels) if label != config.SILENCE_LABEL] or list(range(len(labels)))
        best = int(scores[:, speech].max(axis=1).argmax())
        start = round(times[best] * self.sample_rate) - self.clip_samples // 2
        start = int(np.clip(start, 0, len(waveform) - self.clip_samples))
        found = stream.trigger(times, scores, detector.keyword_ids, labels, threshold=self.threshold,
                               refractory_seconds=detector.refractory_seconds,
                               max_run_seconds=detector.max_run_seconds)  # fmt: skip
        return start, found

    def predict(self, data: bytes, *, top_k: int | None = None, display: bool = False) -> dict:
        """Everything ``POST /api/predict`` answers for one upload (see :class:`Prediction`)."""
        started = time.perf_counter()
        waveform, info = self.decode(data)
        scanned = len(waveform) > self.clip_samples
        start, found = self._best_window(waveform) if scanned else (0, [])
        clip = waveform[start : start + self.clip_samples]
        X = self.predictor.features([clip])
        proba = self.score(X)[0]
        order = np.argsort(-proba)[: top_k or self.limits.top_k]
        labels = self.bundle.labels
        out = {
            "label": labels[order[0]], "probability": float(proba[order[0]]),
            "top": [{"label": labels[i], "probability": float(proba[i])} for i in order],
            "duration": info.duration, "sample_rate": info.sample_rate, "channels": info.channels,
            "subtype": info.subtype, "window_start": start / self.sample_rate,
            "window_end": (start + min(len(waveform), self.clip_samples)) / self.sample_rate,
            "scanned": scanned, "detections": [d._asdict() for d in found],
        }  # fmt: skip
        if display:
            out["display"] = self._display(waveform, clip)
        out["inference_ms"] = (time.perf_counter() - started) * 1000
        return out

    def _display(self, waveform: np.ndarray, clip: np.ndarray) -> dict:
        params = self.bundle.params if self.bundle.kind == "logmel" else features.default_params("logmel")
        clip = audio.fix_length(clip, length=self.clip_samples, position=self.bundle.meta["pad_position"])
        logmel = features.compute(clip, "logmel", **params)
        n = max(1, math.ceil(len(waveform) / ENVELOPE_POINTS))
        padded = np.pad(waveform, (0, (-len(waveform)) % n)).reshape(-1, n)
        return {
            "sample_rate": self.sample_rate,
            "envelope_min": np.round(padded.min(axis=1), 4).tolist(),
            "envelope_max": np.round(padded.max(axis=1), 4).tolist(),
            "logmel": np.round(logmel, 3).tolist(),
            "hop_seconds": int(params["hop_length"]) / self.sample_rate,
        }


# --- The app -------------------------------------------------------------------------------------------


def _error(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _validation_sentence(exc: RequestValidationError) -> str:
    """One sentence for a request that does not fit the API (a missing form field, a bad query value)."""
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        where = " ".join(loc) or "the request"
        if loc[:1] == ["file"]:
            parts.append("no audio file in the form field 'file': send the WAV as multipart/form-data field 'file' "
                         "(curl -F file=@clip.wav ...)")  # fmt: skip
        else:
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(dict.fromkeys(parts)) or "the request does not fit the API; see /docs"


class _BodyGuard:
    """ASGI middleware: a body over ``max_bytes`` is a 413, one not arrived within ``timeout`` s a 408.

    Both answers are the app's JSON errors: a declared ``Content-Length`` over
    the limit is refused before a byte is read, and a body sent without one is
    counted as it arrives (FastAPI's own ``max_body_size`` answers in plain
    text). uvicorn waits for a slow client for ever; the deadline bounds what
    one slow upload can hold.
    """

    def __init__(self, app: Any, *, max_bytes: int, timeout: float) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    def _too_large(self) -> HTTPException:
        return HTTPException(413, f"the upload is larger than {(self.max_bytes - MULTIPART_OVERHEAD) / MB:g} MB, "
                                  "the limit of this server; send a shorter clip")  # fmt: skip

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            err = self._too_large()
            await _error(err.status_code, err.detail, headers={"Connection": "close"})(scope, receive, send)
            return
        deadline = anyio.current_time() + self.timeout
        received = 0

        async def guarded_receive() -> dict:
            nonlocal received
            try:
                with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {self.timeout:g} s; "
                                         "send it again on a faster connection") from None  # fmt: skip
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, guarded_receive, send)


def _web_files() -> dict[str, bytes]:
    """The page's files, read once from the package (served from this table, never from a client's path)."""
    web = resources.files("speechlib") / "web"
    return {name: (web / name).read_bytes() for name in WEB_FILES}


def create_app(model: inference.Bundle | str | Path | Service, *, limits: Limits | None = None,
               threshold: float = stream.DEFAULT_THRESHOLD, allowed_hosts: Sequence[str] | None = None,
               ) -> FastAPI:  # fmt: skip
    """The web app for one model, fixed for the app's life.

    Parameters
    ----------
    model : Service, inference.Bundle or path
        The bundle (or its ``model.keras``), loaded now.
    limits : Limits, optional
    threshold : float
        Detector threshold (long clips, live mode).
    allowed_hosts : sequence of str, optional
        Host names the ``Host`` header may give (others get 400): a server on
        127.0.0.1 answers only to ``127.0.0.1`` and ``localhost``, so a page
        of another site cannot reach it through a name that resolves to this
        machine (DNS rebinding). Default: any.

    Returns
    -------
    fastapi.FastAPI
    """
    service = model if isinstance(model, Service) else Service(model, limits=limits, threshold=threshold)
    app = _new_app(service, allowed_hosts)
    _add_error_handlers(app)
    _add_page_routes(app, _web_files())
    in_thread = _thread_runner(service.limits.timeout_seconds)
    _add_api_routes(app, service, in_thread)
    _add_live_route(app, service, in_thread)
    return app


def _new_app(service: Service, allowed_hosts: Sequence[str] | None) -> FastAPI:
    """The FastAPI app holding ``service``, behind the host check (when asked for) and the body guard."""
    app = FastAPI(
        title="speechlib", version=__version__,
        description="Spoken-word classification: upload a one-second WAV (or longer), get the word.",
        form_limits={"max_files": 1, "max_fields": 4},
    )  # fmt: skip
    app.state.service = service
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(_BodyGuard, max_bytes=service.limits.max_upload_bytes + MULTIPART_OVERHEAD,
                       timeout=service.limits.timeout_seconds)  # fmt: skip
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as JSON ``{"detail": ...}``: HTTP errors, requests that do not fit the API, and bugs."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_sentence(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:  # a bug: one line, no traceback
        return _error(500, f"internal error ({type(exc).__name__}); this is a bug in speechlib, please report it")


def _thread_runner(timeout_seconds: float) -> Callable[..., Awaitable[Any]]:
    """``in_thread(fn, *args)``: run in a worker thread (a few at once) within ``timeout_seconds``, else 503."""
    inference_threads = anyio.CapacityLimiter(INFERENCE_THREADS)

    async def in_thread(fn: Callable, *args: Any) -> Any:
        """Run ``fn(*args)`` in a worker thread within the timeout; the event loop stays free meanwhile."""
        try:
            with anyio.fail_after(timeout_seconds):
                return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True, limiter=inference_threads)
        except TimeoutError:
            raise HTTPException(503, f"the server is busy: no answer within {timeout_seconds:g} s; "
                                     "try again in a moment", headers={"Retry-After": "5"}) from None  # fmt: skip

    return in_thread


def _add_page_routes(app: FastAPI, files: dict[str, bytes]) -> None:
    """The page (``/``, ``/static/{name}`` from the fixed table of files) and an empty favicon."""

    def page_file(name: str) -> Response:
        return Response(files[name], media_type=WEB_FILES[name], headers=PAGE_HEADERS)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return page_file("index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in files or name == "index.html":
            raise HTTPException(404, "Not Found")
        return page_file(name)


def _add_api_routes(app: FastAPI, service: Service, in_thread: Callable[..., Awaitable[Any]]) -> None:
    """``GET /health``, ``GET /api/model`` and ``POST /api/predict``."""

    @app.get("/health", response_model=Health)
    async def health() -> dict:
        return {"status": "ok", "model": service.name, "uptime_seconds": time.monotonic() - service.started}

    @app.get("/api/model", response_model=ModelInfo)
    async def model_info() -> dict:
        return service.model_info()

    @app.post("/api/predict", response_model=Prediction, response_model_exclude_none=True,
              responses={408: {}, 413: {}, 422: {}, 503: {}})  # fmt: skip
    async def predict(
        file: UploadFile = File(description="a WAV file: any sample rate, channels and bit depth"),  # noqa: B008
        top_k: int = Query(default=service.limits.top_k, ge=1, le=len(service.bundle.labels)),
        display: bool = Query(default=False, description="add the waveform envelope and log-mel the page draws"),
    ) -> dict:
        data = await file.read()
        try:
            return await in_thread(lambda: service.predict(data, top_k=top_k, display=display))
        except audio.AudioError as err:
            raise HTTPException(422, f"the upload: {err.reason}") from None


def _add_live_route(app: FastAPI, service: Service, in_thread: Callable[..., Awaitable[Any]]) -> None:
    """``WS /ws/live``: a same-origin stream of float32 samples at a declared rate, answered by detections."""

    @app.websocket("/ws/live")
    async def live(ws: WebSocket, sample_rate: int = config.SAMPLE_RATE, top_k: int = 3) -> None:
        if not await _accept_live(ws, sample_rate):
            return
        session = _LiveSession(service, sample_rate, top_k=max(1, min(top_k, len(service.bundle.labels))))
        try:
            await _stream_live(ws, session, in_thread)
        except WebSocketDisconnect:
            return
        except HTTPException as err:  # the server was too busy for this chunk
            await ws.close(1013, str(err.detail)[:120])


async def _accept_live(ws: WebSocket, sample_rate: int) -> bool:
    """Accept a live connection from this server's page at a usable rate; else close it and return False."""
    origin = ws.headers.get("origin")
    if origin and urllib.parse.urlsplit(origin).netloc != ws.headers.get("host"):
        await ws.close(1008, "cross-origin WebSocket refused: open the page this server serves")  # before accept
        return False
    await ws.accept()
    lo, hi = LIVE_RATES
    if not lo <= sample_rate <= hi:
        await ws.close(1008, f"sample_rate={sample_rate}: give the stream's rate in Hz ({lo}-{hi})")
        return False
    return True


async def _stream_live(ws: WebSocket, session: _LiveSession, in_thread: Callable[..., Awaitable[Any]]) -> None:
    """Answer each chunk of samples with an update, until the client stops, leaves or sends something else."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            problem = session.check(message["bytes"])
            if problem:
                await ws.close(*problem)
                return
            reply = await in_thread(session.feed, message["bytes"])
        elif message.get("text", "").strip() == "stop":
            reply = await in_thread(session.flush)
            await ws.send_json(reply)
            await ws.close(1000, "stream ended")
            return
        else:
            await ws.close(1003, "send float32 samples as binary messages, or the text 'stop'")
            return
        await ws.send_json(reply)


class _LiveSession:
    """One live connection: a resampler to the model's rate, a detector, and the seconds streamed so far."""

    def __init__(self, service: Service, sample_rate: int, *, top_k: int) -> None:
        self.service, self.sample_rate, self.top_k = service, sample_rate, top_k
        self.detector = service.detector()
        rate = service.sample_rate
        self.resampler = None if sample_rate == rate else soxr.ResampleStream(sample_rate, rate, 1, dtype="float32")
        self.received = 0  # samples at the client's rate
        self.fed = 0  # samples at the model's rate

    def check(self, data: bytes) -> tuple[int, str] | None:
        """Why a binary message cannot be taken (close code, reason), or None."""
        if not data or len(data) % 4:
            return 1003, "send float32 little-endian samples (a multiple of 4 bytes) in each binary message"
        if len(data) > LIVE_MAX_MESSAGE_BYTES:
            return 1009, f"a message holds at most {LIVE_MAX_MESSAGE_BYTES} bytes; send smaller chunks"
        seconds = (self.received + len(data) // 4) / self.sample_rate
        if seconds > self.service.limits.live_max_seconds:
            return 1008, f"a live stream lasts at most {self.service.limits.live_max_seconds:g} s; reconnect"
        return None

    def feed(self, data: bytes) -> dict:
        chunk = np.frombuffer(data, "<f4")
        if not np.isfinite(chunk).all():
            chunk = np.nan_to_num(chunk, nan=0.0, posinf=0.0, neginf=0.0)
        chunk = np.clip(chunk, -1.0, 1.0).astype(np.float32)
        self.received += len(chunk)
        if self.resampler is not None:
            chunk = self.resampler.resample_chunk(chunk)
        return self._update(self.detector.feed(chunk), len(chunk))

    def flush(self) -> dict:
        found = []
        if self.resampler is not None:
            tail = self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            found += self.detector.feed(tail)
            self.fed += len(tail)
        found += self.detector.flush()
        return {**self._update(found, 0), "type": "end"}

    def _update(self, found: list[stream.Detection], n: int) -> dict:
        self.fed += n
        scores = self.detector.last_scores
        top = []
        if len(scores):
            last = scores[-1]
            order = np.argsort(-last)[: self.top_k]
            top = [{"label": self.detector.labels[i], "probability": float(last[i])} for i in order]
        return {"type": "update", "time": self.fed / self.service.sample_rate, "top": top,
                "detections": [d._asdict() for d in found]}  # fmt: skip


# --- Running it ------------------------------------------------------------------------------------------


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); ``OSError`` names the address when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({err.strerror or err}); pick another --port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(app: FastAPI, sock: socket.socket, *, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn on a bound socket until Ctrl-C (or SIGTERM)."""
    server = uvicorn.Server(uvicorn.Config(
        app, log_level=log_level, ws_max_size=LIVE_MAX_MESSAGE_BYTES + 1024, timeout_keep_alive=5,
        timeout_graceful_shutdown=5, limit_concurrency=4096, backlog=2048,
    ))  # fmt: skip
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: a normal end here
        pass


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


START_SECONDS = 300  # a new server loads TensorFlow and the model before it prints its address


@dataclasses.dataclass
class Launched:
    """A ``speechlib serve`` process started by :func:`launch`: its URL, and :meth:`stop`."""

    process: subprocess.Popen
    url: str
    output: list[str]

    def stop(self, timeout: float = 20.0) -> int:
        """Ctrl-C (uvicorn shuts down gracefully), else kill after ``timeout`` s; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> Launched:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch(model: str | Path, *args: str, host: str = DEFAULT_HOST, port: int = 0,
           start_seconds: float = START_SECONDS) -> Launched:  # fmt: skip
    """Start ``speechlib serve --model MODEL`` in a new process and wait for its address.

    What a user runs in a terminal, for a notebook, a benchmark or a test:
    port 0 takes a free port; ``args`` are more ``speechlib serve`` flags.
    The server's output is drained in a thread (kept in ``output``).

    Raises
    ------
    RuntimeError
        The server exited or printed no address within ``start_seconds``; the message holds its output.
    """
    command = [sys.executable, "-m", "speechlib", "serve", "--model", str(model), "--host", host,
               "--port", str(port), "--log-level", "warning", *args]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    output: list[str] = []
    deadline = time.monotonic() + start_seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if line.startswith("serving "):
            threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()
            return Launched(process, line.split(" at ", 1)[1].split()[0], output)
    process.kill()
    process.wait()
    raise RuntimeError("speechlib serve did not start:\n" + "".join(output))

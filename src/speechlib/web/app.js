// The speechlib page: upload or record a clip, POST it to /api/predict, draw what the model heard;
// or stream the microphone to /ws/live and list the detector's detections as they happen.
// Plain ES module, no build step, no third-party code.

const RECORD_SECONDS = 2; // a word is under a second; two give the window scan room either side
const LIVE_CHUNK_SECONDS = 0.1; // samples sent to the server in one WebSocket message
const TOP_K = 5;

const $ = (id) => document.getElementById(id);
let labels = [];

function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function loadModel() {
  const response = await fetch("/api/model");
  const info = await response.json();
  labels = info.labels;
  const accuracy = Object.entries(info.accuracy)
    .map(([split, value]) => `${split} accuracy ${(100 * value).toFixed(1)}%`)
    .join(", ");
  $("model").textContent =
    `Model ${info.name}: ${info.labels.length} classes (${info.labels.join(", ")})` +
    (accuracy ? `; ${accuracy}` : "") +
    `. Uploads up to ${info.limits.max_upload_bytes / 1e6} MB and ${info.limits.max_seconds} s.`;
}

// --- prediction over HTTP ---------------------------------------------------------------------

async function predict(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  status("Classifying…");
  const response = await fetch(`/api/predict?display=true&top_k=${TOP_K}`, { method: "POST", body: form });
  const body = await response.json();
  if (!response.ok) {
    status(`Error ${response.status}: ${body.detail}`, true);
    return;
  }
  render(body);
  status(`Done in ${body.inference_ms.toFixed(0)} ms.`);
}

function render(result) {
  $("prediction").textContent = result.label;
  $("probability").textContent = `(${(100 * result.probability).toFixed(1)}%)`;
  const rate = result.sample_rate;
  $("details").textContent =
    `${result.duration.toFixed(2)} s at ${rate} Hz, ${result.channels} channel(s), ${result.subtype}; ` +
    `classified ${result.window_start.toFixed(2)}–${result.window_end.toFixed(2)} s` +
    (result.scanned
      ? `; detector: ${result.detections.map((d) => `${d.label} at ${d.time.toFixed(2)} s`).join(", ") || "no keyword"}`
      : "");
  drawBars($("bars"), result.top);
  if (result.display) {
    drawWaveform($("waveform"), result.display, result.window_start, result.window_end, result.duration);
    drawSpectrogram($("spectrogram"), result.display.logmel);
  }
  document.body.dataset.predicted = result.label;
  document.body.dataset.predictions = String(Number(document.body.dataset.predictions || 0) + 1);
}

function drawBars(container, top) {
  container.replaceChildren(
    ...top.map(({ label, probability }) => {
      const row = document.createElement("div");
      row.className = "bar";
      row.setAttribute("role", "listitem");
      const name = document.createElement("span");
      name.textContent = label;
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.display = "block";
      fill.style.width = `${(100 * probability).toFixed(1)}%`;
      track.append(fill);
      const p = document.createElement("span");
      p.className = "p";
      p.textContent = probability.toFixed(3);
      row.append(name, track, p);
      return row;
    }),
  );
}

function drawWaveform(canvas, display, start, end, duration) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.fillStyle = "#10131a";
  ctx.fillRect(0, 0, width, height);
  const seconds = Math.max(duration, 1e-3);
  ctx.fillStyle = "rgba(47, 111, 223, 0.25)";
  ctx.fillRect((start / seconds) * width, 0, ((end - start) / seconds) * width, height);
  const lo = display.envelope_min;
  const hi = display.envelope_max;
  ctx.fillStyle = "#7fb3ff";
  const mid = height / 2;
  for (let i = 0; i < lo.length; i++) {
    const x = (i / lo.length) * width;
    const w = Math.max(1, width / lo.length);
    const top = mid - hi[i] * mid;
    ctx.fillRect(x, top, w, Math.max(1, (hi[i] - lo[i]) * mid));
  }
  ctx.fillStyle = "#c8cdd6";
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillText(`0 s`, 4, height - 6);
  ctx.fillText(`${duration.toFixed(2)} s`, width - 50, height - 6);
}

const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function colour(v) {
  const x = Math.min(1, Math.max(0, v)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

function drawSpectrogram(canvas, logmel) {
  const frames = logmel.length;
  const bands = logmel[0].length;
  let lo = Infinity;
  let hi = -Infinity;
  for (const row of logmel) for (const v of row) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const image = new ImageData(frames, bands);
  for (let t = 0; t < frames; t++) {
    for (let m = 0; m < bands; m++) {
      const [r, g, b] = colour((logmel[t][m] - lo) / (hi - lo || 1));
      const k = 4 * ((bands - 1 - m) * frames + t); // low bands at the bottom
      image.data.set([r, g, b, 255], k);
    }
  }
  const small = document.createElement("canvas");
  small.width = frames;
  small.height = bands;
  small.getContext("2d").putImageData(image, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
}

// --- the microphone -------------------------------------------------------------------------------

async function openMicrophone(onSamples) {
  const media = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
  });
  const context = new AudioContext();
  await context.audioWorklet.addModule("/static/capture-worklet.js");
  const source = context.createMediaStreamSource(media);
  const node = new AudioWorkletNode(context, "capture");
  const mute = context.createGain();
  mute.gain.value = 0; // the worklet must be pulled by the graph; nothing is played back
  node.port.onmessage = (event) => onSamples(event.data);
  source.connect(node).connect(mute).connect(context.destination);
  await context.resume();
  let open = true;
  return {
    sampleRate: context.sampleRate,
    close() { // safe to call twice: the end message and the socket's close both release the mic
      if (!open) return;
      open = false;
      node.port.onmessage = null;
      media.getTracks().forEach((track) => track.stop());
      context.close();
    },
  };
}

function concat(blocks) {
  const out = new Float32Array(blocks.reduce((n, b) => n + b.length, 0));
  let offset = 0;
  for (const block of blocks) { out.set(block, offset); offset += block.length; }
  return out;
}

function wavBlob(samples, sampleRate) {
  // 16-bit PCM mono WAV: the server resamples any rate to the model's.
  const buffer = new ArrayBuffer(44 + 2 * samples.length);
  const view = new DataView(buffer);
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + 2 * samples.length, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, 2 * sampleRate, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, 2 * samples.length, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

async function record() {
  const button = $("record");
  button.disabled = true;
  const blocks = [];
  let total = 0;
  let mic;
  try {
    let finished;
    const done = new Promise((resolve) => { finished = resolve; });
    mic = await openMicrophone((block) => {
      blocks.push(block);
      total += block.length;
      if (mic && total >= RECORD_SECONDS * mic.sampleRate) finished();
    });
    status(`Recording ${RECORD_SECONDS} s… say a word.`);
    await done;
    const rate = mic.sampleRate;
    mic.close();
    mic = null;
    await predict(wavBlob(concat(blocks).subarray(0, RECORD_SECONDS * rate), rate), "recording.wav");
  } catch (err) {
    status(`Recording failed: ${err.message}`, true);
  } finally {
    if (mic) mic.close();
    button.disabled = false;
  }
}

// --- live mode ----------------------------------------------------------------------------------

let live = null;

async function startLive() {
  const button = $("live");
  button.disabled = true;
  let pending = [];
  let pendingLength = 0;
  try {
    let socket = null;
    const mic = await openMicrophone((block) => {
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      pending.push(block);
      pendingLength += block.length;
      if (pendingLength >= LIVE_CHUNK_SECONDS * mic.sampleRate) {
        socket.send(concat(pending).buffer);
        pending = [];
        pendingLength = 0;
      }
    });
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/live?sample_rate=${mic.sampleRate}&top_k=3`);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => showLive(JSON.parse(event.data));
    socket.onclose = (event) => {
      mic.close();
      if (event.code !== 1000 && event.code !== 1005) status(`Live stream closed: ${event.reason || event.code}`, true);
      stopped();
    };
    await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = () => reject(new Error("cannot connect")); });
    live = { socket, mic };
    $("detections").replaceChildren();
    button.textContent = "Stop live";
    button.classList.add("active");
    status("Listening… say a word; detections appear below.");
  } catch (err) {
    status(`Live mode failed: ${err.message}`, true);
    stopped();
  } finally {
    button.disabled = false;
  }
}

function stopLive() {
  if (live && live.socket.readyState === WebSocket.OPEN) live.socket.send("stop");
}

function stopped() {
  live = null;
  $("live").textContent = "Start live";
  $("live").classList.remove("active");
}

function showLive(message) {
  if (message.top.length) {
    $("live-top").textContent = `${message.time.toFixed(1)} s: ` +
      message.top.map((s) => `${s.label} ${s.probability.toFixed(2)}`).join(", ");
  }
  for (const d of message.detections) {
    const item = document.createElement("li");
    item.textContent = `${d.time.toFixed(2)} s  ${d.label}  ${d.score.toFixed(2)}`;
    item.dataset.label = d.label;
    $("detections").append(item);
  }
  if (message.type === "end") {
    // the server has flushed the last words: the page is idle again before the socket closes
    if (live) live.mic.close();
    stopped();
    status("Live stream ended.");
  }
}

// --- wiring -------------------------------------------------------------------------------------

$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { status("Choose a WAV file first.", true); return; }
  predict(file, file.name).catch((err) => status(`Upload failed: ${err.message}`, true));
});
$("record").addEventListener("click", record);
$("live").addEventListener("click", () => (live ? stopLive() : startLive()));
loadModel().then(
  () => { document.body.dataset.ready = "true"; },
  (err) => status(`Cannot reach the server: ${err.message}`, true),
);

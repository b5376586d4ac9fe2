// The live-transcription page of `asr serve`: the microphone through an AudioWorklet
// (pcm-worklet.js: resampled to 16 kHz 16-bit PCM) over the server's Vosk WebSocket protocol;
// files through its OpenAI-style HTTP API, their transcripts offered as TXT/SRT/VTT/JSON downloads
// written as `asr transcribe -f FORMAT` writes them. No framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const RATE = 16000;
let session = null;  // the recording in progress: {ws, ctx, media, node, stopping}
// `asr serve --api-key`: the key the person typed, for this tab only. The API gets it as
// OpenAI's clients send it; a browser cannot set headers on a WebSocket, so there it is ?api_key=.
let apiKey = sessionStorage.getItem("asr-api-key") || "";
const auth = () => (apiKey ? {Authorization: `Bearer ${apiKey}`} : {});

function setState(state, status) {
  document.body.dataset.state = state;
  if (status !== undefined) $("status").textContent = status;
  $("start").textContent = state === "listening" ? "Stop" : state === "stopping" ? "Stopping…" : "Start listening";
  $("start").disabled = state === "connecting" || state === "stopping";
}

// A problem in one plain sentence; Retry only where trying again can help (the microphone and the
// connection: a file that is not audio stays so).
function showProblem(message, retry = true) {
  $("problem-text").textContent = message;
  $("retry").hidden = !retry;
  $("problem").hidden = false;
}

function clock(seconds) {
  const m = Math.floor(seconds / 60), s = seconds - 60 * m;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

// One finished utterance: a line with its time and its words shaded by confidence.
function addLine(words, text, start, end, cls) {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = start === null ? "" : `${clock(start)}–${clock(end)}`;
  li.appendChild(time);
  const body = document.createElement("span");
  body.className = "text";
  if (words && words.length) {
    words.forEach((w, i) => {
      const span = document.createElement("span");
      const conf = w.conf ?? w.probability ?? 1;
      span.className = conf < 0.5 ? "word low" : "word";
      span.style.setProperty("--conf", conf.toFixed(3));
      span.title = `confidence ${conf.toFixed(2)}`;
      span.textContent = w.word;
      body.appendChild(span);
      if (i < words.length - 1) body.appendChild(document.createTextNode(" "));
    });
  } else {
    body.textContent = text;
  }
  li.appendChild(body);
  $("transcript").appendChild(li);
  li.scrollIntoView({block: "nearest"});
}

function onMessage(event) {
  let msg;
  try { msg = JSON.parse(event.data); } catch { return; }
  if (msg.error) { showProblem(`The server refused the audio: ${msg.error}`); return; }
  if ("partial" in msg) { $("partial").textContent = msg.partial; return; }
  if (msg.text) {
    const words = msg.result || [];
    const start = words.length ? words[0].start : null, end = words.length ? words[words.length - 1].end : null;
    addLine(words, msg.text, start, end);
  }
  $("partial").textContent = "";
}

async function start() {
  $("problem").hidden = true;
  setState("connecting", "Opening the microphone…");
  const s = {stopping: false};
  session = s;
  let step = "Cannot open the microphone";
  try {
    s.media = await navigator.mediaDevices.getUserMedia(
      {audio: {channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
    step = "Cannot reach the server (loading its audio module)";
    s.ctx = new AudioContext();
    await s.ctx.audioWorklet.addModule("pcm-worklet.js");
  } catch (err) {
    cleanup(s);
    if (session === s) session = null;
    setState("idle", "");
    showProblem(`${step}: ${err.message || err}`);
    return;
  }
  setState("connecting", "Connecting to the server…");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/" + (apiKey ? `?api_key=${encodeURIComponent(apiKey)}` : ""));
  ws.binaryType = "arraybuffer";
  s.ws = ws;
  ws.onmessage = onMessage;
  ws.onopen = () => {
    try {
      ws.send(JSON.stringify({config: {sample_rate: RATE, punctuation: true}}));
      s.node = new AudioWorkletNode(s.ctx, "pcm16",
        {numberOfInputs: 1, numberOfOutputs: 0, processorOptions: {targetRate: RATE, chunk: RATE / 10}});
      s.node.port.onmessage = (e) => {
        if (e.data === "flushed") {
          if (ws.readyState === WebSocket.OPEN) ws.send('{"eof" : 1}');
        } else if (ws.readyState === WebSocket.OPEN) {
          ws.send(e.data);
        }
      };
      // (Firefox refuses to connect a microphone whose rate is not the AudioContext's, for one)
      s.ctx.createMediaStreamSource(s.media).connect(s.node);
    } catch (err) {                        // said plainly, instead of "Connecting…" for ever
      s.failure = `Cannot use the microphone's audio: ${err.message || err}`;
      ws.close(1000);
      return;
    }
    setState("listening", `Listening (${s.ctx.sampleRate} Hz, sent as 16 kHz). Press Stop when done.`);
  };
  ws.onclose = (e) => {
    const expected = s.stopping && e.code === 1000;
    cleanup(s);
    if (session === s) session = null;
    if (s.failure) {
      setState("idle", "");
      showProblem(s.failure);
    } else if (expected) {
      setState("idle", "Stopped. Press the button to listen again.");
    } else {
      setState("closed", "");
      const why = e.reason ? `: ${e.reason}` : (e.code === 1006 ? ": the server is unreachable or went away" : "");
      showProblem(`The connection to the server closed (code ${e.code})${why}.`);
    }
  };
}

function stop() {
  const s = session;
  if (!s) return;
  s.stopping = true;
  setState("stopping", "Finishing the last words…");
  if (s.node) s.node.port.postMessage("flush");          // the worklet sends its rest, then "flushed"
  else if (s.ws && s.ws.readyState === WebSocket.OPEN) s.ws.send('{"eof" : 1}');
  else if (s.ws) s.ws.close();
}

function cleanup(s) {
  if (s.media) s.media.getTracks().forEach((t) => t.stop());
  if (s.ctx && s.ctx.state !== "closed") s.ctx.close();
  s.media = s.ctx = s.node = null;
}

$("start").addEventListener("click", () => (session ? stop() : start()));
$("retry").addEventListener("click", () => { $("problem").hidden = true; start(); });

// ---------------------------------------------------------------- files, through the HTTP API
// asr/writers.py's formats, from the API's verbose_json (segments, and words with their times).
function timestamp(seconds, decimal = ".", alwaysHours = false) {
  let ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000); ms -= h * 3600000;
  const m = Math.floor(ms / 60000); ms -= m * 60000;
  const s = Math.floor(ms / 1000); ms -= s * 1000;
  const two = (n) => String(n).padStart(2, "0");
  return `${alwaysHours || h ? two(h) + ":" : ""}${two(m)}:${two(s)}${decimal}${String(ms).padStart(3, "0")}`;
}

function transcriptFiles(body, segments) {
  return {
    txt: segments.map((s) => s.text + "\n").join(""),
    srt: segments.map((s, i) => `${i + 1}\n${timestamp(s.start, ",", true)} --> ${timestamp(s.end, ",", true)}\n${s.text}\n`).join("\n"),
    vtt: ["WEBVTT\n", ...segments.map((s) => `${timestamp(s.start)} --> ${timestamp(s.end)}\n${s.text}\n`)].join("\n"),
    json: JSON.stringify({text: body.text, duration: body.duration, segments: segments.map((s) => ({
      start: s.start, end: s.end, text: s.text,
      words: s.words.map((w) => ({word: w.word, start: w.start, end: w.end, conf: w.probability}))}))}) + "\n",
  };
}

const MIME = {txt: "text/plain", srt: "application/x-subrip", vtt: "text/vtt", json: "application/json"};

function downloadLinks(name, files) {
  const stem = name.replace(/\.[^.]*$/, "") || name;
  const span = document.createElement("span");
  span.className = "downloads";
  span.append("download: ");
  for (const [fmt, text] of Object.entries(files)) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], {type: `${MIME[fmt]};charset=utf-8`}));
    a.download = `${stem}.${fmt}`;
    a.textContent = fmt.toUpperCase();
    a.dataset.format = fmt;
    span.append(a, " ");
  }
  return span;
}

async function transcribeFile(file) {
  $("problem").hidden = true;
  const drop = $("drop");
  drop.dataset.busy = "1";
  $("status").textContent = `Transcribing ${file.name}…`;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("response_format", "verbose_json");
  form.append("timestamp_granularities[]", "segment");
  form.append("timestamp_granularities[]", "word");
  if ($("file-model").value) form.append("model", $("file-model").value);
  try {
    const response = await fetch("/v1/audio/transcriptions", {method: "POST", body: form, headers: auth()});
    if (response.status === 401) askForKey("The server refused the API key:");
    const body = await response.json().catch(() => ({error: {message: `HTTP ${response.status}`}}));
    if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
    const segments = (body.segments || []).map((seg) => ({...seg,
      words: (body.words || []).filter((w) => w.start >= seg.start - 1e-3 && w.end <= seg.end + 1e-3)}));
    addLine(null, `${file.name} (${body.duration.toFixed(1)} s)`, null, null, "file");
    $("transcript").lastChild.appendChild(downloadLinks(file.name, transcriptFiles(body, segments)));
    for (const seg of segments) addLine(seg.words, seg.text, seg.start, seg.end);
    $("status").textContent = `Transcribed ${file.name}.`;
  } catch (err) {
    // the server's messages start with the file's name: say it once
    const said = String(err.message || err);
    const reason = said.startsWith(`${file.name}: `) ? said.slice(file.name.length + 2) : said;
    showProblem(`Cannot transcribe ${file.name}: ${reason}`, false);
    $("status").textContent = "";
  } finally {
    delete drop.dataset.busy;
  }
}

$("file").addEventListener("change", (e) => { if (e.target.files[0]) transcribeFile(e.target.files[0]); e.target.value = ""; });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) transcribeFile(e.dataTransfer.files[0]);
});

function askForKey(why) {
  $("key-why").textContent = why;
  $("key-form").hidden = false;
  $("key").focus();
}

// The models files can be transcribed with, in plain words; the first is the server's default.
const MODEL_WORDS = {
  offline: "the offline model: more accurate, it hears the whole recording before it writes",
  streaming: "the streaming model: the one the microphone uses, it writes as it hears",
};

// The models, which also tells whether the server wants a key (401) that we lack.
function loadModels() {
  fetch("/v1/models", {headers: auth()}).then((r) => {
    if (r.status === 401) {
      askForKey(apiKey ? "The server refused the API key:" : "This server needs an API key:");
      return {};
    }
    $("key-form").hidden = true;
    return r.json();
  }).then((m) => {
    const ids = (m.data || []).map((d) => d.id);
    if (!ids.length) return;
    const words = (id) => MODEL_WORDS[id] || `the model “${id}”`;
    const select = $("file-model");
    select.textContent = "";
    for (const id of ids) select.add(new Option(words(id), id));
    $("model-choice").hidden = ids.length < 2;
    $("model").textContent = ids.length < 2 ? `Files are transcribed with ${words(ids[0])}.` :
      "Choose below which model transcribes files; the microphone always uses the streaming one.";
  }).catch(() => {});
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  apiKey = $("key").value.trim();
  sessionStorage.setItem("asr-api-key", apiKey);
  loadModels();
});
loadModels();

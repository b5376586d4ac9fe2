// The cost of the page's AudioWorklet resampler (asr/web/pcm-worklet.js) on the audio thread:
// microseconds per 128-frame render quantum, for microphones at 48 and 44.1 kHz (a quantum
// lasts 2667 and 2902 us), in Node.js (V8, Chromium's engine; Firefox's is another).
//
//   node benchmarks/worklet.js [path/to/pcm-worklet.js]
"use strict";
const fs = require("fs");
const path = require("path");

const file = process.argv[2] || path.join(__dirname, "..", "asr", "web", "pcm-worklet.js");
// the Resampler class alone (the processor needs the worklet's global scope)
const Resampler = new Function(fs.readFileSync(file, "utf8").replace(/class PCM16Processor[\s\S]*$/, "") +
                               "; return Resampler;")();
const block = new Float32Array(128).map((_, i) => Math.sin(i / 7) / 2);
for (const rate of [48000, 44100]) {
  const r = new Resampler(rate, 16000);
  const quanta = Math.round(rate * 10 / 128);  // 10 s of audio
  for (let i = 0; i < quanta / 10; i++) r.process(block);  // warm up the JIT
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < quanta; i++) r.process(block);
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / quanta;
  console.log(`${rate} Hz: ${us.toFixed(1)} us per 128-frame quantum (${(100 * us / (128e6 / rate)).toFixed(1)}% of its duration)`);
}

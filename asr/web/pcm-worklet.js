// AudioWorklet: the microphone's samples (at the AudioContext's rate) -> 16 kHz 16-bit PCM,
// posted to the page in chunks of `chunk` samples (ArrayBuffers of little-endian int16).
// Resampling is a windowed-sinc low-pass interpolator (Blackman window, 16 zero crossings
// at the output rate), which leaves the speech band as it was and removes what would alias.
//
// It runs on the browser's audio thread, 128 frames at a time, so it must be cheap: the
// filter's taps are computed once per phase (an output's position between two inputs; a pair
// of whole-number rates has outRate / gcd of them: 1 for 48 kHz, 160 for 44.1 kHz) and nothing
// is allocated per call. Computing them for every output sample took a third of a core at
// 48 kHz, and Firefox dropped microphone audio when the thread fell behind.

const gcd = (a, b) => (b ? gcd(b, a % b) : a);
const MAX_PHASES = 4096;  // rates with more phases than this compute their taps as they go

class Resampler {
  constructor(inRate, outRate, zeros = 16) {
    const g = gcd(inRate, outRate);
    this.phases = outRate / g;                          // time is counted in 1/phases input samples
    this.step = inRate / g;                             // from one output to the next, in 1/phases
    this.cutoff = Math.min(1, outRate / inRate) * 0.94; // of the input's Nyquist frequency
    this.half = Math.ceil(zeros / this.cutoff);         // taps on each side, in input samples
    this.taps = this.phases <= MAX_PHASES ? new Array(this.phases) : null;  // filled as met
    this.buf = new Float32Array(this.half + 4096);      // history (silence before the start), then input
    this.len = this.half;                               // samples in buf
    this.pos = this.half * this.phases;                 // next output's time in buf
    this.out = new Float64Array(0);
  }

  kernel(t) {
    const u = t / this.half;
    if (u <= -1 || u >= 1) return 0;
    const x = Math.PI * this.cutoff * t;
    const sinc = x === 0 ? 1 : Math.sin(x) / x;
    const w = 0.42 + 0.5 * Math.cos(Math.PI * u) + 0.08 * Math.cos(2 * Math.PI * u);
    return this.cutoff * sinc * w;
  }

  // The 2 * half taps for an output at phase/phases past an input sample c, applied to
  // buf[c - half + 1], ..., buf[c + half].
  tapsFor(phase) {
    let taps = this.taps && this.taps[phase];
    if (!taps) {
      taps = new Float64Array(2 * this.half);
      const frac = phase / this.phases;
      for (let j = 0; j < taps.length; j++) taps[j] = this.kernel(j - this.half + 1 - frac);
      if (this.taps) this.taps[phase] = taps;
    }
    return taps;
  }

  // input: Float32Array at inRate -> samples at outRate (a view, valid until the next call)
  process(input) {
    if (this.len + input.length > this.buf.length) {
      const grown = new Float32Array(2 * (this.len + input.length));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    const buf = this.buf, half = this.half, phases = this.phases;
    buf.set(input, this.len);
    this.len += input.length;
    const most = Math.ceil(this.len * phases / this.step) + 1;
    if (this.out.length < most) this.out = new Float64Array(most);
    let n = 0;
    for (;;) {
      const c = Math.floor(this.pos / phases);
      if (c + half >= this.len) break;
      const taps = this.tapsFor(this.pos - c * phases);
      const first = c - half + 1;
      let acc = 0;
      for (let j = 0; j < taps.length; j++) acc += buf[first + j] * taps[j];
      this.out[n++] = acc;
      this.pos += this.step;
    }
    const keep = Math.floor(this.pos / phases) - half;  // drop what no later output needs
    if (keep > 0) {
      buf.copyWithin(0, keep, this.len);
      this.len -= keep;
      this.pos -= keep * phases;
    }
    return this.out.subarray(0, n);
  }
}

class PCM16Processor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.rate = opts.targetRate || 16000;
    this.chunk = opts.chunk || 1600;
    this.resampler = sampleRate === this.rate ? null : new Resampler(sampleRate, this.rate);
    this.pending = new Int16Array(this.chunk);
    this.filled = 0;
    this.running = true;
    this.port.onmessage = (e) => {
      if (e.data === "flush") {         // stop: send what is buffered, then say so
        this.send(this.filled);
        this.running = false;
        this.port.postMessage("flushed");
      }
    };
  }

  send(n) {
    if (n > 0) {
      const out = this.pending.slice(0, n);
      this.port.postMessage(out.buffer, [out.buffer]);
    }
    this.filled = 0;
  }

  process(inputs) {
    if (!this.running) return false;
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    let mono = channels[0];
    if (channels.length > 1) {           // average the channels
      mono = new Float32Array(channels[0].length);
      for (const ch of channels) for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / channels.length;
    }
    const samples = this.resampler ? this.resampler.process(mono) : mono;
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(32767 / 32768, samples[i]));
      this.pending[this.filled++] = Math.round(s * 32768);
      if (this.filled === this.chunk) this.send(this.chunk);
    }
    return true;
  }
}

registerProcessor("pcm16", PCM16Processor);

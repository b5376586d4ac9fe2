// AudioWorklet: the microphone's samples (at the AudioContext's rate) -> 16 kHz 16-bit PCM,
// posted to the page in chunks of `chunk` samples (ArrayBuffers of little-endian int16).
// Resampling is a windowed-sinc low-pass interpolator (Blackman window, 16 zero crossings
// at the output rate), which leaves the speech band as it was and removes what would alias.

class Resampler {
  constructor(inRate, outRate, zeros = 16) {
    this.step = inRate / outRate;                     // input samples per output sample
    this.cutoff = Math.min(1, outRate / inRate) * 0.94; // of the input's Nyquist frequency
    this.half = Math.ceil(zeros / this.cutoff);        // taps on each side, in input samples
    this.buf = new Float32Array(this.half);            // history: silence before the start
    this.pos = this.half;                              // next output's time, in buf's samples
  }

  kernel(t) {
    const u = t / this.half;
    if (u <= -1 || u >= 1) return 0;
    const x = Math.PI * this.cutoff * t;
    const sinc = x === 0 ? 1 : Math.sin(x) / x;
    const w = 0.42 + 0.5 * Math.cos(Math.PI * u) + 0.08 * Math.cos(2 * Math.PI * u);
    return this.cutoff * sinc * w;
  }

  process(input) {
    const buf = new Float32Array(this.buf.length + input.length);
    buf.set(this.buf);
    buf.set(input, this.buf.length);
    const out = [];
    while (this.pos + this.half < buf.length) {
      const c = Math.floor(this.pos);
      let acc = 0;
      for (let k = c - this.half + 1; k <= c + this.half; k++) acc += buf[k] * this.kernel(k - this.pos);
      out.push(acc);
      this.pos += this.step;
    }
    const keep = Math.floor(this.pos) - this.half;     // drop what no later output needs
    this.buf = buf.slice(keep);
    this.pos -= keep;
    return out;
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

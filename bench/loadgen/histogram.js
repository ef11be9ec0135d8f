'use strict';
// Log-bucketed latency histogram: 1 % wide buckets from 1 µs to hours, O(1) per sample.

const GROWTH = 1.01;
const K = 1 / Math.log(GROWTH);
const BUCKETS = 2400; // exp(2399 / K) µs is far beyond any step

class Histogram {
  constructor() {
    this.buckets = new Uint32Array(BUCKETS);
    this.count = 0;
    this.sum = 0;
    this.max = 0;
    this.min = Infinity;
  }

  add(us) {
    if (us < 0) us = 0; // clock granularity
    const i = us < 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(us) * K) + 1);
    this.buckets[i]++;
    this.count++;
    this.sum += us;
    if (us > this.max) this.max = us;
    if (us < this.min) this.min = us;
  }

  // Value (µs) at quantile q: the geometric middle of the bucket that holds it.
  quantile(q) {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.buckets[i];
      if (seen >= rank) {
        if (i === 0) return 0.5;
        const mid = Math.exp((i - 0.5) / K);
        return Math.min(Math.max(mid, this.min), this.max);
      }
    }
    return this.max;
  }

  // Summary in milliseconds.
  summary() {
    const ms = (us) => (us === null ? null : Math.round(us) / 1000);
    return {
      count: this.count,
      mean: this.count ? ms(this.sum / this.count) : null,
      p50: ms(this.quantile(0.5)),
      p90: ms(this.quantile(0.9)),
      p95: ms(this.quantile(0.95)),
      p99: ms(this.quantile(0.99)),
      p999: ms(this.quantile(0.999)),
      max: this.count ? ms(this.max) : null,
    };
  }
}

module.exports = { Histogram };

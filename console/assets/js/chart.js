// A line chart of events per second on a <canvas>: the last 15 minutes, one
// point a second. It keeps the points in a ring and redraws in one pass.

const SECONDS = 15 * 60;

export class ThroughputChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.received = new Float64Array(SECONDS);
    this.errors = new Float64Array(SECONDS);
    this.end = 0; // the Unix second after the last point
  }

  // add takes a series message: {end, received[], errors[]}, the seconds
  // just before end.
  add(series) {
    if (!series || !series.end) return;
    const n = series.received.length;
    const shift = this.end ? series.end - this.end : SECONDS;
    if (shift >= SECONDS || shift < 0) {
      this.received.fill(0);
      this.errors.fill(0);
    } else if (shift > 0) {
      this.received.copyWithin(0, shift);
      this.errors.copyWithin(0, shift);
      this.received.fill(0, SECONDS - shift);
      this.errors.fill(0, SECONDS - shift);
    }
    for (let i = 0; i < n; i++) {
      const at = SECONDS - n + i;
      if (at >= 0) {
        this.received[at] = series.received[i];
        this.errors[at] = series.errors[i];
      }
    }
    this.end = series.end;
  }

  // last is the newest point; peak the highest of the 15 minutes.
  get last() { return this.received[SECONDS - 1]; }
  get peak() { return Math.max(...this.received); }
  get total() { return this.received.reduce((a, b) => a + b, 0); }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const hgt = c.clientHeight;
    if (!w || !hgt) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    const css = getComputedStyle(c);
    const color = (name) => css.getPropertyValue(name).trim();
    const left = 56;
    const bottom = 20;
    const plotW = w - left - 8;
    const plotH = hgt - bottom - 8;
    const top = niceMax(this.peak);
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = color('--muted');
    g.strokeStyle = color('--chart-grid');
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = 8 + plotH - (plotH * i) / 4;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(left + plotW, y);
      g.stroke();
      g.fillText(formatAxis((top * i) / 4), left - 6, y);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (const m of [15, 10, 5, 0]) {
      const x = left + plotW - (plotW * m * 60) / SECONDS;
      g.fillText(m ? `−${m} min` : 'now', Math.min(Math.max(x, left + 20), left + plotW - 14), 8 + plotH + 4);
    }
    this.line(g, this.received, color('--chart-line'), left, plotW, plotH, top);
    this.line(g, this.errors, color('--chart-error'), left, plotW, plotH, top);
  }

  line(g, values, stroke, left, plotW, plotH, top) {
    g.strokeStyle = stroke;
    g.lineWidth = 1.5;
    g.beginPath();
    for (let i = 0; i < SECONDS; i++) {
      const x = left + (plotW * i) / (SECONDS - 1);
      const y = 8 + plotH - (plotH * values[i]) / top;
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    }
    g.stroke();
  }
}

// niceMax rounds a peak up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (v <= 0) return 10;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function formatAxis(v) {
  if (v >= 1000) return `${Math.round(v / 100) / 10}k`;
  return String(Math.round(v));
}

// ECG paper for the Heartline dashboard: plain JS, no dependencies.
//
// The grid is computed from the CSS pixel (CSS defines 96 px per inch, so 1 mm is 96 / 25.4 CSS
// px) times the page's devicePixelRatio, and drawn on whole device pixels: 1 mm minor and 5 mm
// major squares, the same spacing across and down. The trace is drawn at the paper speed (25 or
// 50 mm/s) and gain (5, 10 or 20 mm/mV), with a 1 mV calibration pulse, the lead name, the speed
// and gain printed on the strip, and a time axis. Amplitudes beyond a lead's band are clamped and
// drawn in orange (clipping shown as such). Consecutive frames are joined into one line (no gap
// at frame joins); a real gap in the data (lost frames) stays a gap.
//
// (A physical millimetre also depends on the screen: browsers do not report it, so "1 mm" is the
// CSS millimetre, which is exact on a 96 dpi screen at 100 % zoom and scales with the zoom.)
"use strict";

(function () {
  const CSS_PX_PER_MM = 96 / 25.4;
  const COLORS = {
    paper: "#0d1117", minor: "#3a1d22", major: "#7a2e3a", trace: "#3fb950", clipped: "#ff9b2f",
    text: "#c9d1d9", muted: "#8b98a5", cal: "#3fb950", onset: "#ff7b72",
  };
  const BEAT_COLORS = { N: "#3fb950", S: "#d29922", V: "#f85149", F: "#bc8cff", Q: "#8b98a5" };
  const AXIS_MM = 5;   // time axis band at the bottom
  const HEAD_MM = 4;   // room for beat labels at the top of each band

  function devicePxPerMm() { return (window.devicePixelRatio || 1) * CSS_PX_PER_MM; }

  // Size a grid/trace canvas pair to cssWidth x cssHeight CSS px (device pixels inside).
  function sizeLayers(layers, cssWidth, cssHeight) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(cssWidth * dpr)), h = Math.max(1, Math.round(cssHeight * dpr));
    let changed = false;
    for (const c of layers) {  // touch the styles only on change: no forced layout per frame
      if (c.width !== w || c.height !== h) {
        c.width = w; c.height = h; changed = true;
        c.style.width = cssWidth + "px"; c.style.height = cssHeight + "px";
      }
    }
    return changed;
  }

  // Height in CSS px of a strip with nLeads bands of bandMm each plus the axis.
  function stripCssHeight(nLeads, bandMm) { return (nLeads * bandMm + AXIS_MM) * CSS_PX_PER_MM; }

  // The grid: 1 mm minor lines, 5 mm major lines, on whole device pixels from the top-left.
  function drawGrid(canvas) {
    const k = devicePxPerMm(), ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
    ctx.fillStyle = COLORS.paper; ctx.fillRect(0, 0, W, H);
    const line = 1;  // one device pixel
    for (const major of [false, true]) {  // majors drawn last, over the minors
      ctx.fillStyle = major ? COLORS.major : COLORS.minor;
      for (let i = 0; i * k < W; i++) {
        if ((i % 5 === 0) !== major) continue;
        ctx.fillRect(Math.round(i * k), 0, line, H);
      }
      for (let j = 0; j * k < H; j++) {
        if ((j % 5 === 0) !== major) continue;
        ctx.fillRect(0, Math.round(j * k), W, line);
      }
    }
    canvas.dataset.pxPerMm = k.toFixed(4);
    canvas.dataset.dpr = String(window.devicePixelRatio || 1);
  }

  function fmtClock(tS) {
    return new Date(tS * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  }

  // Draw one strip.
  //   opts.segments: [{t0: s, fs: Hz, leads: [array of mV per lead], names: [lead names]}], time order
  //   opts.tEnd: time (s) at the right edge (live) or opts.tStart at the left edge (fixed strips)
  //   opts.speed (mm/s), opts.gain (mm/mV), opts.bandMm (height of one lead's band, mm)
  //   opts.beats: [{id, t: s, label, p: probability}], opts.highlight: Set of beat ids
  //   opts.markers: [{t: s, text}] (onset/offset), opts.labels: bool (beat letters), opts.maxLeads
  // Returns {tStart, tEnd, clipped, calHeightPx, calX}.
  function drawStrip(canvas, opts) {
    const k = devicePxPerMm(), ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
    ctx.clearRect(0, 0, W, H);
    const speed = opts.speed || 25, gain = opts.gain || 10, bandMm = opts.bandMm || 30;
    const calW = 0.2 * speed * k, x0 = Math.round(2 * k + calW + 2 * k);  // calibration margin
    const seconds = (W - x0) / (speed * k);
    const tEnd = opts.tEnd != null ? opts.tEnd : opts.tStart + seconds;
    const tStart = tEnd - seconds;
    const X = (t) => x0 + (t - tStart) * speed * k;
    const names = opts.names || (opts.segments.length ? opts.segments[opts.segments.length - 1].names : ["ECG"]);
    const nLeads = Math.min(names.length, opts.maxLeads || names.length);
    let clipped = 0;
    const bandH = bandMm * k;
    for (let lead = 0; lead < nLeads; lead++) {
      const top = lead * bandH, bottom = top + bandH;
      const base = top + HEAD_MM * k + (bandH - HEAD_MM * k) * 0.55;
      const lo = top + 1, hi = bottom - 1;
      const Y = (mv) => base - mv * gain * k;
      // calibration pulse: 1 mV high, 0.2 s wide
      ctx.strokeStyle = COLORS.cal; ctx.lineWidth = Math.max(1, 1.25 * (window.devicePixelRatio || 1));
      const cx = Math.round(2 * k), cy = Math.round(base), ch = Math.round(gain * k);
      ctx.beginPath(); ctx.moveTo(cx - 1.5 * k, cy); ctx.lineTo(cx, cy); ctx.lineTo(cx, cy - ch);
      ctx.lineTo(cx + calW, cy - ch); ctx.lineTo(cx + calW, cy); ctx.lineTo(cx + calW + 1.5 * k, cy); ctx.stroke();
      // the trace: one path per run of contiguous samples, clamped samples redrawn in orange
      const clipPts = [];
      ctx.beginPath();
      let prevEnd = null;
      for (const seg of opts.segments) {
        const xs = seg.leads[lead];
        if (!xs) continue;
        const dt = 1 / seg.fs;
        const segEnd = seg.t0 + xs.length * dt;
        if (segEnd < tStart || seg.t0 > tEnd) { prevEnd = segEnd; continue; }
        const i0 = Math.max(0, Math.floor((tStart - seg.t0) * seg.fs));
        const i1 = Math.min(xs.length, Math.ceil((tEnd - seg.t0) * seg.fs) + 1);
        const joined = prevEnd != null && Math.abs(seg.t0 - prevEnd) <= 1.5 * dt;
        for (let i = i0; i < i1; i++) {
          const x = X(seg.t0 + i * dt);
          let y = Y(xs[i]);
          if (y < lo || y > hi) { y = y < lo ? lo : hi; clipPts.push(x, y); }
          if (i === i0 && !(joined && i0 === 0)) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        }
        prevEnd = segEnd;
      }
      ctx.strokeStyle = COLORS.trace; ctx.lineWidth = Math.max(1, 1.5 * (window.devicePixelRatio || 1));
      ctx.lineJoin = "round"; ctx.stroke();
      if (clipPts.length) {
        clipped += clipPts.length / 2;
        ctx.fillStyle = COLORS.clipped;
        for (let i = 0; i < clipPts.length; i += 2) ctx.fillRect(clipPts[i] - 1, clipPts[i + 1] - 2, 3, 4);
      }
      // lead name in the calibration margin, under the pulse
      ctx.fillStyle = COLORS.text; ctx.textAlign = "left"; ctx.textBaseline = "top";
      ctx.font = `bold ${3 * k}px system-ui, sans-serif`;
      ctx.fillText(names[lead] || "ECG", 0.8 * k, Math.min(bottom - 3.5 * k, base + 2 * k));
    }
    // beats: letters (with probability when highlighted), highlighted ones boxed; labels that
    // would collide move to a second row
    if (opts.beats && opts.beats.length) {
      const hl = opts.highlight || new Set();
      let lastX = [-1e9, -1e9];
      ctx.textAlign = "center"; ctx.textBaseline = "top";
      for (const b of opts.beats) {
        if (b.t < tStart || b.t > tEnd) continue;
        const x = X(b.t), isHl = hl.has(b.id);
        if (isHl) {
          ctx.strokeStyle = "#f85149"; ctx.lineWidth = Math.max(1, 1.5 * (window.devicePixelRatio || 1));
          ctx.strokeRect(x - 3 * k, 1, 6 * k, nLeads * bandH - 2);
        }
        if (!opts.labels && !isHl) continue;
        const text = isHl && b.p != null ? `${b.label || "?"} ${b.p.toFixed(2)}` : (b.label || "?");
        ctx.font = `bold ${(isHl ? 2.8 : 2.6) * k}px system-ui, sans-serif`;
        const w = ctx.measureText(text).width;
        const row = x - w / 2 > lastX[0] + 2 ? 0 : (x - w / 2 > lastX[1] + 2 ? 1 : -1);
        if (row < 0) continue;
        lastX[row] = x + w / 2;
        ctx.fillStyle = BEAT_COLORS[b.label] || COLORS.text;
        ctx.fillText(text, x, (0.6 + row * 3.4) * k + (isHl ? 0 : 0));
      }
    }
    // onset / offset markers
    for (const m of opts.markers || []) {
      if (m.t < tStart || m.t > tEnd) continue;
      const x = Math.round(X(m.t));
      ctx.fillStyle = COLORS.onset; ctx.fillRect(x - 1, 0, 2, nLeads * bandH);
      ctx.font = `bold ${2.8 * k}px system-ui, sans-serif`; ctx.textAlign = "left"; ctx.textBaseline = "top";
      ctx.fillText(m.text, x + 0.8 * k, nLeads * bandH - 4 * k);
    }
    // time axis: a tick every second, the clock time under each
    const axisTop = nLeads * bandH;
    ctx.fillStyle = COLORS.muted; ctx.font = `${2.6 * k}px system-ui, sans-serif`;
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    const every = speed >= 50 ? 1 : (W / k < 120 ? 2 : 1);
    const scaleText = `${speed} mm/s  ${gain} mm/mV`;
    const scaleW = ctx.measureText(scaleText).width + 2 * k;
    for (let t = Math.ceil(tStart / every) * every; t <= tEnd; t += every) {
      const x = Math.round(X(t));
      if (x < x0) continue;
      ctx.fillRect(x, axisTop, 1, 1.2 * k);
      if (x > x0 + 8 * k && x < W - scaleW - 8 * k) ctx.fillText(fmtClock(t), x, axisTop + 1.4 * k);
    }
    ctx.fillStyle = COLORS.text; ctx.textAlign = "right";
    ctx.fillText(scaleText, W - 1 * k, axisTop + 1.4 * k);
    canvas.dataset.speed = String(speed);
    canvas.dataset.gain = String(gain);
    canvas.dataset.clipped = String(clipped);
    canvas.dataset.calHeightPx = String(Math.round(gain * k));
    canvas.dataset.calX = String(Math.round(2 * k));  // the pulse's rising edge
    canvas.dataset.leads = String(nLeads);
    const first = opts.segments.length ? opts.segments[0].t0 : tEnd;
    canvas.dataset.dataStartX = String(Math.max(x0, Math.ceil(X(first))));
    canvas.dataset.seconds = seconds.toFixed(3);
    return { tStart, tEnd, clipped };
  }

  // Per-sample attributions under the trace (the explanation hook: AlertExplanation.attributions).
  function drawAttributions(canvas, attributions, segments, opts) {
    if (!attributions) { canvas.dataset.attributions = "none"; return; }
    const k = devicePxPerMm(), ctx = canvas.getContext("2d");
    const speed = opts.speed || 25, calW = 0.2 * speed * k, x0 = Math.round(2 * k + calW + 2 * k);
    const bandH = (opts.bandMm || 30) * k;
    attributions.segments.forEach((vals, si) => {
      const seg = segments[si];
      if (!seg) return;
      vals.forEach((a, i) => {
        const x = x0 + (seg.t0 + i / seg.fs - opts.tStart) * speed * k;
        ctx.fillStyle = a >= 0 ? `rgba(248,81,73,${Math.min(1, a) * 0.5})` : `rgba(88,166,255,${Math.min(1, -a) * 0.5})`;
        ctx.fillRect(x, bandH * (attributions.lead_index || 0) + bandH - 2 * k, Math.max(1, speed * k / seg.fs), 2 * k);
      });
    });
    canvas.dataset.attributions = attributions.method;
  }

  window.HLPaper = { CSS_PX_PER_MM, COLORS, BEAT_COLORS, AXIS_MM, devicePxPerMm, sizeLayers, stripCssHeight, drawGrid, drawStrip, drawAttributions, fmtClock };
})();

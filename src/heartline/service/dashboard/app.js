// Heartline dashboard: plain JS, no dependencies. Token in sessionStorage (cleared with the tab).
"use strict";

const API = "/api/v1";
const POLL_MS = 1000;
const COLORS = { N: "#3fb950", S: "#d29922", V: "#f85149", F: "#bc8cff", Q: "#8b98a5" };
const state = { token: sessionStorage.getItem("hl-token"), role: sessionStorage.getItem("hl-role"),
  username: sessionStorage.getItem("hl-user"), patient: null, timers: [], busy: false };

const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const resp = await fetch(API + path, Object.assign({}, options, { headers }));
  if (resp.status === 401) { logout("Session expired: please sign in again."); throw new Error("unauthorized"); }
  if (!resp.ok) {
    let detail = resp.statusText;
    try { detail = (await resp.json()).detail; } catch (e) { /* not JSON */ }
    const err = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    err.status = resp.status;
    throw err;
  }
  return resp.status === 204 ? null : resp.json();
}

// ------------------------------------------------------------------------------------ login
async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const body = new URLSearchParams({ username: $("username").value, password: $("password").value });
  const resp = await fetch(API + "/login/access-token", { method: "POST", body,
    headers: { "Content-Type": "application/x-www-form-urlencoded" } });
  if (!resp.ok) {
    $("login-error").textContent = resp.status === 429
      ? "Too many failed attempts: wait a minute." : "Wrong username or password.";
    return;
  }
  const tok = await resp.json();
  state.token = tok.access_token; state.role = tok.role; state.username = $("username").value;
  sessionStorage.setItem("hl-token", state.token);
  sessionStorage.setItem("hl-role", state.role);
  sessionStorage.setItem("hl-user", state.username);
  $("password").value = "";
  start();
}

function logout(message) {
  state.timers.forEach(clearInterval);
  state.timers = [];
  state.token = null; state.patient = null;
  sessionStorage.clear();
  $("app-view").hidden = true; $("login-view").hidden = false; $("logout").hidden = true;
  $("whoami").textContent = "";
  if (message) $("login-error").textContent = message;
}

function start() {
  $("login-view").hidden = true; $("app-view").hidden = false; $("logout").hidden = false;
  $("whoami").textContent = state.username + " (" + state.role + ")";
  refreshPatients();
  state.timers.push(setInterval(refreshPatients, 2 * POLL_MS));
  state.timers.push(setInterval(refreshLive, POLL_MS));
  state.timers.push(setInterval(refreshAlerts, 2 * POLL_MS));
  state.timers.push(setInterval(refreshVitals, 5 * POLL_MS));
}

// --------------------------------------------------------------------------------- patients
function fmtTime(iso) {
  if (!iso) return "--";
  const t = new Date(iso);
  return t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

async function refreshPatients() {
  let rows;
  try { rows = await api("/monitoring"); } catch (e) { return; }
  const tbody = $("patient-rows");
  tbody.replaceChildren();
  for (const p of rows) {
    const tr = document.createElement("tr");
    tr.dataset.patientId = p.id;
    if (p.id === state.patient) tr.classList.add("selected");
    const cells = [p.display_name || p.id, p.hr_bpm == null ? "--" : Math.round(p.hr_bpm), null, fmtTime(p.last_update)];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 2) {
        const b = document.createElement("span");
        b.className = "badge" + (p.open_alerts > 0 ? " hot" : "");
        b.textContent = p.open_alerts;
        td.appendChild(b);
      } else td.textContent = text;
      tr.appendChild(td);
    });
    tr.addEventListener("click", () => selectPatient(p.id, p.display_name));
    tbody.appendChild(tr);
  }
  if (!state.patient && rows.length) selectPatient(rows[0].id, rows[0].display_name);
}

function selectPatient(id, name) {
  state.patient = id;
  $("patient-name").textContent = "— " + (name || id);
  document.querySelectorAll("#patient-rows tr").forEach((tr) =>
    tr.classList.toggle("selected", tr.dataset.patientId === id));
  $("explain-view").hidden = true;
  refreshLive(); refreshAlerts(); refreshVitals();
}

// ------------------------------------------------------------------------------ ECG drawing
function sizeCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(200, Math.floor(canvas.clientWidth * ratio));
  const h = Math.floor(canvas.clientHeight * ratio);
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  return ratio;
}

function drawStrip(canvas, ecg, beats, highlighted) {
  const ratio = sizeCanvas(canvas);
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const t0 = Date.parse(ecg.start) / 1000, t1 = Date.parse(ecg.end) / 1000;
  const span = Math.max(t1 - t0, 1e-3);
  const x = (t) => ((t - t0) / span) * W;
  const mvPerH = 4.0;  // 4 mV over the full height
  const y = (mv) => H * 0.55 - (mv / mvPerH) * H;
  ctx.fillStyle = "#0b0f14"; ctx.fillRect(0, 0, W, H);
  // ECG paper: 0.2 s and 0.5 mV major lines.
  ctx.strokeStyle = "#3a2020"; ctx.lineWidth = 1;
  for (let t = Math.ceil(t0 / 0.2) * 0.2; t < t1; t += 0.2) { ctx.beginPath(); ctx.moveTo(x(t), 0); ctx.lineTo(x(t), H); ctx.stroke(); }
  for (let mv = -2; mv <= 2; mv += 0.5) { ctx.beginPath(); ctx.moveTo(0, y(mv)); ctx.lineTo(W, y(mv)); ctx.stroke(); }
  const hl = new Set(highlighted || []);
  for (const b of beats) {  // highlight bands behind the trace
    if (!hl.has(b.id)) continue;
    const bx = x(Date.parse(b.time) / 1000);
    ctx.fillStyle = "rgba(248,81,73,0.25)"; ctx.fillRect(bx - 14 * ratio, 0, 28 * ratio, H);
  }
  ctx.strokeStyle = "#3fb950"; ctx.lineWidth = 1.5 * ratio;
  for (const seg of ecg.segments) {
    const s0 = Date.parse(seg.start_time) / 1000, lead = seg.samples_mv[0];
    ctx.beginPath();
    for (let i = 0; i < lead.length; i++) {
      const px = x(s0 + i / seg.fs_hz), py = y(lead[i]);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    }
    ctx.stroke();
  }
  ctx.font = `bold ${12 * ratio}px system-ui, sans-serif`; ctx.textAlign = "center";
  for (const b of beats) {
    const bx = x(Date.parse(b.time) / 1000), label = b.label || "?";
    ctx.fillStyle = COLORS[label] || "#e6edf3";
    ctx.fillText(label, bx, 14 * ratio);
    if (hl.has(b.id)) { ctx.strokeStyle = "#f85149"; ctx.lineWidth = 2 * ratio; ctx.strokeRect(bx - 14 * ratio, 1, 28 * ratio, H - 2); }
  }
  if (!ecg.segments.length) {
    ctx.fillStyle = "#8b98a5"; ctx.fillText("no ECG in this window", W / 2, H / 2);
  }
}

async function refreshLive() {
  if (!state.patient || state.busy) return;
  state.busy = true;
  const pid = encodeURIComponent(state.patient);
  try {
    const ecg = await api(`/patients/${pid}/ecg?seconds=10`);
    const q = `start=${encodeURIComponent(ecg.start)}&end=${encodeURIComponent(ecg.end)}`;
    const beats = await api(`/patients/${pid}/beats?${q}`);
    const canvas = $("ecg-canvas");
    drawStrip(canvas, ecg, beats, []);
    const last = ecg.segments.length ? ecg.segments[ecg.segments.length - 1] : null;
    const lastSeq = last ? `${last.device_id}:${last.seq}` : "";
    if (lastSeq !== canvas.dataset.lastSeq) {
      canvas.dataset.lastSeq = lastSeq;
      canvas.dataset.updates = String(Number(canvas.dataset.updates) + 1);
    }
    canvas.dataset.beats = String(beats.length);
    canvas.dataset.windowEnd = ecg.end;
    const times = beats.map((b) => Date.parse(b.time) / 1000);
    const rr = times.slice(1).map((t, i) => t - times[i]).filter((d) => d > 0.2 && d < 3).sort((a, b) => a - b);
    $("hr-value").textContent = rr.length >= 2 ? Math.round(60 / rr[Math.floor(rr.length / 2)]) : "--";
    $("strip-status").textContent = last ? `updated ${fmtTime(ecg.end)} · ${beats.length} beats` : "waiting for data";
  } catch (e) {
    $("strip-status").textContent = "ECG unavailable: " + e.message;
  } finally { state.busy = false; }
}

async function refreshVitals() {
  if (!state.patient) return;
  try {
    const rows = await api(`/patients/${encodeURIComponent(state.patient)}/vitals`);
    const latest = (key) => { for (let i = rows.length - 1; i >= 0; i--) if (rows[i][key] != null) return rows[i]; return null; };
    const s = latest("spo2_pct"), t = latest("temp_c"), b = latest("sbp_mmhg"), h = latest("hr_bpm");
    $("v-spo2").textContent = s ? `${s.spo2_pct.toFixed(0)} %` : "--";
    $("v-temp").textContent = t ? `${t.temp_c.toFixed(1)} °C` : "--";
    $("v-bp").textContent = b ? `${b.sbp_mmhg.toFixed(0)}/${b.dbp_mmhg.toFixed(0)} mmHg` : "--";
    $("v-hr").textContent = h ? `${h.hr_bpm.toFixed(0)} bpm` : "--";
  } catch (e) { /* shown by the strip status */ }
}

// ----------------------------------------------------------------------------------- alerts
async function refreshAlerts() {
  if (!state.patient) return;
  let rows;
  try { rows = await api(`/patients/${encodeURIComponent(state.patient)}/alerts`); } catch (e) { return; }
  const feed = $("alert-feed");
  feed.replaceChildren();
  if (!rows.length) { const li = document.createElement("li"); li.textContent = "No alerts"; feed.appendChild(li); }
  for (const a of rows) {
    const li = document.createElement("li");
    li.dataset.alertId = a.id;
    li.className = `sev-${a.severity}` + (a.acknowledged_at ? " acked" : "");
    const title = document.createElement("strong");
    title.textContent = `${a.kind} (${a.severity})`;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${fmtTime(a.start_time)}${a.open ? " · ongoing" : " – " + fmtTime(a.end_time)}` +
      (a.acknowledged_by ? ` · acknowledged by ${a.acknowledged_by}` : "");
    li.append(title, meta);
    if (!a.acknowledged_at && state.role !== "patient") {
      const ack = document.createElement("button");
      ack.type = "button"; ack.className = "ack"; ack.textContent = "Acknowledge";
      ack.addEventListener("click", () => acknowledge(a.id, ack));
      li.appendChild(ack);
    }
    const ex = document.createElement("button");
    ex.type = "button"; ex.className = "explain"; ex.textContent = "Explain";
    ex.addEventListener("click", () => explain(a.id));
    li.appendChild(ex);
    feed.appendChild(li);
  }
}

async function acknowledge(id, button) {
  button.disabled = true;
  try { await api(`/alerts/${id}/acknowledge`, { method: "POST" }); }
  catch (e) { if (e.status !== 409) { button.disabled = false; alert("Could not acknowledge: " + e.message); } }
  refreshAlerts(); refreshPatients();
}

async function explain(id) {
  const data = await api(`/alerts/${id}/explanation`);
  $("explain-view").hidden = false;
  const n = data.highlighted_beat_ids.length;
  $("explain-text").textContent = `${data.alert.kind} (${data.alert.severity}) at ${fmtTime(data.alert.start_time)}: ` +
    `${n} triggering beat${n === 1 ? "" : "s"} highlighted among ${data.beats.length}.`;
  const canvas = $("explain-canvas");
  canvas.dataset.alertId = String(id);
  canvas.dataset.highlighted = String(n);
  drawStrip(canvas, data.ecg, data.beats, data.highlighted_beat_ids);
  $("explain-view").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout());
  $("explain-close").addEventListener("click", () => { $("explain-view").hidden = true; });
  if (state.token) start();
});

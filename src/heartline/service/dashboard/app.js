// Heartline dashboard: plain JS, no dependencies, nothing loaded from the internet.
//
// One server-sent event stream per tab (GET /api/v1/stream, read with fetch so the bearer token
// stays in a header) pushes the station tiles, ECG, beats, alarms and vitals; nothing is polled.
// The 15-minute access token is renewed through a rotating refresh token (POST /session/refresh)
// two minutes before it expires; tokens live in sessionStorage (cleared with the tab). After
// IDLE_LOCK_MS without input the screen locks (password to unlock) while monitoring continues.
"use strict";

const API = "/api/v1";
const IDLE_LOCK_MS = 30 * 60 * 1000;
const REFRESH_MARGIN_S = 120;
const BUFFER_S = 30;
const PRIORITY_RANK = { high: 0, medium: 1, low: 2 };
const P = window.HLPaper;

const state = {
  token: sessionStorage.getItem("hl-token"), refresh: sessionStorage.getItem("hl-refresh"),
  role: sessionStorage.getItem("hl-role"), username: sessionStorage.getItem("hl-user"),
  expiresAt: Number(sessionStorage.getItem("hl-exp") || 0),
  viewer: sessionStorage.getItem("hl-viewer") || Math.random().toString(36).slice(2, 12),
  view: "station", patient: null, patientName: null,
  speed: 25, gain: 10,
  tiles: [], ecg: new Map(), beats: [], alerts: [], vitals: {},
  stream: null, refreshTimer: null, lastInput: Date.now(), locked: false, dirty: new Set(),
  events: 0, sound: false, audio: null, lastBeep: -Infinity,
  renderMs: [],
};
sessionStorage.setItem("hl-viewer", state.viewer);
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------------------------ API
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  let resp = await fetch(API + path, Object.assign({}, options, { headers }));
  // 503: the database was busy or unreachable and the request did not happen; try again after
  // the server's Retry-After (at most 3 times, at most 5 s apart)
  for (let tries = 0; resp.status === 503 && tries < 3; tries++) {
    const wait = Math.min(5, Math.max(0, Number(resp.headers.get("Retry-After")) || 1));
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    resp = await fetch(API + path, Object.assign({}, options, { headers }));
  }
  if (resp.status === 401 && state.refresh && await refreshTokens()) {
    headers.Authorization = "Bearer " + state.token;
    resp = await fetch(API + path, Object.assign({}, options, { headers }));
  }
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

function saveTokens(tok) {
  state.token = tok.access_token; state.role = tok.role;
  state.expiresAt = Date.now() + tok.expires_in * 1000;
  sessionStorage.setItem("hl-token", state.token); sessionStorage.setItem("hl-role", state.role);
  sessionStorage.setItem("hl-exp", String(state.expiresAt));
  if (tok.refresh_token) { state.refresh = tok.refresh_token; sessionStorage.setItem("hl-refresh", state.refresh); }
  scheduleRefresh();
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  if (!state.refresh) return;
  const wait = Math.max(1000, state.expiresAt - Date.now() - REFRESH_MARGIN_S * 1000);
  state.refreshTimer = setTimeout(async () => { if (await refreshTokens()) connect(); }, wait);
}

let refreshing = null;
async function refreshTokens() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const resp = await fetch(API + "/session/refresh", { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh_token: state.refresh }) });
      if (!resp.ok) { state.refresh = null; sessionStorage.removeItem("hl-refresh"); return false; }
      const tok = await resp.json();
      saveTokens(tok);
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
      return true;
    } catch (e) { return false; } finally { refreshing = null; }
  })();
  return refreshing;
}

// ------------------------------------------------------------------------------------ login
async function passwordLogin(username, password) {
  const body = new URLSearchParams({ username, password });
  const resp = await fetch(API + "/login/access-token", { method: "POST", body,
    headers: { "Content-Type": "application/x-www-form-urlencoded" } });
  if (!resp.ok) return resp.status;
  saveTokens(await resp.json());
  try {  // start a refresh-token family so that this screen stays signed in
    const r = await fetch(API + "/session/refresh-token", { method: "POST", headers: { Authorization: "Bearer " + state.token } });
    if (r.ok) { state.refresh = (await r.json()).refresh_token; sessionStorage.setItem("hl-refresh", state.refresh); scheduleRefresh(); }
  } catch (e) { /* works without: signs out after 15 min */ }
  return 200;
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const status = await passwordLogin($("username").value, $("password").value);
  if (status !== 200) {
    $("login-error").textContent = status === 429 ? "Too many failed attempts: wait a minute." : "Wrong username or password.";
    return;
  }
  state.username = $("username").value; sessionStorage.setItem("hl-user", state.username);
  $("password").value = "";
  start();
}

function logout(message) {
  if (state.refresh) {
    fetch(API + "/session/revoke", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: state.refresh }) }).catch(() => {});
  }
  if (state.stream) state.stream.abort();
  clearTimeout(state.refreshTimer);
  Object.assign(state, { token: null, refresh: null, patient: null, tiles: [], alerts: [], beats: [] });
  state.ecg.clear();
  ["hl-token", "hl-refresh", "hl-role", "hl-user", "hl-exp"].forEach((k) => sessionStorage.removeItem(k));
  for (const id of ["app-view", "station-view", "nav", "logout", "lock", "sound-wrap", "lock-view"]) $(id).hidden = true;
  $("login-view").hidden = false; $("whoami").textContent = ""; $("conn").textContent = "";
  if (message) $("login-error").textContent = message;
}

function start() {
  $("login-view").hidden = true;
  for (const id of ["nav", "logout", "lock", "sound-wrap"]) $(id).hidden = false;
  $("whoami").textContent = state.username + " (" + state.role + ")";
  scheduleRefresh();
  showStation();
  requestAnimationFrame(frame);
}

// ------------------------------------------------------------------------------ idle lock
function noteInput() { if (!state.locked) state.lastInput = Date.now(); }
function checkIdle() {
  if (state.token && !state.locked && Date.now() - state.lastInput > IDLE_LOCK_MS) lockScreen();
}
function lockScreen() {
  state.locked = true;
  $("lock-user").textContent = state.username; $("lock-view").hidden = false;
  document.body.dataset.locked = "1";
}
async function unlock(event) {
  event.preventDefault();
  const status = await passwordLogin(state.username, $("unlock-password").value);
  $("unlock-password").value = "";
  if (status !== 200) { $("unlock-error").textContent = "Wrong password."; return; }
  state.locked = false; state.lastInput = Date.now(); $("lock-view").hidden = true; $("unlock-error").textContent = "";
  document.body.dataset.locked = "0";
  connect();
}

// --------------------------------------------------------------------------------- stream
function connect() {
  if (state.stream) state.stream.abort();
  if (!state.token) return;
  const ctrl = new AbortController();
  state.stream = ctrl;
  const q = new URLSearchParams({ viewer: state.viewer });
  if (state.patient) q.set("focus", state.patient);
  (async () => {
    let reconnect = true;
    try {
      const resp = await fetch(`${API}/stream?${q}`, { headers: { Authorization: "Bearer " + state.token }, signal: ctrl.signal });
      if (resp.status === 401) { reconnect = await refreshTokens(); if (!reconnect) logout("Session expired: please sign in again."); return; }
      if (!resp.ok) throw new Error("stream " + resp.status);
      $("conn").textContent = "● live"; $("conn").className = "live";
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
          let ev = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) ev = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (!data) continue;
          if (ev === "replaced") { reconnect = false; return; }
          if (ev === "expired") { reconnect = await refreshTokens(); break; }
          onEvent(ev, JSON.parse(data));
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) { reconnect = false; return; }
    } finally {
      if (state.stream === ctrl) { $("conn").textContent = "○ reconnecting"; $("conn").className = "muted"; }
      if (reconnect && state.stream === ctrl && state.token) setTimeout(() => { if (state.stream === ctrl) connect(); }, 1000);
    }
  })();
}

function onEvent(ev, data) {
  state.events++;
  document.body.dataset.events = String(state.events);
  if (ev === "station") { state.tiles = data; renderStation(); }
  else if (ev === "ecg") { state.ecgEvents = (state.ecgEvents || 0) + 1; addEcg(data); }
  else if (ev === "beats" && data.patient_id === state.patient) addBeats(data.beats);
  else if (ev === "alerts" && data.patient_id === state.patient) { state.alerts = data.alerts; renderAlerts(); }
  else if (ev === "vitals" && data.patient_id === state.patient) { state.vitals = data.vitals; renderVitals(); }
}

function addEcg(data) {
  let buf = state.ecg.get(data.patient_id);
  if (!buf) { buf = { segments: [], names: null, focus: data.focus }; state.ecg.set(data.patient_id, buf); }
  if (data.focus && !buf.focus) { buf.segments = []; buf.focus = true; }
  const have = new Set(buf.segments.map((s) => s.key));
  for (const s of data.segments) {
    if (have.has(`${s.device_id}:${s.seq}`)) continue;
    buf.segments.push({ t0: Date.parse(s.start_time) / 1000, fs: s.fs_hz, leads: s.samples_mv, names: s.lead_names, key: `${s.device_id}:${s.seq}` });
  }
  buf.segments.sort((a, b) => a.t0 - b.t0);
  const last = buf.segments[buf.segments.length - 1];
  const lastEnd = last.t0 + last.leads[0].length / last.fs;
  buf.segments = buf.segments.filter((s) => s.t0 + s.leads[0].length / s.fs > lastEnd - BUFFER_S);
  buf.end = lastEnd; buf.names = last.names;
  state.dirty.add(data.patient_id);
  if (data.patient_id === state.patient) {
    const canvas = $("ecg-canvas");
    canvas.dataset.lastSeq = last.key;
    canvas.dataset.updates = String(Number(canvas.dataset.updates) + 1);
  }
}

function addBeats(beats) {
  const seen = new Set(state.beats.map((b) => b.id));
  for (const b of beats) if (!seen.has(b.id)) state.beats.push({ id: b.id, t: Date.parse(b.time) / 1000, label: b.label, p: b.confidence });
  const end = state.beats.length ? state.beats[state.beats.length - 1].t : 0;
  state.beats = state.beats.filter((b) => b.t > end - BUFFER_S);
  const recent = state.beats.filter((b) => b.t > end - 10);
  const rr = recent.slice(1).map((b, i) => b.t - recent[i].t).filter((d) => d > 0.2 && d < 3).sort((a, c) => a - c);
  $("hr-value").textContent = rr.length >= 2 ? Math.round(60 / rr[Math.floor(rr.length / 2)]) : "--";
  state.dirty.add(state.patient);
}

// ------------------------------------------------------------------------------- rendering
// Redraw what changed, within a budget per frame: tiles left over wait for the next frame, so
// 32 tiles updated by one stream tick are spread over a few frames instead of one long one.
const FRAME_BUDGET_MS = 6;
function frame() {
  if (!state.token) return;
  requestAnimationFrame(frame);  // first: an error below must not stop the display
  const t0 = performance.now();
  let drawn = 0;
  if (state.view === "patient" && state.dirty.has(state.patient)) { state.dirty.delete(state.patient); drawLive(); drawn++; }
  for (const pid of state.dirty) {
    if (performance.now() - t0 > FRAME_BUDGET_MS) break;
    state.dirty.delete(pid);
    if (state.view === "station" && pid) { drawTileStrip(pid); drawn++; }
  }
  if (drawn) {  // time spent drawing in the frames that drew something
    state.renderMs.push(performance.now() - t0);
    if (state.renderMs.length > 2000) state.renderMs.shift();
  }
  maybeBeep();
}

function fmtTime(iso) {
  if (!iso) return "--";
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
}

function showStation() {
  state.view = "station"; state.patient = null; state.beats = []; state.alerts = [];
  $("station-view").hidden = false; $("app-view").hidden = true;
  $("nav-station").classList.add("active"); $("nav-patient").classList.remove("active");
  $("nav-patient").disabled = true;
  connect();
  renderStation();
}

function showPatient(id, name) {
  state.view = "patient"; state.patient = id; state.patientName = name || id;
  state.beats = []; state.alerts = []; state.vitals = {};
  state.ecg.delete(id);
  $("station-view").hidden = true; $("app-view").hidden = false; $("explain-view").hidden = true;
  $("nav-patient").disabled = false; $("nav-patient").textContent = name || id;
  $("nav-patient").classList.add("active"); $("nav-station").classList.remove("active");
  $("patient-name").textContent = "— " + state.patientName;
  $("hr-value").textContent = "--";
  $("ecg-canvas").dataset.lastSeq = ""; $("ecg-canvas").dataset.clipped = "0";
  $("alert-feed").replaceChildren();
  renderVitals();
  resetTemplates();
  connect();
  drawLive();
}

function tileFor(t) {
  const div = document.createElement("article");
  div.className = "tile"; div.dataset.patientId = t.patient_id; div.tabIndex = 0;
  div.innerHTML = `<header><span class="name"></span><span class="alarm"></span></header>
    <div class="paper tile-paper"><canvas class="grid-layer"></canvas><canvas class="trace-layer"></canvas></div>
    <footer><span class="hr"></span><span class="spo2"></span><span class="upd muted"></span></footer>`;
  div.addEventListener("click", () => showPatient(t.patient_id, t.display_name));
  div.addEventListener("keydown", (e) => { if (e.key === "Enter") showPatient(t.patient_id, t.display_name); });
  return div;
}

function renderStation() {
  if (state.view !== "station") return;
  const grid = $("station-grid");
  const existing = new Map([...grid.children].map((el) => [el.dataset.patientId, el]));
  const order = [];
  for (const t of state.tiles) {
    let el = existing.get(t.patient_id);
    if (!el) { el = tileFor(t); state.dirty.add(t.patient_id); }
    const a = t.top_alarm;
    el.className = "tile" + (t.priority ? " prio-" + t.priority : "") + (a && a.category === "technical" && !t.priority ? " technical" : "") +
      (a && a.acknowledged_at ? " acked" : "") + (a && a.silenced_until ? " silenced" : "");
    el.dataset.priority = t.priority || "none";
    el.querySelector(".name").textContent = t.display_name || t.patient_id;
    el.querySelector(".alarm").textContent = a ? a.title : "";
    el.querySelector(".hr").textContent = t.hr_bpm == null ? "HR --" : `HR ${Math.round(t.hr_bpm)} bpm`;
    el.querySelector(".spo2").textContent = t.spo2 ? `SpO₂ ${Math.round(t.spo2.value)} ${t.spo2.unit}` : "SpO₂ --";
    el.querySelector(".spo2").title = t.spo2 ? "measured " + fmtTime(t.spo2.time) : "";
    el.querySelector(".upd").textContent = fmtTime(t.last_update);
    order.push(el);
  }
  order.forEach((el, i) => { if (grid.children[i] !== el) grid.insertBefore(el, grid.children[i] || null); });
  for (const [pid, el] of existing) if (!state.tiles.some((t) => t.patient_id === pid)) el.remove();
  grid.dataset.tiles = String(state.tiles.length);
  grid.dataset.order = state.tiles.map((t) => t.patient_id).join(",");
}

function drawTileStrip(pid) {
  const el = document.querySelector(`#station-grid .tile[data-patient-id="${CSS.escape(pid)}"]`);
  const buf = state.ecg.get(pid);
  if (!el || !buf) return;
  const [grid, trace] = el.querySelectorAll("canvas");
  // the width is read from the layout once per tile and after a resize, never per frame
  if (!el.dataset.cssWidth) el.dataset.cssWidth = String(el.querySelector(".tile-paper").clientWidth);
  const w = Number(el.dataset.cssWidth);
  if (P.sizeLayers([grid, trace], w, P.stripCssHeight(1, 22)) || !grid.dataset.pxPerMm) P.drawGrid(grid);
  P.drawStrip(trace, { segments: buf.segments, names: buf.names, tEnd: buf.end, speed: 25, gain: 10, bandMm: 22, maxLeads: 1 });
}

function drawLive() {
  const buf = state.ecg.get(state.patient);
  const grid = $("ecg-grid"), trace = $("ecg-canvas");
  const nLeads = buf && buf.names ? buf.names.length : 1;
  const w = $("ecg-paper").clientWidth;
  const bandMm = liveBandMm();
  if (P.sizeLayers([grid, trace], w, P.stripCssHeight(nLeads, bandMm)) || !grid.dataset.pxPerMm) P.drawGrid(grid);
  $("strip-scale").textContent = `${state.speed} mm/s · ${state.gain} mm/mV · 1 mV calibration pulse`;
  if (!buf) { trace.getContext("2d").clearRect(0, 0, trace.width, trace.height); $("strip-status").textContent = "waiting for data"; return; }
  P.drawStrip(trace, { segments: buf.segments, names: buf.names, tEnd: buf.end, speed: state.speed, gain: state.gain,
    bandMm, beats: state.beats, labels: true });
  trace.dataset.beats = String(state.beats.filter((b) => b.t > buf.end - Number(trace.dataset.seconds)).length);
  trace.dataset.windowEnd = new Date(buf.end * 1000).toISOString();
  $("strip-status").textContent = `updated ${fmtTime(buf.end * 1000)} · ${trace.dataset.seconds.split(".")[0]} s shown`;
}

// Height of one lead's band: 30 mm, 45 mm at 20 mm/mV (so the 1 mV pulse and ~1.5 mV fit).
function liveBandMm() { return state.gain >= 20 ? 45 : 30; }

function renderVitals() {
  const v = state.vitals || {};
  const show = (id, x, digits) => {
    $(id).textContent = x ? `${x.value.toFixed(digits)} ${x.unit}` : "--";
    if (x) { const s = document.createElement("small"); s.className = "muted"; s.textContent = ` at ${fmtTime(x.time)}`; $(id).appendChild(s); }
  };
  show("v-hr", v.hr, 0); show("v-spo2", v.spo2, 0); show("v-temp", v.skin_temp, 1);
  if (v.sbp && v.dbp) {
    $("v-bp").textContent = `${v.sbp.value.toFixed(0)}/${v.dbp.value.toFixed(0)} mmHg`;
    const s = document.createElement("small"); s.className = "muted"; s.textContent = ` at ${fmtTime(v.sbp.time)}`; $("v-bp").appendChild(s);
  } else $("v-bp").textContent = "--";
}

// ----------------------------------------------------------------------------------- alarms
function renderAlerts() {
  const feed = $("alert-feed");
  feed.replaceChildren();
  if (!state.alerts.length) { const li = document.createElement("li"); li.textContent = "No alarms"; feed.appendChild(li); }
  for (const a of state.alerts) {  // the server sends them by priority, then newest first
    const li = document.createElement("li");
    li.dataset.alertId = a.id; li.dataset.priority = a.priority; li.dataset.category = a.category;
    li.className = `prio-${a.priority} cat-${a.category}` + (a.acknowledged_at ? " acked" : "") + (a.open ? " open" : "");
    const title = document.createElement("strong");
    title.textContent = (a.category === "technical" ? "⚙ " : "") + a.title;
    const tag = document.createElement("span");
    tag.className = "tag"; tag.textContent = a.category === "technical" ? "technical" : a.priority;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${fmtTime(a.start_time)}${a.open ? " · ongoing" : " – " + fmtTime(a.end_time)}` +
      (a.acknowledged_by ? ` · acknowledged by ${a.acknowledged_by}` : "") +
      (a.silenced_until ? ` · silenced until ${fmtTime(a.silenced_until)}` : "");
    li.append(tag, title, meta);
    if (state.role !== "patient") {
      if (!a.acknowledged_at) li.appendChild(button("Acknowledge", "ack", () => acknowledge(a.id)));
      if (a.open || !a.acknowledged_at) li.appendChild(button("Silence 2 min", "silence", () => silence(a.id)));
    }
    li.appendChild(button("Explain", "explain", () => explain(a.id)));
    feed.appendChild(li);
  }
}

function button(text, cls, fn) {
  const b = document.createElement("button");
  b.type = "button"; b.className = cls; b.textContent = text;
  b.addEventListener("click", async () => { b.disabled = true; try { await fn(); } finally { b.disabled = false; } });
  return b;
}

function replaceAlert(updated) {
  state.alerts = state.alerts.map((a) => (a.id === updated.id ? updated : a));
  renderAlerts();
}

async function acknowledge(id) {
  try { replaceAlert(await api(`/alerts/${id}/acknowledge`, { method: "POST" })); }
  catch (e) { if (e.status !== 409) alert("Could not acknowledge: " + e.message); }
}

async function silence(id) {
  try {
    replaceAlert(await api(`/alerts/${id}/silence`, { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ minutes: 2 }) }));
  } catch (e) { alert("Could not silence: " + e.message); }
}

// Optional audible cue for unacknowledged, unsilenced high-priority alarms (off by default).
function maybeBeep() {
  if (!state.sound || performance.now() - state.lastBeep < 10000) return;
  const ringing = state.tiles.some((t) => t.priority === "high" && t.top_alarm && !t.top_alarm.acknowledged_at && !t.top_alarm.silenced_until) ||
    state.alerts.some((a) => a.priority === "high" && !a.acknowledged_at && !a.silenced_until);
  if (!ringing) return;
  state.lastBeep = performance.now();
  try {
    state.audio = state.audio || new AudioContext();
    const ctx = state.audio;
    [0, 0.25, 0.5, 1.0, 1.25].forEach((t) => {  // IEC 60601-1-8 high-priority rhythm: 3 + 2 pulses
      const o = ctx.createOscillator(), g = ctx.createGain();
      o.frequency.value = 880; g.gain.value = 0.15;
      o.connect(g).connect(ctx.destination);
      o.start(ctx.currentTime + t); o.stop(ctx.currentTime + t + 0.15);
    });
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  } catch (e) { /* no audio device */ }
}

// ------------------------------------------------------------------------------ explanation
async function explain(id) {
  const data = await api(`/alerts/${id}/explanation`);
  const view = $("explain-view");
  view.hidden = false; view.dataset.view = data.view; view.dataset.alertId = String(id);
  const a = data.alert;
  let text = `${a.title} — ${a.priority} priority, ${fmtTime(a.start_time)}${a.open ? ", ongoing" : " to " + fmtTime(a.end_time)}.`;
  if (data.view === "beats") text += ` ${data.highlighted_beat_ids.length} beat(s) involved, boxed with label and probability.`;
  if (data.view === "episode") text += ` Onset ${fmtTime(data.onset)}${data.offset ? ", offset " + fmtTime(data.offset) : ", still going"} (red lines).`;
  $("explain-text").textContent = text;
  // statistics with thresholds
  const stats = $("explain-stats");
  stats.hidden = !data.statistics.length;
  stats.tBodies[0].replaceChildren(...data.statistics.map((s) => {
    const tr = document.createElement("tr");
    const thr = s.threshold == null ? "" : (s.comparison === "within" ? s.reference.split("band ").pop() : `${s.comparison} ${s.threshold} ${s.unit}`);
    [s.name, s.value == null ? "--" : `${s.value} ${s.unit}`, thr, s.fired == null ? "?" : (s.fired ? "yes" : "no")]
      .forEach((x) => { const td = document.createElement("td"); td.textContent = x; tr.appendChild(td); });
    tr.dataset.fired = String(s.fired);
    return tr;
  }));
  // NEWS2 by vital sign
  const nt = $("news2-table");
  nt.hidden = !data.news2;
  if (data.news2) {
    const names = { respiration_rate: "Respiration rate", spo2: "SpO₂", supplemental_oxygen: "Supplemental oxygen",
      systolic_bp: "Systolic BP", pulse: "Pulse", consciousness: "Consciousness", temperature: "Temperature (from skin)" };
    nt.tBodies[0].replaceChildren(...data.news2.rows.map((r) => {
      const tr = document.createElement("tr"); tr.dataset.parameter = r.parameter;
      const val = r.value == null ? (r.parameter === "temperature" ? "not scored (a wearable measures skin, not core, temperature)" : "not measured") : (typeof r.value === "number" ? `${Math.round(r.value * 10) / 10} ${r.unit}` : `${r.value}`);
      [names[r.parameter] || r.parameter, val + (r.note ? ` (${r.note})` : ""), r.score == null ? "--" : String(r.score)]
        .forEach((x) => { const td = document.createElement("td"); td.textContent = x; tr.appendChild(td); });
      if (r.score >= 3) tr.className = "hot";
      return tr;
    }));
    $("news2-total").textContent = data.news2.total == null ? "--" : String(data.news2.total);
    $("news2-band").textContent = (data.news2.band || "") + " clinical risk" + (data.news2.complete === false ? " (partial)" : "");
  }
  // RR tachogram and Poincare plot
  $("rr-fig").hidden = !data.rr; $("poincare-fig").hidden = !(data.rr && a.kind === "af_like");
  if (data.rr) drawTachogram($("rr-canvas"), data.rr);
  if (data.rr && a.kind === "af_like") drawPoincare($("poincare-canvas"), data.rr.rr_ms);
  // the strip, at paper scale (scrolls sideways when wider than the screen)
  const segs = data.ecg.segments.map((s) => ({ t0: Date.parse(s.start_time) / 1000, fs: s.fs_hz, leads: s.samples_mv, names: s.lead_names }));
  const tStart = Date.parse(data.ecg.start) / 1000, tEnd = Date.parse(data.ecg.end) / 1000;
  const speed = 25, gain = state.gain, k = P.CSS_PX_PER_MM;
  const names = segs.length ? segs[0].names : ["ECG"];
  const cssW = Math.ceil((2 + 0.2 * speed + 2) * k + (tEnd - tStart) * speed * k) + 2;
  const grid = $("explain-grid"), canvas = $("explain-canvas");
  P.sizeLayers([grid, canvas], cssW, P.stripCssHeight(names.length, 30));
  P.drawGrid(grid);
  const hl = new Set(data.highlighted_beat_ids);
  const beats = data.beats.map((b) => ({ id: b.id, t: Date.parse(b.time) / 1000, label: b.label,
    p: b.probabilities && b.label in b.probabilities ? b.probabilities[b.label] : b.confidence }));
  const markers = [];
  if (data.onset) markers.push({ t: Date.parse(data.onset) / 1000, text: "onset" });
  if (data.offset) markers.push({ t: Date.parse(data.offset) / 1000, text: "offset" });
  P.drawStrip(canvas, { segments: segs, names, tStart, speed, gain, bandMm: 30, beats, highlight: hl,
    labels: data.view !== "rhythm", markers });
  P.drawAttributions(canvas, data.attributions, segs, { speed, tStart, bandMm: 30 });  // hook: per-sample attributions
  canvas.dataset.alertId = String(id);
  canvas.dataset.highlighted = String(hl.size);
  canvas.dataset.markers = String(markers.length);
  view.scrollIntoView({ behavior: "instant", block: "nearest" });
}

function axes(ctx, W, H, pad) {
  ctx.fillStyle = "#0d1117"; ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = "#30363d"; ctx.lineWidth = 1;
  ctx.strokeRect(pad, pad / 2, W - 1.5 * pad, H - 1.5 * pad);
  ctx.fillStyle = "#8b98a5"; ctx.font = "11px system-ui, sans-serif";
}

function drawTachogram(canvas, rr) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = 36;
  axes(ctx, W, H, pad);
  const t = rr.time.map((x) => Date.parse(x) / 1000), v = rr.rr_ms;
  canvas.dataset.points = String(v.length);
  if (v.length < 2) return;
  const lo = Math.min(300, ...v), hi = Math.max(1500, ...v), t0 = t[0], t1 = t[t.length - 1];
  const X = (x) => pad + ((x - t0) / Math.max(1e-3, t1 - t0)) * (W - 1.5 * pad);
  const Y = (y) => H - pad - ((y - lo) / (hi - lo)) * (H - 1.5 * pad);
  ctx.fillText(`${hi} ms`, 2, pad / 2 + 10); ctx.fillText(`${lo} ms`, 2, H - pad);
  ctx.fillText(`${Math.round(t1 - t0)} s`, W - pad - 10, H - pad + 14);
  ctx.strokeStyle = "#58a6ff"; ctx.beginPath();
  v.forEach((y, i) => (i ? ctx.lineTo(X(t[i]), Y(y)) : ctx.moveTo(X(t[i]), Y(y))));
  ctx.stroke();
}

function drawPoincare(canvas, v) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = 30;
  axes(ctx, W, H, pad);
  canvas.dataset.points = String(Math.max(0, v.length - 1));
  const lo = Math.min(300, ...v), hi = Math.max(1500, ...v);
  const X = (x) => pad + ((x - lo) / (hi - lo)) * (W - 1.5 * pad);
  const Y = (y) => H - pad - ((y - lo) / (hi - lo)) * (H - 1.5 * pad);
  ctx.strokeStyle = "#30363d"; ctx.beginPath(); ctx.moveTo(X(lo), Y(lo)); ctx.lineTo(X(hi), Y(hi)); ctx.stroke();
  ctx.fillStyle = "#d29922";
  for (let i = 1; i < v.length; i++) ctx.fillRect(X(v[i - 1]) - 1.5, Y(v[i]) - 1.5, 3, 3);
  ctx.fillStyle = "#8b98a5"; ctx.fillText(`${lo}-${hi} ms`, pad, H - 8);
}

// ------------------------------------------------------------------ beat templates (adaptation)
// A Holter-style review: the patient's beats grouped into templates of similar beats (median
// waveform, count, labels), confirmed or relabelled as a whole or beat by beat, then the beat
// model adapted to the patient (a new version, used live by the stream processors), with the
// version history and rollback. Every change goes through the API, which audits it.
const LABELS = ["N", "S", "V", "F", "Q"];
const tpl = { templates: [], beats: new Map(), reviewed: new Map(), open: null };
const enc = encodeURIComponent;

function canReview() { return state.role === "admin" || state.role === "clinician"; }

function majority(counts) {
  let best = null;
  for (const [k, v] of Object.entries(counts || {})) if (best === null || v > counts[best]) best = k;
  return best;
}

function countsText(counts) {
  const parts = LABELS.filter((c) => counts && counts[c]).map((c) => `${c} ${counts[c]}`);
  return parts.length ? parts.join(" · ") : "none";
}

function setStatus(text, isError) {
  const el = $("tpl-status");
  el.textContent = text; el.className = isError ? "error" : "muted";
}

function resetTemplates() {
  Object.assign(tpl, { templates: [], beats: new Map(), reviewed: new Map(), open: null });
  $("tpl-grid").replaceChildren(); $("tpl-grid").dataset.templates = "0";
  $("tpl-beats").hidden = true; setStatus("");
  document.querySelectorAll("#templates-view .review-only").forEach((el) => { el.hidden = !canReview(); });
  $("model-table").tBodies[0].replaceChildren(); $("model-active").textContent = "";
  loadModels();
}

async function loadTemplates(message) {
  const pid = state.patient;
  const end = new Date(), start = new Date(end.getTime() - Number($("tpl-window").value) * 1000);
  const q = new URLSearchParams({ start: start.toISOString(), end: end.toISOString() });
  setStatus("loading templates…");
  try {
    const [templates, beats, reviews] = await Promise.all([
      api(`/patients/${enc(pid)}/beat-templates?${q}`),
      api(`/patients/${enc(pid)}/beats?${q}`),
      api(`/patients/${enc(pid)}/beat-reviews`),
    ]);
    if (pid !== state.patient) return;
    tpl.templates = templates;
    tpl.beats = new Map(beats.map((b) => [b.id, b]));
    tpl.reviewed = new Map(reviews.map((r) => [r.beat_id, r]));  // oldest first: the latest wins
    renderTemplates();
    if (tpl.open) { const t = templates.find((x) => x.cluster === tpl.open); if (t) showTemplateBeats(t); else $("tpl-beats").hidden = true; }
    setStatus(message || (templates.length ? `${templates.length} templates of ${beats.length} beats` : "no beats in this window"));
  } catch (e) { setStatus("could not load templates: " + e.message, true); }
}

function renderTemplates() {
  const grid = $("tpl-grid");
  let lo = -0.5, hi = 1.0;  // one amplitude scale for every template, so that they compare
  for (const t of tpl.templates) for (const v of t.median_mv) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  grid.replaceChildren(...tpl.templates.map((t) => templateCard(t, lo, hi)));
  grid.dataset.templates = String(tpl.templates.length);
  grid.querySelectorAll("canvas").forEach((c, i) => drawTemplate(c, tpl.templates[i], lo, hi));
}

function templateCard(t, lo, hi) {
  const nConf = Object.values(t.confirmed_counts).reduce((a, b) => a + b, 0);
  const current = nConf ? majority(t.confirmed_counts) : majority(t.label_counts);
  const el = document.createElement("article");
  el.className = "tpl" + (nConf === t.count ? " reviewed" : "");
  Object.assign(el.dataset, { cluster: t.cluster, count: String(t.count), label: current || "", confirmed: String(nConf), rr: t.mean_rr_ratio.toFixed(3) });
  const head = document.createElement("header");
  const cur = document.createElement("span"); cur.className = `cur b-${current}`; cur.textContent = current || "?";
  const name = document.createElement("span"); name.className = "name"; name.textContent = `${t.cluster} · ${t.count} beat${t.count === 1 ? "" : "s"}`;
  head.append(cur, name);
  const canvas = document.createElement("canvas");
  canvas.width = 400; canvas.height = 180;
  canvas.setAttribute("aria-label", `median of ${t.median_n_beats} beats of template ${t.cluster}`);
  const model = document.createElement("div"); model.className = "counts model";
  model.textContent = `model: ${countsText(t.label_counts)} · RR ×${t.mean_rr_ratio.toFixed(2)}`;
  const conf = document.createElement("div"); conf.className = "counts reviewed";
  conf.textContent = nConf ? `reviewed ${nConf}/${t.count}: ${countsText(t.confirmed_counts)}` : "not reviewed";
  el.append(head, canvas, model, conf);
  const actions = document.createElement("div"); actions.className = "actions";
  if (canReview()) {
    const sel = document.createElement("select"); sel.className = "label"; sel.setAttribute("aria-label", `label for template ${t.cluster}`);
    for (const c of LABELS) { const o = document.createElement("option"); o.value = c; o.textContent = c; sel.appendChild(o); }
    sel.value = current && LABELS.includes(current) ? current : "N";
    const apply = button("", "apply", () => reviewBeats(t.beat_ids, sel.value, t.cluster));
    const sync = () => { apply.textContent = sel.value === current && nConf === t.count ? "Confirmed" : (sel.value === current ? "Confirm all" : "Relabel all"); };
    sel.addEventListener("change", sync); sync();
    actions.append(sel, apply);
  }
  actions.appendChild(button("Beats…", "beats", () => showTemplateBeats(t)));
  el.appendChild(actions);
  return el;
}

function drawTemplate(canvas, t, lo, hi) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  ctx.fillStyle = "#fff4f4"; ctx.fillRect(0, 0, W, H);
  const n = t.median_mv.length;
  canvas.dataset.points = String(n);
  if (!n) { ctx.fillStyle = "#8b98a5"; ctx.font = "22px system-ui"; ctx.fillText("no ECG stored", 12, H / 2); return; }
  const dur = n / t.median_fs_hz, X = (s) => ((s - t.median_start_s) / dur) * W;
  const Y = (v) => H - 8 - ((v - lo) / (hi - lo)) * (H - 16);
  ctx.strokeStyle = "#f2b8b8"; ctx.lineWidth = 1;  // 0.2 s and 0.5 mV lines, like ECG paper
  for (let s = Math.ceil(t.median_start_s / 0.2) * 0.2; s < t.median_start_s + dur; s += 0.2) { ctx.beginPath(); ctx.moveTo(X(s), 0); ctx.lineTo(X(s), H); ctx.stroke(); }
  for (let v = Math.ceil(lo * 2) / 2; v <= hi; v += 0.5) { ctx.beginPath(); ctx.moveTo(0, Y(v)); ctx.lineTo(W, Y(v)); ctx.stroke(); }
  ctx.strokeStyle = "#111"; ctx.lineWidth = 2.5; ctx.beginPath();
  t.median_mv.forEach((v, i) => { const x = X(t.median_start_s + i / t.median_fs_hz); if (i) ctx.lineTo(x, Y(v)); else ctx.moveTo(x, Y(v)); });
  ctx.stroke();
  ctx.fillStyle = "#555"; ctx.font = "18px system-ui";
  ctx.fillText(`${t.median_lead || ""} median of ${t.median_n_beats}`, 8, 22);
}

function showTemplateBeats(t) {
  tpl.open = t.cluster;
  const panel = $("tpl-beats");
  panel.hidden = false; panel.dataset.cluster = t.cluster;
  const shown = t.beat_ids.slice(0, 200);
  $("tpl-beats-title").textContent = `Template ${t.cluster}: ${t.count} beats` + (shown.length < t.count ? ` (first ${shown.length} shown)` : "");
  panel.querySelector("tbody").replaceChildren(...shown.map((id) => {
    const b = tpl.beats.get(id) || { id, label: "?", time: null, confidence: null };
    const r = tpl.reviewed.get(id);
    const tr = document.createElement("tr"); tr.dataset.beatId = String(id); tr.dataset.reviewed = r ? r.new_label : "";
    const cells = [fmtTime(b.time), `${b.label || "?"}${b.confidence == null ? "" : ` (${Math.round(b.confidence * 100)} %)`}`,
      r ? `${r.new_label} by ${r.actor}` : "--"];
    for (const x of cells) { const td = document.createElement("td"); td.textContent = x; tr.appendChild(td); }
    if (canReview()) {
      const td = document.createElement("td");
      const sel = document.createElement("select"); sel.setAttribute("aria-label", `label for beat ${id}`);
      for (const c of LABELS) { const o = document.createElement("option"); o.value = c; o.textContent = c; sel.appendChild(o); }
      sel.value = r ? r.new_label : (LABELS.includes(b.label) ? b.label : "N");
      td.append(sel, button("Set", "set", () => reviewBeats([id], sel.value, null)));
      tr.appendChild(td);
    }
    return tr;
  }));
}

async function reviewBeats(ids, label, cluster) {
  const pid = state.patient;
  try {
    const rows = await api(`/patients/${enc(pid)}/beat-reviews`, { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ beat_ids: ids, label, cluster }) });
    const changed = rows.filter((r) => r.old_label !== r.new_label).length;
    const what = cluster ? `template ${cluster}: ` : "";
    await loadTemplates(`${what}${rows.length} beat(s) ${changed ? `relabelled as ${label} (${changed} changed)` : `confirmed as ${label}`}`);
  } catch (e) { setStatus("review not saved: " + e.message, true); }
}

async function adaptModel() {
  const pid = state.patient;
  setStatus("adapting the model to the reviewed beats…");
  try {
    const m = await api(`/patients/${enc(pid)}/adaptation`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    setStatus(`Adapted: version ${m.version} is now active (reviewed beats ${countsText(m.summary.counts)}). The monitors use it within seconds.`);
  } catch (e) {
    let msg = e.message;
    try { const d = JSON.parse(e.message); if (d && d.msg) msg = d.msg; } catch (x) { /* plain text */ }
    setStatus("not adapted: " + msg, true);
  }
  await loadModels();
}

async function loadModels() {
  const pid = state.patient;
  if (!pid) return;
  try {
    const st = await api(`/patients/${enc(pid)}/models`);
    if (pid === state.patient) renderModels(st);
  } catch (e) { $("model-active").textContent = "model versions unavailable: " + e.message; }
}

function renderModels(st) {
  const active = $("model-active");
  active.dataset.active = st.active_version == null ? "base" : String(st.active_version);
  active.textContent = st.active_version == null ? "Running: the base model (no adaptation active)." : `Running: adapted version ${st.active_version}.`;
  $("model-notice").hidden = !st.notice; $("model-notice").textContent = st.notice || "";
  $("model-rollback").disabled = st.active_version == null;
  $("model-table").tBodies[0].replaceChildren(...st.models.map((m) => {
    const tr = document.createElement("tr"); tr.dataset.version = String(m.version); tr.dataset.active = String(m.active);
    const counts = (m.summary && m.summary.counts) || {};
    for (const x of [`v${m.version}`, m.method, countsText(counts), m.created_by, new Date(m.created_at).toLocaleString([], { hourCycle: "h23" })]) {
      const td = document.createElement("td"); td.textContent = x; tr.appendChild(td);
    }
    const td = document.createElement("td");
    if (m.active) td.textContent = "active";
    else if (canReview()) td.appendChild(button("Activate", "activate", () => rollbackModel(m.version)));
    tr.appendChild(td);
    return tr;
  }));
}

async function rollbackModel(version) {
  const pid = state.patient;
  try {
    const st = await api(`/patients/${enc(pid)}/models/rollback`, { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ version: version == null ? null : version }) });
    renderModels(st);
    setStatus(version == null ? "Rolled back: the base model runs for this patient." : `Version ${version} is active again.`);
  } catch (e) { setStatus("not changed: " + e.message, true); }
}

// ------------------------------------------------------------------------------------ wiring
document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("unlock-form").addEventListener("submit", unlock);
  $("logout").addEventListener("click", () => logout());
  $("lock").addEventListener("click", lockScreen);
  $("nav-station").addEventListener("click", showStation);
  $("explain-close").addEventListener("click", () => { $("explain-view").hidden = true; });
  $("tpl-load").addEventListener("click", () => loadTemplates());
  $("tpl-adapt").addEventListener("click", async (e) => { e.target.disabled = true; try { await adaptModel(); } finally { e.target.disabled = false; } });
  $("model-rollback").addEventListener("click", () => rollbackModel(null));
  $("tpl-beats-close").addEventListener("click", () => { $("tpl-beats").hidden = true; tpl.open = null; });
  $("speed").addEventListener("change", (e) => { state.speed = Number(e.target.value); drawLive(); });
  $("gain").addEventListener("change", (e) => { state.gain = Number(e.target.value); drawLive(); });
  $("sound").addEventListener("change", (e) => { state.sound = e.target.checked; state.lastBeep = -Infinity; });
  for (const ev of ["pointerdown", "keydown", "wheel", "touchstart"]) document.addEventListener(ev, noteInput, { passive: true });
  window.addEventListener("resize", () => {
    document.querySelectorAll("#station-grid .tile").forEach((el) => { delete el.dataset.cssWidth; });
    state.dirty.add(state.patient); state.tiles.forEach((t) => state.dirty.add(t.patient_id));
  });
  setInterval(checkIdle, 5000);
  window.heartline = { state, resetStats: () => { state.renderMs = []; }, renderStats: () => { const a = [...state.renderMs].sort((x, y) => x - y);
    return { n: a.length, p50: a[Math.floor(a.length * 0.5)] || 0, p95: a[Math.floor(a.length * 0.95)] || 0, max: a[a.length - 1] || 0 }; } };
  if (state.token) {
    if (state.expiresAt - Date.now() < REFRESH_MARGIN_S * 1000 && state.refresh) refreshTokens().then((ok) => (ok ? start() : logout()));
    else start();
  }
});

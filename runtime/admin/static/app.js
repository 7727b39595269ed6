// The trio-a2a dashboard: one SSE stream of snapshots from the admin API, rendered
// with plain DOM calls (text only, never HTML from the server), and uPlot for the chart.
// The admin token stays in this tab's sessionStorage and goes out as a bearer header.

const KEY = "trio-a2a-admin-token";
// The admin API sits beside the page: /ui/ under the server's root or its --base-path.
const API = location.pathname.replace(/\/ui\/[^/]*$/, "") + "/admin/v1";
const $ = (id) => document.getElementById(id);

function takeTokenFromUrl() {
  // #token=... never reaches a server; ?token=... does, so it is dropped from the URL at once.
  const hash = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  const token = hash.get("token") || query.get("token");
  if (token) {
    sessionStorage.setItem(KEY, token);
    query.delete("token");
    const rest = query.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));
  }
}

const token = () => sessionStorage.getItem(KEY);
const auth = () => ({ Authorization: "Bearer " + token() });

class Refused extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function refusal(resp) {
  try { return new Refused(resp.status, (await resp.json()).error.message); }
  catch { return new Refused(resp.status, `HTTP ${resp.status}`); }
}

// Server-sent events over fetch, so the token travels in a header (EventSource cannot).
async function* sse(url, signal) {
  const resp = await fetch(url, { headers: auth(), signal, cache: "no-store" });
  if (!resp.ok) throw await refusal(resp);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const frame = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const ev = { event: "message", data: [] };
      for (const line of frame.split("\n")) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "event") ev.event = val;
        else if (field === "data") ev.data.push(val);
        else if (field === "id") ev.id = val;
      }
      if (ev.data.length) yield { ...ev, data: JSON.parse(ev.data.join("\n")) };
    }
  }
}

// --- small DOM helpers ------------------------------------------------------------------

function el(tag, attrs = {}, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const kid of kids.flat()) {
    if (kid != null) node.append(kid instanceof Node ? kid : String(kid));
  }
  return node;
}

const stateName = (s) => s.replace("TASK_STATE_", "").toLowerCase().replace("_", "-");
const short = (id) => (id.length > 12 ? id.slice(0, 8) + "…" : id);

function ago(epoch, now) {
  const s = Math.max(0, now - epoch);
  if (s < 1) return "now";
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function seconds(s) {
  if (s == null) return "–";
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(s < 10 ? 2 : 0)} s`;
}

function routeText(r) {
  const parts = [];
  if (r.agent) parts.push(`agent ${r.agent}`);
  if (r.worker) parts.push(`worker ${r.worker}`);
  if (r.capabilities.length) parts.push(`needs ${r.capabilities.join(", ")}`);
  if (r.priority) parts.push(`priority ${r.priority}`);
  return parts.join(" · ") || "any worker";
}

function fill(table, rows, empty) {
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = rows.length === 0;
  $(empty).hidden = rows.length > 0;
}

// --- actions -----------------------------------------------------------------------------

async function act(path, body, what) {
  const reason = body && "reason" in body ? prompt(`Reason to ${what}?`, "") : "";
  if (reason === null) return;
  if (body && "reason" in body) body.reason = reason;
  const resp = await fetch(path, {
    method: "POST", headers: { ...auth(), "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  $("error").textContent = resp.ok ? "" : (await refusal(resp)).message;
}

const enc = encodeURIComponent;

// --- rendering ---------------------------------------------------------------------------

let following = null;

function render(snap) {
  const now = Date.now() / 1000;
  $("replica").textContent = `replica ${snap.replica}`;
  const queued = snap.queue.reduce((n, g) => n + g.count, 0);
  $("stat-workers").textContent = snap.workers.length;
  $("stat-queued").textContent = queued;
  $("stat-running").textContent = snap.leases.length;
  const last = snap.throughput.at(-1);
  $("stat-rate").textContent = last ? last.completed.toFixed(1) : "–";
  $("stat-p50").textContent = last ? seconds(last.p50) : "–";

  fill($("workers"), snap.workers.map((w) => el("tr", { dataset: { workerId: w.workerId } },
    el("td", {}, el("b", {}, w.name || short(w.workerId)), " ",
      el("span", { class: "muted mono" }, short(w.workerId)),
      w.inProcess ? el("span", { class: "tag" }, "embedded") : null,
      w.draining ? el("span", { class: "pill state-input-required", title: w.draining }, "draining") : null),
    el("td", {}, w.agents.map((a) => el("span", { class: "tag" }, a)),
      w.capabilities.map((c) => el("span", { class: "tag muted" }, c))),
    el("td", {}, el("span", { class: "bar" }, el("i", { style: `width:${Math.min(100, w.load * 100)}%` })),
      `${w.running.length}/${w.maxConcurrent}`),
    el("td", { class: "muted" }, ago(w.lastHeartbeat, now)),
    el("td", { class: "actions" },
      w.draining ? null : el("button", { onclick: () => act(`${API}/workers/${enc(w.workerId)}:drain`, { reason: "" }, "drain this worker") }, "drain"),
      w.inProcess ? null : el("button", { class: "danger", onclick: () => act(`${API}/workers/${enc(w.workerId)}:disconnect`, { requeue: true }, "disconnect") }, "disconnect")),
  )), "workers-empty");

  $("queue").replaceChildren(...snap.queue.map((g) => el("div", { class: "route" },
    el("h3", {}, routeText(g.route), el("span", { class: "muted" }, ` — ${g.count} waiting`)),
    el("div", {}, g.tasks.slice(0, 12).map((t) => el("span", { class: "tag mono", title: t.id }, short(t.id)))),
  )));
  $("queue-empty").hidden = snap.queue.length > 0;

  fill($("leases"), snap.leases.map((t) => el("tr", { class: "click", dataset: { taskId: t.id }, onclick: () => follow(t.id) },
    el("td", { class: "mono" }, short(t.id)),
    el("td", { class: "mono" }, short(t.lease.workerId)),
    el("td", { class: t.lease.expiresIn < 10 ? "error" : "" }, `expires in ${seconds(Math.max(0, t.lease.expiresIn))}`),
    el("td", {}, t.attempts),
    el("td", { class: "actions", onclick: (e) => e.stopPropagation() },
      el("button", { onclick: () => act(`${API}/tasks/${enc(t.id)}:requeue`, { reason: "" }, "re-queue this task") }, "re-queue"),
      el("button", { class: "danger", onclick: () => act(`${API}/tasks/${enc(t.id)}:fail`, { reason: "" }, "fail this task") }, "fail")),
  )), "leases-empty");

  fill($("tasks"), snap.tasks.map((t) => {
    const state = stateName(t.state);
    const ended = ["completed", "failed", "canceled", "rejected"].includes(state);
    return el("tr", { class: "click" + (t.id === following ? " selected" : ""), dataset: { taskId: t.id, state }, onclick: () => follow(t.id) },
      el("td", { class: "mono", title: t.id }, short(t.id)),
      el("td", {}, el("span", { class: `pill state state-${state}` }, state)),
      el("td", { class: "muted" }, routeText(t.route)),
      el("td", {}, t.attempts),
      el("td", {}, ended ? seconds(t.statusAt - t.createdAt) : "–"),
      el("td", { class: "muted" }, ago(t.statusAt, now)));
  }), "tasks-empty");

  chart(snap.throughput);
}

// --- the chart ---------------------------------------------------------------------------

let plot = null;

function chart(series) {
  // Leading seconds in which nothing ended (before the server's first tasks) are left
  // out, keeping at least a minute on the axis.
  let first = series.findIndex((p) => p.completed + p.failed + p.canceled > 0);
  if (first < 0) first = series.length;
  series = series.slice(Math.max(0, Math.min(first - 5, series.length - 60)));
  const data = [
    series.map((p) => p.t),
    series.map((p) => p.completed),
    series.map((p) => p.failed + p.canceled),
    series.map((p) => (p.p50 == null ? null : p.p50 * 1000)),
    series.map((p) => (p.p95 == null ? null : p.p95 * 1000)),
  ];
  if (plot) { plot.setData(data); return; }
  if (!window.uPlot) return;
  const width = $("chart").clientWidth || 800;
  plot = new uPlot({
    width, height: 220,
    scales: { rate: {}, ms: {} },
    series: [
      {},
      { label: "completed/s", scale: "rate", stroke: "#1f9d55", width: 2, fill: "rgba(31,157,85,.08)" },
      { label: "failed or canceled/s", scale: "rate", stroke: "#d64545", width: 1.5 },
      { label: "p50 latency (ms)", scale: "ms", stroke: "#2f6fed", width: 1.5, spanGaps: true },
      { label: "p95 latency (ms)", scale: "ms", stroke: "#8a5cf6", width: 1, dash: [4, 3], spanGaps: true },
    ],
    axes: [{}, { scale: "rate", label: "tasks/s" }, { scale: "ms", side: 1, label: "ms", grid: { show: false } }],
  }, data, $("chart"));
  new ResizeObserver(() => plot.setSize({ width: $("chart").clientWidth, height: 220 })).observe($("chart"));
}

// --- following one task's events ---------------------------------------------------------

let followAbort = null;

function describe(ev) {
  if (ev.statusUpdate) {
    const s = ev.statusUpdate.status;
    const text = (s.message?.parts || []).map((p) => p.text).filter(Boolean).join(" ");
    return ["status", stateName(s.state) + (text ? ` — ${text}` : "")];
  }
  if (ev.artifactUpdate) {
    const a = ev.artifactUpdate.artifact;
    const text = (a.parts || []).map((p) => p.text ?? (p.data ? JSON.stringify(p.data) : "[file]")).join("");
    return ["artifact", `${a.name || a.artifactId}${ev.artifactUpdate.append ? " (+)" : ""}: ${text.slice(0, 400)}`];
  }
  if (ev.task) return ["task", stateName(ev.task.status.state)];
  if (ev.message) return ["message", (ev.message.parts || []).map((p) => p.text).join(" ")];
  return ["event", JSON.stringify(ev).slice(0, 200)];
}

async function follow(id) {
  if (followAbort) followAbort.abort();
  following = id;
  followAbort = new AbortController();
  $("follow").hidden = false;
  $("tasks-card").classList.remove("wide");
  $("follow-id").textContent = id;
  $("follow-state").textContent = "live";
  $("follow-state").className = "pill on";
  $("events").replaceChildren();
  try {
    for await (const ev of sse(`${API}/tasks/${enc(id)}/events`, followAbort.signal)) {
      if (ev.event === "end") {
        $("follow-state").textContent = "ended";
        $("follow-state").className = "pill";
        break;
      }
      const [kind, text] = describe(ev.data.event);
      $("events").append(el("li", { dataset: { seq: ev.data.seq } }, el("span", { class: "kind" }, kind), text));
      $("events").scrollTop = $("events").scrollHeight;
    }
  } catch (e) {
    if (e.name !== "AbortError") $("error").textContent = e.message;
  }
}

// --- the live stream ---------------------------------------------------------------------

function showLogin(message) {
  $("board").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

async function live() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("logout").hidden = false;
  for (;;) {
    try {
      for await (const ev of sse(`${API}/stream`)) {
        if (ev.event !== "snapshot") continue;
        $("live").textContent = "live";
        $("live").className = "pill on";
        $("error").textContent = "";
        render(ev.data);
      }
    } catch (e) {
      if (e instanceof Refused && [401, 403, 404].includes(e.status)) {
        sessionStorage.removeItem(KEY);
        showLogin(e.message);
        return;
      }
      $("error").textContent = `connection lost (${e.message}); reconnecting…`;
    }
    $("live").textContent = "offline";
    $("live").className = "pill off";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $("token").value.trim());
  $("token").value = "";
  live();
});
$("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
$("follow-close").addEventListener("click", () => {
  if (followAbort) followAbort.abort();
  following = null;
  $("follow").hidden = true;
  $("tasks-card").classList.add("wide");
});

takeTokenFromUrl();
if (token()) live(); else showLogin();

// The operator console: plain JavaScript, no dependencies. Every text that comes from a session
// (what callers and models wrote) is set with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: "", operator: "", ladder: null, open: null, live: null, refreshing: false };

function status(text, error = false) {
  const s = $("status");
  s.textContent = text;
  s.className = error ? "error" : "";
}

async function api(path, body) {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const init = { headers };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (data.error && data.error.message) || response.statusText;
    throw new Error(message);
  }
  return data;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// A table row that says the table is empty.
function emptyRow(text, columns) {
  const row = el("tr");
  const cell = el("td", text);
  cell.colSpan = columns;
  row.append(cell);
  return row;
}

function seconds(s) {
  if (s < 60) return Math.round(s) + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + Math.round(s % 60) + "s";
  return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
}

async function loadLadder() {
  state.ladder = await api("/v1/ladder");
  $("ladder-name").textContent = "— " + state.ladder.name;
  const queues = new Set(state.ladder.rungs.filter((r) => r.kind === "human").map((r) => r.queue));
  const select = $("queue-filter");
  while (select.options.length > 1) select.remove(1);
  for (const q of queues) {
    const option = el("option", q);
    option.value = q;
    select.append(option);
  }
}

async function refreshHandovers() {
  const queue = $("queue-filter").value;
  const data = await api("/v1/handovers" + (queue ? "?queue=" + encodeURIComponent(queue) : ""));
  const body = $("handovers");
  body.replaceChildren();
  if (data.handovers.length === 0) {
    body.append(emptyRow("No one is waiting.", 6));
  }
  for (const h of data.handovers) {
    const row = el("tr");
    row.dataset.session = h.session;
    const late = h.sla_seconds && h.waiting_seconds > h.sla_seconds && !h.claimed_by;
    row.className = h.claimed_by ? "claimed" : late ? "late" : "";
    const open = el("button", h.session);
    open.type = "button";
    open.addEventListener("click", () => openSession(h.session));
    const first = el("td");
    first.append(open);
    const waiting = seconds(h.waiting_seconds) + (h.sla_seconds ? " / " + seconds(h.sla_seconds) : "");
    row.append(first, el("td", h.human), el("td", h.queue), el("td", waiting), el("td", h.claimed_by || "—"));
    const act = el("td");
    if (!h.claimed_by) {
      const claim = el("button", "Claim", "claim");
      claim.type = "button";
      claim.addEventListener("click", () => claimSession(h.session));
      act.append(claim);
    }
    row.append(act);
    body.append(row);
  }
}

async function refreshApprovals() {
  const data = await api("/v1/approvals");
  const body = $("approvals");
  body.replaceChildren();
  if (data.approvals.length === 0) {
    body.append(emptyRow("Nothing waits for approval.", 4));
  }
  for (const a of data.approvals) {
    const row = el("tr");
    row.dataset.approval = a.id;
    const open = el("button", a.tool + " (" + a.session + ")");
    open.type = "button";
    open.addEventListener("click", () => openSession(a.session));
    const first = el("td");
    first.append(open);
    const act = el("td");
    for (const [label, approve] of [["Approve", true], ["Reject", false]]) {
      const button = el("button", label, approve ? "approve" : "reject");
      button.type = "button";
      button.addEventListener("click", () => decide(a, approve));
      act.append(button);
    }
    row.append(first, el("td", JSON.stringify(a.arguments)), el("td", a.human), act);
    body.append(row);
  }
}

async function decide(approval, approve) {
  if (!state.operator) return status("Enter your name as operator first.", true);
  const body = { approve, operator: state.operator };
  if (!approve) {
    const note = window.prompt("Why not? (the model reads this)") || "";
    if (note.trim()) body.note = note.trim();
  }
  try {
    await api("/v1/approvals/" + encodeURIComponent(approval.id), body);
    status((approve ? "Approved " : "Rejected ") + approval.tool + ".");
    await refreshApprovals();
    if (state.open === approval.session) await reload();
  } catch (e) {
    status(e.message, true);
  }
}

async function searchSessions(query) {
  const data = await api("/v1/sessions?limit=50" + (query ? "&q=" + encodeURIComponent(query) : ""));
  const list = $("sessions");
  list.replaceChildren();
  for (const s of data.sessions) {
    const item = el("li", s.id + " — " + s.current + (s.ended ? " (ended)" : "") + ", " + s.turns + " turns");
    item.addEventListener("click", () => openSession(s.id));
    list.append(item);
  }
}

function drawMap(current) {
  const svg = $("map");
  svg.replaceChildren();
  const ladder = state.ladder;
  if (!ladder) return;
  const byName = new Map(ladder.rungs.map((r) => [r.name, r]));
  // Rows by distance from the entry over downward edges; the rest below.
  const depth = new Map([[ladder.entry, 0]]);
  const queue = [ladder.entry];
  while (queue.length) {
    const name = queue.shift();
    for (const e of (byName.get(name) || { edges: [] }).edges) {
      if (["escalate", "release", "unclaimed"].includes(e.kind) || depth.has(e.to)) continue;
      depth.set(e.to, depth.get(name) + 1);
      queue.push(e.to);
    }
  }
  let deepest = Math.max(0, ...depth.values());
  for (const r of ladder.rungs) if (!depth.has(r.name)) depth.set(r.name, ++deepest);
  const rows = [];
  for (const [name, d] of depth) (rows[d] = rows[d] || []).push(name);
  const width = Math.max(600, ...rows.map((r) => r.length * 130));
  const height = rows.length * 50 + 10;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const at = new Map();
  rows.forEach((row, d) => row.forEach((name, i) => at.set(name, [((i + 0.5) * width) / row.length, d * 50 + 25])));
  const ns = "http://www.w3.org/2000/svg";
  for (const r of ladder.rungs) {
    for (const e of r.edges) {
      if (!at.has(e.to)) continue;
      const [x1, y1] = at.get(r.name);
      const [x2, y2] = at.get(e.to);
      const line = document.createElementNS(ns, "line");
      line.setAttribute("x1", x1); line.setAttribute("y1", y1);
      line.setAttribute("x2", x2); line.setAttribute("y2", y2);
      if (["escalate", "release", "unclaimed"].includes(e.kind)) line.setAttribute("class", "up");
      svg.append(line);
    }
  }
  for (const [name, [x, y]] of at) {
    const g = document.createElementNS(ns, "g");
    const kind = (byName.get(name) || {}).kind;
    g.setAttribute("class", [kind, name === current ? "current" : ""].join(" ").trim());
    g.dataset.rung = name;
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", x - 58); rect.setAttribute("y", y - 14);
    rect.setAttribute("width", 116); rect.setAttribute("height", 28); rect.setAttribute("rx", 5);
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", x); text.setAttribute("y", y + 4);
    text.textContent = name;
    g.append(rect, text);
    svg.append(g);
  }
}

function render(session) {
  $("session").hidden = false;
  $("session-id").textContent = session.id;
  $("current").textContent = session.current;
  const hold = session.hold;
  $("held").textContent = hold
    ? hold.claimed_by ? "(claimed by " + hold.claimed_by + ")" : "(waiting in " + hold.queue + ")"
    : "";
  const transcript = $("transcript");
  transcript.replaceChildren();
  for (const entry of session.transcript) {
    const text = entry.message.content;
    if (!text) continue;
    const human = state.ladder && state.ladder.rungs.some((r) => r.kind === "human" && r.name === entry.by);
    const item = el("li", null, entry.by === "user" ? "user" : human ? "person" : "");
    item.append(el("span", entry.by, "by"), document.createTextNode(text));
    transcript.append(item);
  }
  transcript.scrollTop = transcript.scrollHeight;
  const events = $("events");
  events.replaceChildren();
  for (const e of (session.events || []).slice(-200)) events.append(el("li", JSON.stringify(e)));
  events.scrollTop = events.scrollHeight;
  const human = hold && state.ladder && state.ladder.rungs.find((r) => r.name === hold.human);
  const release = $("release-to");
  release.replaceChildren();
  for (const edge of human ? human.edges.filter((e) => e.kind === "release") : []) {
    const option = el("option", edge.to);
    option.value = edge.to;
    release.append(option);
  }
  $("claim").hidden = !hold || !!hold.claimed_by;
  $("reply-form").hidden = !hold || !hold.claimed_by;
  $("release-form").hidden = !hold || !hold.claimed_by;
  drawMap(session.current);
}

async function reload() {
  if (!state.open || state.refreshing) return;
  state.refreshing = true;
  try {
    render(await api("/v1/sessions/" + encodeURIComponent(state.open) + "?events=true"));
  } finally {
    state.refreshing = false;
  }
}

// Follows the session's live events (fetch, so that the token goes in a header).
async function follow(id) {
  if (state.live) state.live.abort();
  const controller = new AbortController();
  state.live = controller;
  const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
  try {
    const response = await fetch("/v1/sessions/" + encodeURIComponent(id) + "/events", { headers, signal: controller.signal });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (block.split("\n").some((line) => line.startsWith("data:"))) reload().catch((e) => status(e.message, true));
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") status("live events stopped: " + e.message, true);
  }
}

async function openSession(id) {
  state.open = id;
  await reload();
  follow(id);
}

async function claimSession(id) {
  if (!state.operator) return status("Enter your name as operator first.", true);
  try {
    await api("/v1/sessions/" + encodeURIComponent(id) + "/human/claim", { operator: state.operator });
    status("Claimed " + id + ".");
    await openSession(id);
    await refreshHandovers();
  } catch (e) {
    status(e.message, true);
  }
}

function wire() {
  state.token = sessionStorage.getItem("ladder-token") || "";
  state.operator = sessionStorage.getItem("ladder-operator") || "";
  $("token").value = state.token;
  $("operator").value = state.operator;
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    state.operator = $("operator").value.trim();
    sessionStorage.setItem("ladder-token", state.token);
    sessionStorage.setItem("ladder-operator", state.operator);
    start();
  });
  $("queue-filter").addEventListener("change", () => refreshHandovers().catch((e) => status(e.message, true)));
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    searchSessions($("search").value.trim()).catch((e) => status(e.message, true));
  });
  $("claim").addEventListener("click", () => claimSession(state.open));
  $("reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("reply").value.trim();
    if (!text) return;
    try {
      await api("/v1/sessions/" + encodeURIComponent(state.open) + "/human/messages", { text, operator: state.operator });
      $("reply").value = "";
      status("Sent.");
      await reload();
    } catch (e) {
      status(e.message, true);
    }
  });
  $("release-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { to: $("release-to").value, operator: state.operator };
    const note = $("release-note").value.trim();
    if (note) body.note = note;
    try {
      await api("/v1/sessions/" + encodeURIComponent(state.open) + "/human/release", body);
      status("Handed to " + body.to + ".");
      $("release-note").value = "";
      await reload();
      await refreshHandovers();
    } catch (e) {
      status(e.message, true);
    }
  });
}

let timer = null;
async function start() {
  try {
    await loadLadder();
    await refreshHandovers();
    await refreshApprovals();
    await searchSessions("");
    status(state.operator ? "Signed in as " + state.operator + "." : "Enter your name as operator to claim sessions.");
    if (timer) clearInterval(timer);
    timer = setInterval(() => {
      refreshHandovers().catch((e) => status(e.message, true));
      refreshApprovals().catch((e) => status(e.message, true));
    }, 2000);
  } catch (e) {
    status(e.message + (state.token ? "" : " (a token may be needed)"), true);
  }
}

wire();
start();

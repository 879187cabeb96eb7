// The ipnlab console: IPN History, the Simulator and the clock, all from
// the emulator's control API. No framework: the page is small, and it must
// work offline from the binary.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// el builds an element; text children are text nodes, so nothing the API
// returns is ever parsed as markup.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// ---- API ------------------------------------------------------------------

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

const TOKEN_KEY = "ipnlab.token";

async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let data = null;
  const text = await resp.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: { message: text } }; }
  }
  if (resp.status === 401) {
    await askToken(data && data.error ? data.error.message : "");
    return api(method, path, body);
  }
  if (!resp.ok) {
    throw new APIError(resp.status, data && data.error ? data.error.message : `${method} ${path}: HTTP ${resp.status}`);
  }
  return data;
}

let tokenWaiters = null;

// askToken opens the token dialog once, however many requests wait on it.
function askToken(message) {
  if (!tokenWaiters) {
    tokenWaiters = new Promise(resolve => {
      const dialog = $("#token-dialog");
      $("#token-error").textContent = sessionStorage.getItem(TOKEN_KEY) ? message : "";
      const form = $("#token-form");
      form.onsubmit = () => {
        sessionStorage.setItem(TOKEN_KEY, form.token.value);
        form.token.value = "";
        tokenWaiters = null;
        resolve();
      };
      dialog.showModal();
    });
  }
  return tokenWaiters;
}

// ---- formatting -------------------------------------------------------------

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC");
}

// toInput writes a time as the time inputs take it: 24-hour UTC, as the
// rest of the page shows times (a datetime-local input would show the
// browser's locale: month first, 12-hour).
function toInput(iso) { return iso ? new Date(iso).toISOString().slice(0, 19).replace("T", " ") : ""; }

// fromInput reads "YYYY-MM-DD HH:MM[:SS]" as UTC; "" for anything else.
function fromInput(v) {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})(:\d{2})?$/.exec(v.trim());
  return m ? `${m[1]}T${m[2]}${m[3] || ":00"}Z` : "";
}

// verdictCell shows a message's outcome: what a developer looks for first.
function verdictCell(o) {
  const words = {
    verified: "verified", delivered: o.confirmed_by_lookup ? "delivered, confirmed by lookup" : "delivered", no_postback: "no postback",
    invalid: "INVALID" + (o.rule ? " " + o.rule : ""), fault: "fault " + (o.fault || ""), undelivered: "not acknowledged",
  };
  return el("span", { class: "outcome-cell outcome-" + o.state, title: o.summary }, words[o.state] || o.state);
}

function statusCell(status) {
  const base = status.split(" ")[0];
  return el("span", { class: "status status-" + base }, status);
}

function announce(text) { $("#live").textContent = text; }

function showResult(node, content, isError) {
  node.classList.toggle("error", !!isError);
  node.replaceChildren(...[content].flat().filter(c => c !== null && c !== undefined && c !== false));
}

// ---- state -------------------------------------------------------------------

const state = {
  kinds: [], payDoKinds: [], lifecycles: [], scenarios: [],
  clock: null, lastEvent: 0, view: "history", messageId: null,
};

// ---- clock ---------------------------------------------------------------------

async function refreshClock() {
  const c = await api("GET", "/api/v1/clock");
  state.clock = c;
  const now = $("#clock-now");
  now.textContent = fmtTime(c.now);
  now.dateTime = c.now;
  $("#clock-mode").textContent = c.mode;
  const manual = c.mode === "manual";
  $("#clock-controls").hidden = !manual;
  $("#clock-pending").textContent = manual ? `${c.pending} waiting` : "";
  // The filters' examples are the last day on this clock, not a fixed date.
  const filters = $("#filters");
  filters.since.placeholder = toInput(new Date(new Date(c.now).getTime() - 24 * 3600e3).toISOString());
  filters.until.placeholder = toInput(c.now);
}

async function advance(by) {
  try {
    await api("POST", "/api/v1/clock/advance", { duration: by });
    announce(`Clock advanced by ${by}`);
  } catch (e) {
    announce(e.message);
  }
  await refreshAll();
}

function setupClock() {
  for (const b of $$("[data-advance]")) b.addEventListener("click", () => advance(b.dataset.advance));
  $("#clock-controls").addEventListener("submit", ev => {
    ev.preventDefault();
    const by = $("#advance-by").value.trim();
    if (by) advance(by);
  });
  $("#run-idle").addEventListener("click", async () => {
    try {
      await api("POST", "/api/v1/clock/run-until-idle");
      announce("Ran until nothing was waiting");
    } catch (e) {
      announce(e.message);
    }
    await refreshAll();
  });
}

// ---- history --------------------------------------------------------------------

const HISTORY_ROWS = 500;

function historyQuery() {
  const f = $("#filters");
  // Newest first, as PayPal's IPN History.
  const q = new URLSearchParams({ limit: String(HISTORY_ROWS), order: "newest" });
  for (const name of ["provider", "status", "verdict", "kind", "txn_id"]) {
    const v = f[name].value.trim();
    if (v) q.set(name, v);
  }
  for (const name of ["since", "until"]) {
    const v = fromInput(f[name].value);
    if (v) q.set(name, v);
  }
  return q;
}

const seenRows = new Set();
const freshRows = new Set(); // ids that arrived while the page was open

async function refreshHistory() {
  let data;
  try {
    const q = historyQuery();
    data = await api("GET", "/api/v1/messages?" + q);
  } catch (e) {
    $("#history-count").textContent = e.message;
    return;
  }
  if (data.last_event > state.lastEvent) state.lastEvent = data.last_event;
  const firstLoad = seenRows.size === 0;
  const rows = data.messages.map(m => {
    // New since the page loaded: marked for as long as the page shows it
    // (rows are drawn anew on every event); the flash only when it comes.
    const arrived = !firstLoad && !seenRows.has(m.id);
    if (arrived) freshRows.add(m.id);
    seenRows.add(m.id);
    const cls = [freshRows.has(m.id) ? "fresh" : "", arrived ? "arrived" : ""].filter(Boolean).join(" ");
    return el("tr", { "data-id": m.id, "data-outcome": m.outcome.state, class: cls || null },
      el("td", {}, el("time", { datetime: m.created }, fmtTime(m.created)),
        m.resent ? el("span", { class: "resent", title: "resent by hand" }, "resent") : null),
      // The verdict second: on a narrow screen it is what stays in view.
      el("td", {}, verdictCell(m.outcome)),
      el("td", {}, providerTitle(m.provider)),
      el("td", { class: "mono" }, el("a", { href: "#/messages/" + encodeURIComponent(m.id) }, m.id)),
      el("td", {}, m.kind || "—"),
      el("td", { class: "mono" }, m.txn_id || "—"),
      el("td", {}, statusCell(m.status)),
      el("td", {}, m.last_status_code ? String(m.last_status_code) : "—"),
      el("td", {}, String(m.attempts)));
  });
  seenRows.add(""); // an empty first load still counts as loaded
  $("#history tbody").replaceChildren(...rows);
  refreshUnknownPostbacks();
  const shown = data.messages.length;
  $("#history-count").textContent = data.total === shown ? `${shown} message${shown === 1 ? "" : "s"}` :
    `${shown} of ${data.total} messages (narrow the filters to see the rest)`;
}

// refreshUnknownPostbacks lists the newest postbacks that matched no
// message, each with its verdict and the reason.
async function refreshUnknownPostbacks() {
  let data;
  try {
    data = await api("GET", "/api/v1/postbacks?unknown=true&limit=1000");
  } catch {
    return;
  }
  const box = $("#unknown-postbacks");
  const pbs = (data.postbacks || []).slice(-50).reverse();
  box.hidden = pbs.length === 0;
  $("#unknown-title").textContent = `Postbacks of no message the emulator sent (${pbs.length}${data.next ? "+" : ""})`;
  $("tbody", box).replaceChildren(...pbs.map(p => {
    const fatal = (p.verdict.findings || []).find(f => f.fatal && f.rule === p.verdict.rule);
    return el("tr", {},
      el("td", {}, fmtTime(p.time)),
      el("td", { class: "mono" }, (p.headers && p.headers["User-Agent"] && p.headers["User-Agent"][0]) || "—"),
      el("td", {}, el("span", { class: "verdict-" + p.verdict.result }, p.verdict.result),
        p.verdict.rule ? ` ${p.verdict.rule}` : "", fatal ? `: ${fatal.detail}` : ""));
  }));
}

function setupHistory() {
  const f = $("#filters");
  f.addEventListener("input", () => schedule(refreshHistory));
  f.addEventListener("change", () => schedule(refreshHistory));
  f.addEventListener("reset", () => setTimeout(refreshHistory, 0));
  f.addEventListener("submit", ev => { ev.preventDefault(); refreshHistory(); });
  $("#resend-failed").addEventListener("submit", async ev => {
    ev.preventDefault();
    const form = ev.target;
    const body = { since: fromInput(form.since.value) };
    if (form.url.value.trim()) body.url = form.url.value.trim();
    try {
      const out = await api("POST", "/api/v1/messages/resend", body);
      announce(out.resent.length ? `Resent ${out.resent.length} failed message${out.resent.length === 1 ? "" : "s"}` : "No failed messages since then");
    } catch (e) {
      announce(e.message);
    }
    refreshHistory();
  });
}

// ---- one message --------------------------------------------------------------------

function summaryRow(term, value) { return [el("dt", {}, term), el("dd", {}, value)]; }

async function refreshMessage() {
  const id = state.messageId;
  let m;
  try {
    m = await api("GET", "/api/v1/messages/" + encodeURIComponent(id));
  } catch (e) {
    $("#message-title").textContent = "Message " + id;
    $("#message-summary").replaceChildren(...summaryRow("Error", e.message));
    return;
  }
  if (id !== state.messageId) return;
  $("#message-title").textContent = `${providerTitle(m.provider)} message ${m.id}`;
  // The verdict first, in one sentence, with a link to the field that differs.
  const o = m.outcome;
  const banner = $("#message-outcome");
  banner.className = "outcome outcome-" + o.state;
  banner.replaceChildren(el("strong", {}, verdictCell(o)), ": ", o.summary,
    ...(o.field ? [" ", el("a", { href: "#field-" + o.field, onclick: ev => { ev.preventDefault(); jumpTo("field-" + o.field); } }, `see field ${o.field}`)] : []));
  $("#message-summary").replaceChildren(
    // PayPal's delivery status (acknowledged or not), not the verdict:
    // never green beside an INVALID.
    ...summaryRow("Delivery", statusCell(m.status)),
    ...summaryRow("Kind", m.kind || "—"),
    ...summaryRow("Transaction ID", m.txn_id || "—"),
    ...summaryRow("Created", [fmtTime(m.created), m.resent ? " (resent)" : ""]),
    ...summaryRow("Listener URL", el("span", { class: "mono" }, m.url)),
    ...summaryRow("Charset", m.charset || "—"),
    ...summaryRow("Last HTTP code", m.last_status_code ? String(m.last_status_code) : "—"),
    // In a message view "attempts" is the list itself.
    ...summaryRow("Attempts", `${m.attempts.length} made` + (m.next_attempt ? ", another scheduled" : "")),
    ...(m.next_attempt ? summaryRow("Next attempt", fmtTime(m.next_attempt)) : []),
    // A string: a 64-bit seed loses digits as a JavaScript number.
    ...(m.seed ? summaryRow("Seed", [el("span", { class: "mono", id: "message-seed" }, m.seed),
      el("div", { class: "muted" }, "Made again, byte for byte, unless it was sent with params or edits: ",
        el("code", { id: "message-regenerate" }, m.remake))]) : []),
    // What the provider says of it besides (a plug-in's own facts).
    ...(m.details || []).flatMap(d => summaryRow(d.label, d.value)),
  );
  $("#resend-to").url.placeholder = m.url;

  const fields = m.fields.length ? m.fields : payDoFields(m.body);
  $("#message-fields tbody").replaceChildren(...fields.map(f =>
    el("tr", { id: "field-" + f.name, class: f.name === o.field ? "diff" : null },
      el("th", { scope: "row", class: "mono" }, f.name), el("td", {}, f.value), el("td", { class: "mono" }, f.raw ?? ""))));
  $("#message-raw").textContent = m.body;

  $("#message-attempts tbody").replaceChildren(...m.attempts.map(a =>
    el("tr", {},
      el("td", {}, String(a.number)), el("td", {}, a.trigger), el("td", {}, fmtTime(a.start)),
      el("td", {}, a.duration_ms !== undefined ? `${a.duration_ms.toFixed(1)} ms` : ""),
      el("td", { class: "mono url" }, breakable(a.url)), el("td", {}, a.status_code ? String(a.status_code) : "—"),
      el("td", {}, a.acked ? "acknowledged" : (a.status_code || a.error ? "not acknowledged: " + a.result : "running"),
        a.note ? el("div", { class: "muted" }, a.note) : null,
        a.response ? el("div", { class: "muted mono" }, "answer: " + a.response) : null),
      el("td", {}, a.next_attempt ? fmtTime(a.next_attempt) : ""))));
  if (!m.attempts.length) {
    $("#message-attempts tbody").replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "muted" }, "No attempt yet.")));
  }

  const pbs = m.postbacks || [];
  $("#message-postbacks").replaceChildren(...(pbs.length ? pbs.map(p => postbackView(p, m)) :
    [el("p", { class: "muted" }, m.provider === "paydo" ? "PayDo listeners look transactions up instead of posting back." : "The listener has not posted this message back.")]));
}

// breakable lets a URL wrap after its slashes, not in the middle of a word.
function breakable(url) {
  return (url || "").split("/").flatMap((part, i) => i ? [el("wbr"), "/" + part] : [part]);
}

function jumpTo(id) {
  const node = document.getElementById(id);
  if (!node) return;
  node.scrollIntoView({ block: "center" });
  node.classList.add("fresh");
}

// payDoFields lists a JSON body's leaves as path = value.
function payDoFields(body) {
  const out = [];
  const walk = (v, path) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, c] of Object.entries(v)) walk(c, path ? path + "." + k : k);
    } else out.push({ name: path, value: JSON.stringify(v) });
  };
  try { walk(JSON.parse(body), ""); } catch { /* shown raw */ }
  return out;
}

// parseForm splits a form body into its fields, keeping the bytes as sent.
function parseForm(body) {
  if (!body) return [];
  return body.split("&").map(seg => {
    const i = seg.indexOf("=");
    return i < 0 ? { name: seg, raw: "" } : { name: seg.slice(0, i), raw: seg.slice(i + 1) };
  });
}

function postbackView(p, m) {
  const v = p.verdict;
  const fatal = (v.findings || []).filter(f => f.fatal);
  const warnings = (v.findings || []).filter(f => !f.fatal);
  const differing = new Map(fatal.filter(f => f.field).map(f => [f.field, f]));
  const findings = (list, title) => list.length ? el("div", {}, el("h5", { class: "visually-hidden" }, title),
    ...list.map(f => el("p", { class: "finding" + (f.fatal ? " error" : "") },
      el("strong", {}, f.fatal ? "Why INVALID: " : "Warning: "),
      // The detail often names the field already: say it once.
      f.field && !(f.detail || "").includes(`"${f.field}"`) ? [el("span", {}, "field "), el("mark", { class: "mono" }, f.field), ": "] : "",
      f.detail || ["expected ", el("ins", { class: "mono" }, f.expected_text || f.expected || "(nothing)"),
        ", got ", el("del", { class: "mono" }, f.got_text || f.got || "(nothing)")]))) : null;
  const rows = parseForm(p.body).map(f => {
    const d = differing.get(f.name);
    return el("tr", { class: d ? "diff" : null },
      el("th", { scope: "row", class: "mono" }, f.name),
      el("td", { class: "mono" }, d ? el("mark", {}, f.raw) : f.raw),
      el("td", { class: "mono" }, d ? (d.expected ?? "") : ""));
  });
  // What the listener was answered comes first; behind an injected fault,
  // the emulator's own verdict follows, labelled: the listener never saw it.
  const received = p.received || v.result;
  const tone = received === "VERIFIED" ? "VERIFIED" : "INVALID";
  return el("article", { class: "postback", "aria-label": `Postback at ${fmtTime(p.time)}: answered ${received}` },
    el("h4", {}, el("span", { class: "verdict-" + tone }, received), " ", fmtTime(p.time),
      v.rule && !p.fault ? el("span", { class: "muted" }, ` (rule ${v.rule})`) : null,
      p.fault ? el("span", { class: "muted fault-note" }, ` (fault ${p.fault} injected; the emulator's verdict, not sent: ${v.result}${v.rule ? " " + v.rule : ""})`) : null),
    el("p", { class: "muted" }, `${p.method} ${p.uri} — answered HTTP ${p.response_status || "none (dropped)"}`),
    findings(fatal, "Why INVALID"), findings(warnings, "Warnings"),
    rows.length ? el("details", { open: v.result === "INVALID" ? true : null },
      el("summary", {}, "Fields posted back"),
      el("div", { class: "scroll" }, el("table", { class: "grid" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Name"), el("th", { scope: "col" }, "Bytes posted back"),
          el("th", { scope: "col" }, "Bytes PayPal sent"))),
        el("tbody", {}, rows)))) : null);
}

function setupMessage() {
  $("#resend-one").addEventListener("click", () => resend({}));
  $("#resend-to").addEventListener("submit", ev => {
    ev.preventDefault();
    resend({ url: ev.target.url.value.trim() });
  });
}

async function resend(body) {
  try {
    await api("POST", `/api/v1/messages/${encodeURIComponent(state.messageId)}/resend`, body);
    announce(body.url ? `Resent to ${body.url}` : "Resent");
  } catch (e) {
    announce(e.message);
  }
  refreshMessage();
}

// ---- simulator ----------------------------------------------------------------------

function simProvider() { return $("#sim").provider.value; }

// ownPanel says whether the Simulator has a panel of the provider's own
// (PayPal's fields, PayDo's body); any other provider that sends gets
// the shared one ("*"): a kind from its list and what it takes as set.
function ownPanel(provider) {
  return $$("#sim [data-for]").some(n => n.dataset.for.split(" ").includes(provider));
}

// fillProviders offers every provider that sends, from what
// GET /api/v1/providers says of it.
function fillProviders(providers) {
  state.senders = new Map(providers.filter(p => p.sends).map(p => [p.name, p]));
  const current = simProvider() || "paypal";
  $("#sim-providers").replaceChildren(el("legend", {}, "Provider"), ...[...state.senders.values()].map(p =>
    el("label", {}, el("input", { type: "radio", name: "provider", value: p.name, checked: p.name === current ? "" : null,
      onchange: () => { showResult($("#sim-result"), []); fillKinds(); generate(); } }), " " + p.title)));
  if (!simProvider() && state.senders.size) $("#sim-providers input").checked = true;
}

function simKind() {
  return $("#sim-kind-free").hidden ? $("#sim-kind").value : $("#sim-kind-name").value.trim();
}

function fillKinds() {
  const provider = simProvider();
  const kinds = state.senders?.get(provider)?.kinds || [];
  $("#sim-kind").replaceChildren(...kinds.map(k => el("option", { value: k.name, title: k.description || "" }, k.name)));
  // PayPal's simulator starts on a web payment too.
  if (kinds.some(k => k.name === "web_accept")) $("#sim-kind").value = "web_accept";
  // A provider that lists no kinds takes any name.
  $("#sim-kind-pick").hidden = kinds.length === 0;
  $("#sim-kind-free").hidden = kinds.length > 0;
  const own = ownPanel(provider);
  for (const node of $$("#sim [data-for]")) {
    node.hidden = node.dataset.for === "*" ? own : !node.dataset.for.split(" ").includes(provider);
  }
}

async function generate() {
  const provider = simProvider();
  if (!ownPanel(provider)) return; // nothing to preview: the provider makes it when asked
  const kind = $("#sim-kind").value;
  const q = new URLSearchParams();
  if (provider === "paypal") q.set("charset", $("#sim-charset").value);
  let p;
  try {
    p = await api("GET", `/api/v1/fixtures/${provider}/${encodeURIComponent(kind)}?${q}`);
  } catch (e) {
    showResult($("#sim-result"), e.message, true);
    return;
  }
  if (provider === "paypal") {
    $("#sim-fields tbody").replaceChildren(...p.fields.map(f => fieldRow(f.name, f.value)));
  } else {
    $("#sim-body").value = JSON.stringify(p.body, null, 2);
    const sim = $("#sim");
    sim.amount.value = p.amount || "";
    sim.currency.value = p.currency || "";
    $("#sim-lookup").hidden = kind !== "checkout";
  }
}

let fieldSeq = 0;

function fieldRow(name, value) {
  const n = ++fieldSeq;
  const row = el("tr", {},
    el("td", {}, el("input", { "aria-label": `Field ${n} name`, class: "field-name", value: name, autocomplete: "off", spellcheck: "false" })),
    el("td", {}, el("input", { "aria-label": `Field ${n} value`, class: "field-value", value, autocomplete: "off", spellcheck: "false" })),
    el("td", {}, el("button", { type: "button", "aria-label": `Remove field ${n}`, title: "Remove field",
      onclick: () => { const next = row.nextElementSibling || row.previousElementSibling; row.remove(); next && $("input", next).focus(); } }, "✕")));
  return row;
}

// setCharset names the new charset in the message's charset field, which
// decides the encoding, keeping the user's edits ("New values" regenerates
// with names written in that charset's script).
function setCharset() {
  const charset = $("#sim-charset").value;
  const row = $$("#sim-fields tbody tr").find(r => $(".field-name", r).value === "charset");
  if (row) $(".field-value", row).value = charset;
  else $("#sim-fields tbody").append(fieldRow("charset", charset));
  announce(`The message will be encoded in ${charset}`);
}

function editedFields() {
  return $$("#sim-fields tbody tr").map(r => ({ name: $(".field-name", r).value, value: $(".field-value", r).value }));
}

async function simSend(ev) {
  ev.preventDefault();
  const form = ev.target;
  const provider = simProvider();
  const kind = simKind();
  const url = form.url.value.trim();
  const result = $("#sim-result");
  try {
    let view;
    if (!ownPanel(provider)) {
      let set;
      try { set = JSON.parse($("#sim-set").value || "{}"); } catch (e) { throw new Error("Set does not parse as JSON: " + e.message); }
      if (set === null || typeof set !== "object" || Array.isArray(set)) throw new Error("Set must be a JSON object, such as {\"desk\": \"billing\"}");
      if (!kind) throw new Error("Name a kind: " + providerTitle(provider) + " lists none, so it takes any");
      const body = { kind, set };
      if (url) body.notify_url = url;
      view = (await api("POST", `/api/v1/providers/${encodeURIComponent(provider)}/messages`, body)).messages[0];
    } else if (provider === "paypal") {
      const body = { kind, fields: editedFields() };
      if (url) body.notify_url = url;
      view = await api("POST", "/api/v1/paypal/notifications", body);
    } else {
      let parsed;
      try { parsed = JSON.parse($("#sim-body").value); } catch (e) { throw new Error("The JSON body does not parse: " + e.message); }
      const body = { kind, body: parsed };
      if (url) body.notify_url = url;
      if (kind === "checkout" && (form.amount.value || form.currency.value)) {
        body.params = { amount: form.amount.value.trim(), currency: form.currency.value.trim() };
      }
      view = (await api("POST", "/api/v1/paydo/notifications", body)).messages[0];
    }
    announce(`Sent ${view.id}: ${view.outcome.summary}`);
    followOutcome(result, view);
  } catch (e) {
    showResult(result, e.message, true);
  }
}

let following = 0;

// showOutcome writes a sent message's outcome into the Simulator's line.
function showOutcome(node, view) {
  const o = view.outcome;
  showResult(node, ["Sent ", el("a", { href: "#/messages/" + encodeURIComponent(view.id) }, view.id), ": ",
    verdictCell(o), " — ", o.summary], o.state === "invalid" || o.state === "fault");
}

// refreshFollowed redraws the Simulator's line for the message it sent
// last, when an event touched it.
async function refreshFollowed() {
  const f = state.simFollowed;
  if (!f || f.turn !== following) return;
  try {
    const view = await api("GET", "/api/v1/messages/" + encodeURIComponent(f.id));
    if (f.turn === following) showOutcome(f.node, view);
  } catch {
    // gone from History: the line keeps what it last showed
  }
}

// followOutcome shows what became of a message the Simulator sent (the
// handshake, as PayPal's simulator reports it) and keeps it current while
// the listener may still post back: a listener that acks first verifies
// afterwards.
async function followOutcome(node, view) {
  const turn = ++following;
  // After the first half minute, the events about it keep it current
  // (follow): a listener may post back much later.
  state.simFollowed = { id: view.id, node, turn };
  // window.followPollMs: how long it polls (a spec sets 0 to see the
  // events alone keep the line current).
  const deadline = Date.now() + (window.followPollMs ?? 30000);
  for (;;) {
    showOutcome(node, view);
    const o = view.outcome;
    // A PayDo checkout is confirmed by the listener's lookup, which may
    // come after its 200: followed until then, or the deadline.
    const awaitingLookup = view.provider === "paydo" && view.kind === "checkout" && !o.confirmed_by_lookup;
    const settled = o.state === "verified" || (o.state === "delivered" && !awaitingLookup) || o.state === "invalid" ||
      (o.state === "undelivered" && !view.next_attempt);
    if (settled || Date.now() > deadline) return;
    await new Promise(r => setTimeout(r, 400));
    if (turn !== following) return;
    try {
      view = await api("GET", "/api/v1/messages/" + encodeURIComponent(view.id));
    } catch {
      return;
    }
    if (turn !== following) return;
  }
}

function setupSimulator() {
  const sim = $("#sim");
  $("#sim-kind").addEventListener("change", generate);
  $("#sim-charset").addEventListener("change", setCharset);
  $("#sim-generate").addEventListener("click", generate);
  $("#sim-add").addEventListener("click", () => {
    const row = fieldRow("", "");
    $("#sim-fields tbody").append(row);
    $(".field-name", row).focus();
  });
  sim.addEventListener("submit", simSend);

  $("#lifecycle-name").addEventListener("change", describeLifecycle);
  $("#lifecycle").addEventListener("submit", async ev => {
    ev.preventDefault();
    const form = ev.target;
    const body = { name: form.name.value };
    if (form.url.value.trim()) body.notify_url = form.url.value.trim();
    const out = $("#lifecycle-result");
    try {
      const plan = await api("POST", "/api/v1/paypal/lifecycles", body);
      showResult(out, el("ol", {}, plan.steps.map(s => el("li", {}, `${s.name} (${s.kind}) at ${fmtTime(s.at)} `,
        s.message_id ? el("a", { href: "#/messages/" + encodeURIComponent(s.message_id) }, s.message_id) : "— waits for the clock"))));
      announce(`Lifecycle ${plan.lifecycle} started`);
    } catch (e) {
      showResult(out, e.message, true);
    }
  });

  $("#scenario-name").addEventListener("change", describeScenario);
  $("#scenario").addEventListener("submit", async ev => {
    ev.preventDefault();
    const form = ev.target;
    const out = $("#scenario-result");
    const target = {};
    for (const k of ["paypal_url", "paydo_url", "probe_url"]) if (form[k].value.trim()) target[k] = form[k].value.trim();
    const button = $("button[type=submit]", form);
    button.disabled = true;
    showResult(out, `Running ${form.name.value}…`);
    try {
      const r = await api("POST", `/api/v1/scenarios/${encodeURIComponent(form.name.value)}/run`, target);
      showResult(out, [el("p", {}, el("strong", { class: "scenario-status" }, r.status), ` in ${r.seconds.toFixed(2)} s`,
        r.message ? `: ${r.message}` : ""),
      r.evidence && r.evidence.length ? el("ul", {}, r.evidence.map(e => el("li", {}, e))) : null,
      el("details", {}, el("summary", {}, "Steps"), el("ol", {}, r.log.map(l => el("li", {}, l))))], r.status === "failed" || r.status === "error");
      announce(`Scenario ${r.scenario}: ${r.status}`);
    } catch (e) {
      showResult(out, e.message, true);
    } finally {
      button.disabled = false;
    }
  });
}

function describeLifecycle() {
  const l = state.lifecycles.find(x => x.name === $("#lifecycle-name").value);
  $("#lifecycle-desc").textContent = l ? l.description : "";
}

function describeScenario() {
  const s = state.scenarios.find(x => x.name === $("#scenario-name").value);
  $("#scenario-desc").textContent = s ? s.description + (s.manual_clock ? " (moves the clock: needs --clock manual)" : "") : "";
}

// ---- live updates ---------------------------------------------------------------------

const timers = new Map();

// schedule runs fn once after a burst of calls (events come in bursts).
function schedule(fn, ms = 120) {
  clearTimeout(timers.get(fn));
  timers.set(fn, setTimeout(fn, ms));
}

async function follow() {
  for (;;) {
    try {
      const out = await api("GET", `/api/v1/events/poll?after=${state.lastEvent}&timeout=25s&limit=10000`);
      state.lastEvent = out.last;
      $("#live").dataset.state = "live";
      const touched = new Set(out.events.map(e => e.message_id));
      if (out.missed || out.events.length) {
        if (state.view === "history") schedule(refreshHistory);
        if (state.view === "message" && (out.missed || touched.has(state.messageId) || out.events.some(e => e.type === "clock.advanced"))) schedule(refreshMessage);
        if (state.simFollowed && (out.missed || touched.has(state.simFollowed.id))) schedule(refreshFollowed);
      }
      // Any event may change the clock's count of waiting callbacks.
      if (out.events.length) schedule(refreshClock, 300);
    } catch (e) {
      $("#live").dataset.state = "offline";
      announce("Lost the emulator (" + e.message + "); retrying…");
      await new Promise(r => setTimeout(r, 2000));
    }
  }
}

async function refreshAll() {
  await refreshClock();
  if (state.view === "history") await refreshHistory();
  if (state.view === "message") await refreshMessage();
}

// ---- routing ----------------------------------------------------------------------------

function route() {
  const hash = location.hash || "#/history";
  let m;
  if ((m = hash.match(/^#\/messages\/(.+)$/))) {
    state.view = "message";
    state.messageId = decodeURIComponent(m[1]);
  } else if (hash === "#/simulator") {
    state.view = "simulator";
  } else {
    state.view = "history";
  }
  $("#view-history").hidden = state.view !== "history";
  $("#view-message").hidden = state.view !== "message";
  $("#view-simulator").hidden = state.view !== "simulator";
  for (const a of $$("nav a")) {
    const current = a.dataset.view === state.view || (state.view === "message" && a.dataset.view === "history");
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.title = { history: "IPN History", message: "Message", simulator: "IPN Simulator" }[state.view] + " — ipnlab";
  if (state.view === "history") refreshHistory();
  if (state.view === "message") {
    $("#message-title").textContent = "Message " + state.messageId;
    refreshMessage().then(() => $("#message-title").focus());
  }
}

// providerTitle is the name people know a provider by (from
// GET /api/v1/providers; a plug-in without a title shows its name).
function providerTitle(name) {
  return (state.providers && state.providers.get(name)) || name;
}

async function start() {
  setupClock();
  setupHistory();
  setupMessage();
  setupSimulator();
  const [kinds, lifecycles, scenarios, providers] = await Promise.all([
    api("GET", "/api/v1/fixtures/kinds"), api("GET", "/api/v1/fixtures/lifecycles"), api("GET", "/api/v1/scenarios"),
    api("GET", "/api/v1/providers")]);
  state.providers = new Map(providers.providers.map(p => [p.name, p.title]));
  fillProviders(providers.providers);
  $("#filters").provider.replaceChildren(el("option", { value: "" }, "All"),
    ...providers.providers.map(p => el("option", { value: p.name }, p.title)));
  state.kinds = kinds.kinds;
  state.payDoKinds = kinds.paydo_kinds;
  state.lifecycles = lifecycles.lifecycles;
  state.scenarios = scenarios.scenarios;
  const target = scenarios.target || {};
  $("#filters").kind.append(...[...state.kinds, ...state.payDoKinds].map(k => el("option", { value: k.name }, k.name)));
  $("#lifecycle-name").replaceChildren(...state.lifecycles.map(l => el("option", { value: l.name }, l.name)));
  $("#scenario-name").replaceChildren(...state.scenarios.map(s => el("option", { value: s.name }, s.name)));
  const sc = $("#scenario");
  sc.paypal_url.value = target.endpoints?.paypal || "";
  sc.paydo_url.value = target.endpoints?.paydo || "";
  sc.probe_url.value = target.probe_url || "";
  if (!state.scenarios.length) $("#scenario").hidden = true;
  describeLifecycle();
  describeScenario();
  fillKinds();
  await refreshClock();
  const since = new Date(new Date(state.clock.now).getTime() - 24 * 3600e3).toISOString();
  $("#resend-failed").since.value = toInput(since);
  window.addEventListener("hashchange", route);
  route();
  generate();
  document.body.dataset.ready = "true";
  follow();
}

document.addEventListener("DOMContentLoaded", () => {
  start().catch(e => announce("The console could not start: " + e.message));
});

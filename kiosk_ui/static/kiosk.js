// The kiosk page. Plain JavaScript, no build step: the Pi serves this file as it is.
// Scans never come from this page's keyboard: the terminal reads the douchette itself and tells the page
// on /events (Server-Sent Events), so a focused field or an open dialog cannot swallow a scan.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const GROUPS = [1, 2, 7, 2, 4, 2]; // a pass number as printed: 1 26 0001234 07 5821 12
const DIGITS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "✕"];
// Activation codes use the central's alphabet (central/services/admin.py CODE_ALPHABET): no 0/O, 1/I/L.
const CODE_KEYS = [..."23456789ABCDEFGHJKMNPQRSTUVWXYZ", "⌫", "✕"];
const KIT_PREFIX = "AK-"; // kit numbers as printed on the label: AK-12606999
const VERDICT_SECONDS = 12; // a verdict stays this long, then the home screen comes back
const IDLE_SECONDS = 90; // self-service screens go home after this long untouched
const $ = (id) => document.getElementById(id);
const MEDIATEUR_SCREENS = ["mediateur", "entry", "confirm", "today", "diagnostics"];

const ui = {
  screen: "home",
  previous: "home",
  state: null,
  lastEventId: null, // the live cursor: the last event applied, or the event_id of a state loaded after a gap
  entry: null, // the open entry as of entryAt, an event id: from the state or from an "entry" event
  entryAt: -Infinity,
  keypadDigits: "",
  pin: "",
  activation: { field: "kit", kit: "", code: "" },
  level: null,
  category: null,
  verdictTimer: null,
  lastTouch: Date.now(),
};

// -- talking to the terminal -----------------------------------------------------------------------------

async function call(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
    body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    return { ok: false, status: 0, data: { message: "Le terminal ne répond pas. Réessayez dans un instant." } };
  }
  let data = {};
  try { data = await response.json(); } catch (error) { /* empty body */ }
  if (response.status === 401 && ui.state && ui.state.mediateur) {
    ui.state.mediateur = false;
    show("home");
  }
  return { ok: response.ok, status: response.status, data };
}

// One state request at a time: a refresh asked while one is out runs again after it, and every caller
// waits for a state asked after its own call.
let stateRequest = null;
let stateWanted = false;

function refresh() {
  stateWanted = true;
  if (!stateRequest) stateRequest = loadState();
  return stateRequest;
}

async function loadState() {
  let stale = 0;
  // stateRequest is cleared in the same step as the last check of stateWanted, so a refresh asked right after
  // is never lost (with a .finally() callback it would be cleared a microtask later, after a caller joined).
  try {
    while (stateWanted) {
      stateWanted = false;
      const { ok, data } = await call("/api/state");
      if (!ok) return;
      // Computed before an event this page already applied (a scan while it was on its way): showing it would
      // undo that event. Ask again; a few times only, an event arriving meanwhile asks by itself.
      if (ui.lastEventId !== null && data.event_id < ui.lastEventId && stale < 5) {
        stale += 1;
        stateWanted = true;
        continue;
      }
      applyState(data);
    }
  } finally {
    stateRequest = null;
  }
}

function applyState(data) {
  ui.state = data;
  if (ui.lastEventId === null) ui.lastEventId = data.event_id;
  setEntry(data.status.entry, data.event_id);
  renderStatus();
  // The terminal has no médiateur logged in (idle, logged out elsewhere): nothing of theirs stays on screen.
  if (!data.mediateur && MEDIATEUR_SCREENS.includes(ui.screen)) show("home");
  if (data.status.activation === "not_activated" && ui.screen !== "activation") show("activation");
  const waiting = data.status.activation !== "not_activated" && !data.status.point;
  $("home-alert").hidden = !waiting;
  $("home-alert").textContent = waiting
    ? "Ce terminal attend qu'un médiateur choisisse le point de présence (Espace médiateur)." : "";
  if (ui.screen === "today") renderToday();
  if (ui.screen === "diagnostics") renderDiagnostics();
  if (ui.screen === "mediateur") renderMediateur();
}

// The open entry comes from states and "entry" events: the one of the later event id wins.
function setEntry(entry, eventId) {
  if (eventId < ui.entryAt) return;
  ui.entry = entry;
  ui.entryAt = eventId;
  if (ui.screen === "entry") renderEntry();
}

// -- screens ---------------------------------------------------------------------------------------------

function show(name) {
  if (name === "back") name = ui.previous;
  if (name !== ui.screen && !["keypad", "verdict"].includes(ui.screen)) ui.previous = ui.screen;
  clearTimeout(ui.verdictTimer);
  for (const section of document.querySelectorAll(".screen")) {
    section.classList.toggle("active", section.dataset.screen === name);
  }
  ui.screen = name;
  const render = { where: renderWhere, mediateur: renderMediateur, today: renderToday, diagnostics: renderDiagnostics,
    keypad: renderKeypad, pin: renderPin, activation: renderActivation, entry: renderEntry }[name];
  if (render) render();
}

function el(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

function grouped(digits) {
  const parts = [];
  let i = 0;
  for (const size of GROUPS) {
    if (i >= digits.length) break;
    parts.push(digits.slice(i, i + size));
    i += size;
  }
  return parts.join(" ");
}

function euros(cents) {
  return (cents / 100).toFixed(2).replace(".", ",") + "\u00a0€";
}

function frenchDate(iso) {
  if (!iso) return "";
  const [y, m, d] = iso.slice(0, 10).split("-");
  return `${d}/${m}/${y}`;
}

function hourMinute(iso) {
  return iso ? new Date(iso).toLocaleTimeString("fr-FR", { hour: "2-digit", minute: "2-digit" }) : "";
}

function serviceTitle(number) {
  const found = ui.state && ui.state.catalogue.find((s) => s.number === number);
  return found ? `${number}. ${found.title}` : `Service ${number}`;
}

// -- status bar ------------------------------------------------------------------------------------------

function pill(id, text, state) {
  const node = $(id);
  node.textContent = text;
  node.dataset.state = state;
}

function renderStatus() {
  const s = ui.state;
  $("place-name").textContent = s.status.place || s.organisation || "Pass #APTIC";
  const online = s.sync && s.sync.online;
  pill("net", online === undefined ? "Central ?" : online ? "En ligne" : "Hors ligne",
    online === undefined ? "unknown" : online ? "ok" : "bad");
  const pending = s.status.outbox.pending;
  pill("pending", `${pending} en attente`, pending ? "warn" : "ok");
  pill("last-sync", s.sync && s.sync.last_success ? `Synchro ${hourMinute(s.sync.last_success)}` : "Jamais synchronisé",
    s.sync && s.sync.last_success ? "ok" : "warn");
  const connected = (s.scanners || []).filter((d) => d.douchette && d.grabbed);
  pill("scanner", connected.length ? "Douchette connectée" : "Aucune douchette", connected.length ? "ok" : "bad");
}

function tick() {
  // Written only when the minute changes: a new text node each second made the page repaint each second,
  // which a Pi's CPU (and an emulated one, far more) pays for all day.
  const time = new Date().toLocaleTimeString("fr-FR", { hour: "2-digit", minute: "2-digit" });
  if ($("clock").textContent !== time) $("clock").textContent = time;
  const idle = (Date.now() - ui.lastTouch) / 1000;
  const mediateur = (ui.state && ui.state.mediateur) || MEDIATEUR_SCREENS.includes(ui.screen);
  if (idle > IDLE_SECONDS && ["where", "keypad", "pin"].includes(ui.screen) && !mediateur) show("home");
  // A médiateur who walked away is logged out (the server does it too): nothing stays open on screen.
  // An entry with passes in it stays on the terminal, to be submitted after the PIN.
  if (mediateur && ui.state && idle > ui.state.mediateur_idle_s) {
    ui.state.mediateur = false;
    show("home");
    call("/api/mediateur/logout", {}).then(refresh);
  }
}

// -- verdicts --------------------------------------------------------------------------------------------

const NEXT_STEP = {
  ok: "Présentez ce pass au médiateur : il règle un service de ce lieu.",
  malformed: "Rescannez le pass bien à plat, ou saisissez son numéro à la main.",
  unknown_pass: "Adressez-vous à la structure qui vous a remis le pass.",
  not_activated: "Adressez-vous à la structure qui vous a remis le pass.",
  blocked: "Adressez-vous à la structure qui vous a remis le pass.",
  already_used: "Un pass ne sert qu'une fois. Demandez conseil au médiateur.",
  not_yet_valid: "Revenez à partir de la date indiquée.",
  expired: "Ce pass ne peut plus être utilisé. Demandez conseil au médiateur.",
  territory: "La lettre remise avec votre carnet indique les lieux où l'utiliser.",
  place_type: "La lettre remise avec votre carnet indique les lieux où l'utiliser.",
  place_not_designated: "La lettre remise avec votre carnet indique les lieux où l'utiliser.",
};

function tone(result) {
  if (!result.valid) return "refused";
  return result.provisional ? "provisional" : "valid";
}

function showVerdict(result) {
  const section = $("verdict");
  section.dataset.tone = tone(result);
  $("verdict-title").textContent = result.valid
    ? (result.provisional ? "Pass valable (vérifié hors ligne)" : "Pass valable") : result.title;
  $("verdict-message").textContent = result.message;
  const facts = $("verdict-pass");
  facts.replaceChildren();
  const info = result.pass;
  if (info) {
    for (const [label, value] of [["Valeur", euros(info.value_cents)], ["Valable jusqu'au", frenchDate(info.valid_until)],
      ["Commanditaire", info.commanditaire], ["Numéro", grouped(info.number)]]) {
      facts.append(el("dt", label), el("dd", value));
    }
  }
  const notes = $("verdict-notes");
  notes.replaceChildren(...[...result.warnings, ...result.restrictions].map((text) => el("li", text)));
  if (result.provisional && result.valid) notes.append(el("li", "Le central confirmera ce pass dès que le réseau revient."));
  $("verdict-next").textContent = NEXT_STEP[result.reason] || "Demandez conseil au médiateur.";
  show("verdict");
  ui.verdictTimer = setTimeout(() => { if (ui.screen === "verdict") show("home"); }, VERDICT_SECONDS * 1000);
}

function showNotice(title, message, next) {
  $("verdict").dataset.tone = "refused";
  $("verdict-title").textContent = title;
  $("verdict-message").textContent = message;
  $("verdict-pass").replaceChildren();
  $("verdict-notes").replaceChildren();
  $("verdict-next").textContent = next;
  show("verdict");
  ui.verdictTimer = setTimeout(() => { if (ui.screen === "verdict") show("home"); }, VERDICT_SECONDS * 1000);
}

function onScan(result) {
  if (result.mode === "entry" && ui.state && ui.state.mediateur) {
    const banner = $("entry-last");
    banner.hidden = false;
    banner.dataset.tone = tone(result);
    banner.textContent = `${result.pass_number ? grouped(result.pass_number) : result.code} — ${result.message}`;
    if (ui.screen !== "entry") show("entry");
    return;
  }
  showVerdict(result);
}

// -- where to use the pass -------------------------------------------------------------------------------

function renderWhere() {
  if (!ui.state) return;
  $("where-services").replaceChildren(...ui.state.catalogue.map((s) => {
    const li = el("li");
    li.append(el("span", s.number, { class: "num" }), el("span", s.title, { class: "grow" }));
    return li;
  }));
  $("where-points").replaceChildren(...ui.state.points.map((p) => el("li", p.name)));
}

// -- keypads ---------------------------------------------------------------------------------------------

function buildPad(container, onKey, keys = DIGITS) {
  container.classList.toggle("wide", keys.length > DIGITS.length);
  container.replaceChildren(...keys.map((key) => {
    const button = el("button", key, { type: "button", class: "secondary",
      "aria-label": key === "⌫" ? "Effacer un chiffre" : key === "✕" ? "Tout effacer" : key });
    button.addEventListener("click", () => onKey(key));
    return button;
  }));
}

function edit(value, key, max) {
  if (key === "⌫") return value.slice(0, -1);
  if (key === "✕") return "";
  return value.length < max ? value + key : value;
}

function renderKeypad() {
  $("keypad-display").textContent = grouped(ui.keypadDigits);
  $("keypad-error").textContent = "";
}

async function submitKeypad() {
  if (ui.keypadDigits.length !== 18) {
    $("keypad-error").textContent = `Il manque ${18 - ui.keypadDigits.length} chiffre(s) : le numéro en a 18.`;
    return;
  }
  const { ok, data } = await call("/api/check", { code: ui.keypadDigits });
  if (!ok) {
    $("keypad-error").textContent = data.message || "Vérification impossible.";
    return;
  }
  ui.keypadDigits = "";
  onScan(data);
}

function renderPin() {
  $("pin-display").textContent = "•".repeat(ui.pin.length);
}

async function submitPin() {
  const { ok, data } = await call("/api/mediateur/login", { pin: ui.pin });
  ui.pin = "";
  renderPin();
  if (!ok) {
    $("pin-error").textContent = data.message;
    return;
  }
  $("pin-error").textContent = "";
  await refresh();
  show(ui.entry ? "entry" : "mediateur");
}

// -- médiateur -------------------------------------------------------------------------------------------

function recentServices() {
  try { return JSON.parse(localStorage.getItem("recentServices") || "[]"); } catch (error) { return []; }
}

function rememberService(number) {
  const recent = [number, ...recentServices().filter((n) => n !== number)].slice(0, 6);
  localStorage.setItem("recentServices", JSON.stringify(recent));
}

function renderMediateur() {
  if (!ui.state) return;
  const select = $("point-select");
  select.replaceChildren(...ui.state.points.map((p) => el("option", p.name, { value: p.id })));
  if (ui.state.status.point) select.value = ui.state.status.point;
  const chips = $("service-levels");
  const levels = [[null, "Récents"], [1, "Niveau 1 · Découvrir"], [2, "Niveau 2 · Maîtriser"], [3, "Niveau 3 · Agir"]];
  const chip = (label, pressed, onClick) => {
    const button = el("button", label, { type: "button", "aria-pressed": String(pressed) });
    button.addEventListener("click", () => { $("service-search").value = ""; onClick(); renderMediateur(); });
    return button;
  };
  const levelChips = levels.map(([level, label]) =>
    chip(label, ui.level === level && ui.category === null, () => { ui.level = level; ui.category = null; }));
  // Within a level, its categories (as in the référentiel: 1.1 S'informer, 2.2 Faire ses démarches...).
  const categories = new Map(ui.state.catalogue.filter((s) => s.level === ui.level)
    .map((s) => [s.category, s.category_name]));
  const categoryChips = [...categories].map(([code, name]) =>
    chip(`${code} ${name}`, ui.category === code, () => { ui.category = code; }));
  chips.replaceChildren(...levelChips, ...categoryChips);
  renderServices(serviceChoices($("service-search").value));
}

function serviceChoices(query) {
  const catalogue = ui.state.catalogue;
  const words = query.trim().toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/’/g, "'");
  if (words) {
    const terms = words.split(/\s+/);
    return catalogue.filter((s) => {
      const text = `${s.number} ${s.title} ${s.category_name}`.toLowerCase().normalize("NFD")
        .replace(/[\u0300-\u036f]/g, "").replace(/’/g, "'");
      return terms.every((t) => String(s.number) === t || text.includes(t));
    });
  }
  if (ui.level === null) {
    const recent = recentServices().map((n) => catalogue.find((s) => s.number === n)).filter(Boolean);
    return recent.length ? [...recent, ...catalogue.filter((s) => !recent.includes(s))] : catalogue;
  }
  return catalogue.filter((s) => s.level === ui.level && (ui.category === null || s.category === ui.category));
}

function renderServices(services) {
  $("service-list").replaceChildren(...services.map((s) => {
    const li = el("li", null, { role: "button", tabindex: "0", "data-service": s.number });
    li.append(el("span", s.number, { class: "num" }), el("span", s.title, { class: "grow" }),
      el("span", `${s.category} ${s.category_name}`, { class: "state" }));
    li.addEventListener("click", () => startEntry(s.number));
    return li;
  }));
}

async function startEntry(number) {
  const { ok, data } = await call("/api/entry", { service: number });
  if (!ok) { alertScreen(data.message); return; }
  rememberService(number);
  $("entry-last").hidden = true;
  ui.entry = data; // the answer to this page's own request: newer than any state or event it has had
  show("entry");
}

function alertScreen(message) {
  const banner = ui.screen === "entry" ? $("entry-last") : $("mediateur-alert");
  banner.hidden = false;
  banner.dataset.tone = "refused";
  banner.textContent = message;
}

function renderEntry() {
  const entry = ui.entry || { service: null, passes: [] };
  $("entry-service").textContent = entry.service === null ? "" : serviceTitle(entry.service);
  const list = $("entry-passes");
  list.replaceChildren(...entry.passes.map((p) => {
    const li = el("li");
    const remove = el("button", "Retirer", { type: "button", class: "secondary" });
    remove.addEventListener("click", () => call("/api/entry/remove", { pass_number: p.pass_number }));
    li.append(el("span", grouped(p.pass_number), { class: "grow num" }),
      el("span", p.provisional ? "Hors ligne" : "Vérifié", { class: "state", "data-status": p.provisional ? "pending" : "accepted" }),
      remove);
    return li;
  }));
  const count = entry.passes.length;
  const submit = $("entry-submit");
  submit.disabled = count === 0;
  submit.textContent = count
    ? `Soumettre le contre-paiement (${count} pass · ${euros(count * 960)})` : "Soumettre le contre-paiement";
}

async function submitEntry() {
  const submit = $("entry-submit");
  submit.disabled = true;
  submit.textContent = "Enregistrement…";
  const { ok, data } = await call("/api/entry/submit", {});
  if (!ok) {
    alertScreen(data.message || "Enregistrement impossible : rien n'a été perdu, réessayez.");
    await refresh();
    renderEntry();
    return;
  }
  // Only now, with the scans fsync'd on the terminal, may the screen say "enregistré".
  ui.lastReceipt = data;
  const n = data.passes.length;
  $("confirm-title").textContent = "Enregistré";
  $("confirm-message").textContent =
    `${n} pass enregistré${n > 1 ? "s" : ""} pour le service ${serviceTitle(data.service)}. ` +
    `Annulation possible jusqu'à ${hourMinute(data.cancellable_until)}, tant que l'envoi au central n'a pas eu lieu.`;
  $("confirm-cancel").hidden = false;
  show("confirm");
  refresh();
}

async function cancelEntry(entryId) {
  const { ok, data } = await call("/api/entry/cancel", { entry_id: entryId });
  if (ui.screen === "confirm") {
    $("confirm-title").textContent = ok ? "Saisie annulée" : "Annulation impossible";
    $("confirm-message").textContent = ok ? `${data.cancelled.length} pass retiré(s) : rien ne sera facturé.` : data.message;
    $("confirm-cancel").hidden = true;
  }
  await refresh();
}

const STATUS_LABEL = { pending: "En attente d'envoi", accepted: "Accepté", rejected: "Refusé par le central",
  flagged: "Accepté, à vérifier", cancelled: "Annulé" };

function renderToday() {
  if (!ui.state) return;
  $("late").replaceChildren(...ui.state.late_rejections.map((r) => {
    const li = el("li");
    li.append(el("strong", "Refus tardif"), el("span", `${grouped(r.pass_number)} — ${r.message}`, { class: "grow" }));
    return li;
  }));
  const byEntry = new Map();
  for (const row of ui.state.today) {
    if (!byEntry.has(row.entry_id)) byEntry.set(row.entry_id, []);
    byEntry.get(row.entry_id).push(row);
  }
  const items = [];
  for (const [entryId, rows] of byEntry) {
    const li = el("li");
    const passes = el("span", null, { class: "grow" });
    passes.append(el("strong", `${hourMinute(rows[0].submitted_at)} · ${serviceTitle(rows[0].service)}`));
    for (const row of rows) {
      const line = el("div", `${grouped(row.pass_number)} `);
      line.append(el("span", STATUS_LABEL[row.status] || row.status, { class: "state", "data-status": row.status }));
      passes.append(line);
    }
    li.append(passes);
    const fresh = (Date.now() - new Date(rows[0].submitted_at).getTime()) < 15 * 60 * 1000;
    if (fresh && rows.every((r) => r.status === "pending")) {
      const cancel = el("button", "Annuler", { type: "button", class: "secondary" });
      cancel.addEventListener("click", () => cancelEntry(entryId));
      li.append(cancel);
    }
    items.push(li);
  }
  $("today-list").replaceChildren(...(items.length ? items : [el("li", "Aucune saisie aujourd'hui.")]));
}

function renderDiagnostics() {
  if (!ui.state) return;
  const s = ui.state;
  const scanners = (s.scanners || []).filter((d) => d.douchette).map((d) => {
    const layout = d.detected_layout || d.layout;
    return `${d.name}${layout ? ` (clavier ${layout})` : ""}${d.grabbed ? "" : " — non saisie"}`;
  }).join(", ");
  const rows = [
    ["Douchettes", scanners || "aucune"],
    ["Central", s.sync && s.sync.online ? "joignable" : "injoignable"],
    ["Dernière synchro", s.sync && s.sync.last_success ? `${frenchDate(s.sync.last_success)} ${hourMinute(s.sync.last_success)}` : "jamais"],
    ["Horloge", s.status.clock_synced ? "synchronisée" : "non synchronisée"],
    ["En attente d'envoi", `${s.status.outbox.pending} / ${s.status.outbox.limit}`],
    ["Terminal", s.status.device_id || "non activé"],
    ["Version", s.version],
  ];
  $("diag").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
}

// -- activation ------------------------------------------------------------------------------------------

function renderActivation() {
  const a = ui.activation;
  $("kit-display").textContent = KIT_PREFIX + a.kit + (a.field === "kit" ? "▏" : "");
  const code = a.code.length > 4 ? `${a.code.slice(0, 4)}-${a.code.slice(4)}` : a.code;
  $("code-display").textContent = code + (a.field === "code" ? "▏" : "");
  buildPad($("activation-pad"), (key) => {
    a[a.field] = edit(a[a.field], key, a.field === "kit" ? 12 : 8);
    renderActivation();
  }, a.field === "kit" ? DIGITS : CODE_KEYS);
}

async function submitActivation() {
  const { ok, data } = await call("/api/activate", { kit: KIT_PREFIX + ui.activation.kit, code: ui.activation.code });
  if (!ok) { $("activation-error").textContent = data.message; return; }
  ui.activation = { field: "kit", kit: "", code: "" };
  $("activation-error").textContent = "";
  await refresh();
  show("home");
}

// -- live updates: SSE, with polling when a stream cannot be held ----------------------------------------

function handleEvent(kind, data, id) {
  if (kind === "reload") { reload(id); return; }
  ui.lastEventId = id;
  if (kind === "scan") onScan(data.result);
  else if (kind === "entry") setEntry(data.entry, id);
  if (["submitted", "synced", "late_rejection", "cancelled", "mode", "refused", "sync"].includes(kind)) refresh();
  if (kind === "refused") {
    if (ui.state && ui.state.mediateur) alertScreen(data.message);
    else showNotice("Scan impossible", data.message, "Appelez le médiateur.");
  }
}

// The events since the page's cursor are no longer all on the terminal (or it has none): reload the whole
// state and go on from the terminal's last event id.
function reload(lastId) {
  ui.lastEventId = lastId;
  ui.entryAt = -Infinity; // ids may have started again lower (the terminal restarted, its clock set back)
  refresh();
}

const KINDS = ["scan", "entry", "submitted", "cancelled", "mode", "synced", "late_rejection", "refused", "sync", "reload"];

function listen() {
  if (!window.EventSource) { poll(Infinity); return; }
  // Never "from now": from the last event applied, or the loaded state's. A reconnect of this EventSource
  // sends the last id it saw instead (Last-Event-ID).
  const source = new EventSource(ui.lastEventId === null ? "/events" : `/events?last_id=${ui.lastEventId}`);
  let failures = 0;
  for (const kind of KINDS) {
    source.addEventListener(kind, (event) => {
      failures = 0;
      handleEvent(kind, JSON.parse(event.data), Number(event.lastEventId));
    });
  }
  source.addEventListener("open", () => { failures = 0; document.body.dataset.live = "sse"; });
  source.addEventListener("error", async () => {
    failures += 1;
    // A refused stream (503: too many open) closes the EventSource for good: poll instead for ten seconds
    // (long polls: verdicts still show at once), then try a stream again. Repeated network errors do the same.
    if (source.readyState === EventSource.CLOSED || failures >= 5) {
      source.close();
      await poll(Date.now() + 10000);
      listen();
    }
  });
}

async function poll(until) {
  document.body.dataset.live = "poll";
  while (Date.now() < until) {
    const after = ui.lastEventId === null ? "" : `after=${ui.lastEventId}&`;
    const { ok, data } = await call(`/api/updates?${after}wait=8`);
    if (!ok) { await new Promise((r) => setTimeout(r, 1000)); continue; }
    if (data.gap || ui.lastEventId === null) { reload(data.last_id); continue; }
    for (const event of data.events) handleEvent(event.kind, event.data, event.id);
  }
}

// -- wiring ----------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  document.body.addEventListener("pointerdown", () => { ui.lastTouch = Date.now(); }, true);
  for (const button of document.querySelectorAll("[data-go]")) {
    button.addEventListener("click", () => {
      if (button.dataset.keypad) ui.keypadDigits = "";
      show(button.dataset.go);
    });
  }
  buildPad($("pad"), (key) => { ui.keypadDigits = edit(ui.keypadDigits, key, 18); renderKeypad(); });
  buildPad($("pin-pad"), (key) => { ui.pin = edit(ui.pin, key, 8); renderPin(); });
  $("keypad-ok").addEventListener("click", submitKeypad);
  $("pin-ok").addEventListener("click", submitPin);
  $("activation-next").addEventListener("click", () => {
    ui.activation.field = ui.activation.field === "kit" ? "code" : "kit";
    renderActivation();
  });
  $("activation-ok").addEventListener("click", submitActivation);
  $("service-search").addEventListener("input", (event) => renderServices(serviceChoices(event.target.value)));
  $("point-select").addEventListener("change", async (event) => {
    await call("/api/point", { point: Number(event.target.value) });
    await refresh();
  });
  $("entry-submit").addEventListener("click", submitEntry);
  $("entry-abandon").addEventListener("click", async () => { await call("/api/entry/abandon", {}); show("mediateur"); });
  $("confirm-cancel").addEventListener("click", () => ui.lastReceipt && cancelEntry(ui.lastReceipt.entry_id));
  $("logout").addEventListener("click", async () => { await call("/api/mediateur/logout", {}); await refresh(); show("home"); });
  $("led-test").addEventListener("click", () => call("/api/diagnostics/led-test", {}));
  show("home");
  refresh().finally(listen); // the state first: the live updates go on from its event id
  tick();
  setInterval(tick, 1000);
  setInterval(refresh, 30000);
});

// The site manager's page at /c1#<digits>: verify at once on the phone, then ask the server.
//
// DOM contract (#result): data-stage = idle | pending | local | settled. Once a verdict is
// settled, data-verdict = accept | reject | error and data-source = online | offline.
// "offline" means only the phone's signature check ran (no network, or the server did not
// answer): a valid signature is then shown amber, never green, because a revoked card also
// has a valid signature. "local" is the phone's verdict shown while the server is asked.
// A settled verdict also has data-status-source = online | list | stale | none and, unless none,
// data-status-as-of (ISO time): offline, a current signed status list (status.js, fetched and
// cached after the first verdict when the page pins a trust anchor) turns amber into green or red.

import { takeEarlyVerify } from "./early-verify.js"; // first: it sends POST /v1/verify before the rest runs
import { envelopeFromQrText } from "./digits.js";
import { LANGUAGES, t } from "./i18n.js";
import { VerifyError, claimDates, offlineReasons, toHex, verifyEnvelope } from "./verify.js";

const $ = (id) => document.getElementById(id);
const root = document.documentElement;
const config = JSON.parse(document.body.dataset.config || "{}");
const catalogue = new Map((config.catalogue || []).map((item) => [item.code, item]));
const hotWorkCategory = config.hot_work_category ?? 2;
const KEY_STORE = "certseal.keys";
const LANG_STORE = "certseal.lang";
const KEYS_TIMEOUT_MS = 4000;
// A /v1/verify that has not answered after VERIFY_AMBER_MS gets the phone's own (amber) verdict, which the
// server's verdict still replaces until VERIFY_TIMEOUT_MS; a holder check waits HOLDER_TIMEOUT_MS.
const VERIFY_AMBER_MS = 3000;
const VERIFY_TIMEOUT_MS = 15000;
const HOLDER_TIMEOUT_MS = 8000;
const LIST_REFRESH_MS = 5 * 60 * 1000;
const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK = "10X98765432";

const storage = {
  get(name) {
    try {
      return localStorage.getItem(name);
    } catch {
      return null;
    }
  },
  set(name, value) {
    try {
      localStorage.setItem(name, value);
    } catch {
      /* private mode or full: the service worker cache still holds the key list */
    }
  },
};

const state = {
  lang: pickLanguage(),
  qr: null,
  run: 0,
  model: { stage: "idle" },
  phishingOrigin: null,
  holderMessage: null,
  scanner: null,
  audio: null,
};

const tr = (key, params) => t(state.lang, key, params);

function pickLanguage() {
  const saved = storage.get(LANG_STORE);
  if (LANGUAGES.includes(saved)) return saved;
  return LANGUAGES.includes(root.dataset.lang) ? root.dataset.lang : "zh";
}

// --- data ---

class NoKeyList extends Error {}

async function fetchWithTimeout(url, init, ms) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  try {
    return await fetch(url, { ...init, signal: controller.signal });
  } finally {
    clearTimeout(timer);
  }
}

/** GET /v1/keys (the service worker answers from its cache at once and revalidates), saved for later visits. */
async function fetchKeys() {
  const response = await fetchWithTimeout("/v1/keys", { headers: { Accept: "application/json" } }, KEYS_TIMEOUT_MS);
  if (!response.ok) throw new Error(`key list: HTTP ${response.status}`);
  const body = await response.json();
  const keys = body.keys.map(({ kid, alg, state: keyState, issuer, jwk }) => ({ kid, alg, state: keyState, issuer, jwk }));
  const list = { keys, date: body.generated_at };
  storage.set(KEY_STORE, JSON.stringify(list));
  return list;
}

function savedKeys() {
  try {
    return JSON.parse(storage.get(KEY_STORE) || "null");
  } catch {
    return null;
  }
}

/**
 * The key list without waiting on the network when there is a copy: {list, fresh}. ``list`` is the copy
 * kept from the last visit, else GET /v1/keys (null if neither); ``fresh`` is the network's list still
 * coming (a promise, or null when ``list`` already is it), for a key the copy does not know.
 */
async function loadKeys() {
  const fresh = fetchKeys();
  fresh.catch(() => null);
  const saved = savedKeys();
  if (saved) return { list: saved, fresh };
  return { list: await fresh.catch(() => null), fresh: null };
}

function currentPurpose() {
  const value = $("purpose").value || "hot_work";
  return value === "hot_work" ? { hotWork: true } : { operation: value };
}

function operationName(item) {
  return state.lang === "zh" ? item.zh : item.en;
}

function purposeLabel() {
  const purpose = currentPurpose();
  if (purpose.hotWork) return tr("purpose.hotWork");
  const item = catalogue.get(purpose.operation);
  return item ? `${item.code} ${operationName(item)}` : purpose.operation;
}

function certFromVerified({ claims }) {
  const dates = claimDates(claims);
  const code = `${claims.operation.category}.${claims.operation.item}`;
  const item = catalogue.get(code);
  return {
    holderName: claims.holderName,
    maskedId: `${claims.maskedId.slice(0, 4)}${"*".repeat(10)}${claims.maskedId.slice(4)}`,
    operation: { code, zh: item ? item.zh : null, en: item ? item.en : null, coversHotWork: claims.operation.category === hotWorkCategory },
    validUntil: dates.validUntil,
    reviewDue: dates.reviewDue,
    issuer: { code: claims.issuer, name: null },
    serial: toHex(claims.serial),
    photoUrl: null,
  };
}

function certFromServer(c) {
  return {
    holderName: c.holder_name,
    maskedId: c.masked_id,
    operation: { code: c.operation.code, zh: c.operation.zh, en: c.operation.en, coversHotWork: c.operation.covers_hot_work },
    validUntil: c.valid_until,
    reviewDue: c.review_due,
    issuer: { code: c.issuer.code, name: c.issuer.name, servicePhone: c.issuer.service_phone ?? null },
    serial: c.serial,
    photoUrl: c.photo_url,
    statusSince: c.status_since ?? null,
    supersededBy: c.superseded_by ?? null,
    examPoint: c.exam_point ? c.exam_point.name : null,
  };
}

/** The phone's own verdict: format, signature with the cached key list, and what it can judge offline. */
async function verifyLocally(qr, purpose) {
  const { list, fresh } = await loadKeys();
  const first = await verifyWithKeys(qr, purpose, list);
  const unknownKey = first.verdict === "error" ? first.errorKey === "error.noKeys" : first.reasons.includes("unknown_key");
  if (!fresh || !unknownKey) return first;
  // A key newer than the saved copy: the network's list decides, if it comes.
  const newer = await fresh.catch(() => null);
  return newer ? verifyWithKeys(qr, purpose, newer) : first;
}

async function verifyWithKeys(qr, purpose, keyList) {
  const keyDate = keyList ? keyList.date : null;
  try {
    const lookup = (kid) => {
      if (!keyList) throw new NoKeyList();
      return keyList.keys.find((key) => key.kid === kid);
    };
    const certificate = await verifyEnvelope(envelopeFromQrText(qr), lookup);
    const reasons = offlineReasons(certificate, {
      now: Date.now() / 1000,
      purpose,
      reviewRequired: config.review_required !== false,
      hotWorkCategory,
    });
    return { verdict: reasons.length ? "reject" : "accept", reasons, cert: certFromVerified(certificate), keyDate };
  } catch (error) {
    if (error instanceof VerifyError && !error.browserLimit) {
      return { verdict: "reject", reasons: [error.code], cert: null, keyDate };
    }
    const errorKey = error instanceof NoKeyList ? "error.noKeys" : error instanceof VerifyError ? "error.browser" : "error.unexpected";
    return { verdict: "error", reasons: [], errorKey, cert: null, keyDate };
  }
}

/** A 4xx answer to the QR itself (e.g. 422, an over-long fragment): the code is malformed, the server is fine. */
const MALFORMED_STATUS = (status) => status >= 400 && status < 500 && status !== 408 && status !== 429;
let verifySentAt = 0;

/** POST /v1/verify; never rejects: {kind: "online", data} or {kind: "unavailable", why, holderMessage?}. */
async function askServer(qr, purpose, holderId) {
  const body = { qr, ...(purpose.hotWork ? { purpose: "hot_work" } : { operation: purpose.operation }) };
  if (holderId) body.holder_id_number = holderId;
  try {
    const json = JSON.stringify(body);
    const early = takeEarlyVerify(json);
    verifySentAt = early ? early.sentAt : performance.now(); // before any await: check() reads it
    const response = await (early
      ? early.response
      : fetchWithTimeout(
          "/v1/verify",
          { method: "POST", headers: { "Content-Type": "application/json" }, body: json, cache: "no-store" },
          holderId ? HOLDER_TIMEOUT_MS : VERIFY_TIMEOUT_MS,
        ));
    const data = await response.json().catch(() => null);
    if (response.ok && data && data.decision) return { kind: "online", data };
    const code = data && data.error ? data.error.code : null;
    if (code === "holder_check_limited") return { kind: "unavailable", why: "holder_limited", holderMessage: "holder.limited" };
    if (code === "invalid_id_number") return { kind: "unavailable", why: "server", holderMessage: "holder.invalid" };
    if (MALFORMED_STATUS(response.status)) return { kind: "online", data: { decision: "reject", reasons: ["malformed"], certificate: null } };
    return { kind: "unavailable", why: response.status === 429 ? "busy" : "server" };
  } catch {
    return { kind: "unavailable", why: "offline" };
  }
}

// --- the check ---

// Timing: the server is asked and the phone verifies at once, in parallel. The server's verdict is shown
// as soon as it comes, whatever the phone's key list is doing (a hanging GET /v1/keys never holds it up).
// The phone's verdict is shown as "local" while the server is asked; if the server cannot answer, or has
// not answered after VERIFY_AMBER_MS, it settles as the offline verdict (amber, why = "timing_slow" while
// still waiting), and the server's verdict replaces it if it comes within VERIFY_TIMEOUT_MS.
// Marks: certseal-signature-verdict (the phone's own), certseal-local-verdict (shown as interim),
// certseal-verdict (the first settled verdict), certseal-amber (settled before the server answered),
// certseal-online-verdict (the server's verdict shown).
async function check(qr, { scanned = false, holderId = null } = {}) {
  const run = ++state.run;
  const current = () => run === state.run;
  const purpose = currentPurpose();
  const previous = state.model;
  state.qr = qr;
  if (!holderId) state.holderMessage = null;
  let answer = null;
  let local = null;
  const online = askServer(qr, purpose, holderId).then((reply) => (answer = reply));
  if (!holderId) show({ stage: "pending" });
  const localDone = verifyLocally(qr, purpose).then((result) => {
    local = result;
    if (!current()) return;
    performance.mark("certseal-signature-verdict");
    if (!answer && !holderId) {
      show({ stage: "local", ...local });
      performance.mark("certseal-local-verdict");
    }
  });
  if (holderId) {
    await online;
    if (!current()) return;
    if (answer.kind === "online") {
      settleOnline(answer.data, local || previous, holderId);
    } else if (previous.stage === "settled") {
      state.holderMessage = answer.holderMessage || (answer.why === "offline" ? "holder.needsNetwork" : "error.server");
      show(previous);
    } else {
      await localDone;
      if (!current()) return;
      show(await judgeOffline(qr, purpose, { ...local, stage: "settled", source: "offline", why: answer.why, statusSource: "none" }));
    }
    if (current()) afterVerdict(scanned);
    return;
  }
  // VERIFY_AMBER_MS from when the request left (early-verify.js may have sent it before check() ran).
  const amberIn = Math.max(0, VERIFY_AMBER_MS - (performance.now() - verifySentAt));
  await Promise.race([online, new Promise((resolve) => setTimeout(resolve, amberIn))]);
  if (!current()) return;
  if (!(answer && answer.kind === "online")) {
    await localDone;
    if (!current()) return;
  }
  if (!(answer && answer.kind === "online")) {
    const why = answer ? answer.why : "timing_slow";
    const model = await judgeOffline(qr, purpose, { ...local, stage: "settled", source: "offline", why, statusSource: "none" });
    if (!current()) return;
    if (!(answer && answer.kind === "online")) {
      show(model);
      if (!answer) performance.mark("certseal-amber");
    }
  }
  if (answer && answer.kind === "online") settleOnline(answer.data, local, null);
  afterVerdict(scanned);
  if (answer) return;
  // Amber while the server is still being asked: its verdict replaces it if it comes in time.
  const amber = state.model;
  await online;
  if (!current()) return;
  if (answer.kind === "online") {
    settleOnline(answer.data, local, null);
    if (scanned && state.model.verdict !== amber.verdict) feedback(state.model.verdict);
  } else {
    show({ ...amber, why: answer.why });
  }
}

/** After the first settled verdict of a check: feedback, then the background work that must never delay it. */
function afterVerdict(scanned) {
  performance.mark("certseal-verdict");
  if (scanned) feedback(state.model.verdict);
  registerServiceWorker();
  refreshStatusLists();
  cacheDecoder();
}

function feedback(verdict) {
  import("./scanner.js")
    .then((scanner) => scanner.feedback(verdict, state.audio))
    .catch(() => {});
}

/** The offline verdict with the cached trust list and status lists (status.js), else the signature-only one. */
async function judgeOffline(qr, purpose, model) {
  if (!config.trust_anchor) return model;
  try {
    const status = await import("./status.js");
    const judged = await status.judgeOffline(qr, config.trust_anchor, {
      now: Date.now() / 1000,
      purpose,
      reviewRequired: config.review_required !== false,
      hotWorkCategory,
    });
    if (!judged) return model;
    // The signed lists decide; a reason the cached key list alone found still stands.
    const reasons = [...new Set([...judged.reasons, ...(model.verdict === "reject" ? model.reasons : [])])];
    return {
      ...model,
      verdict: reasons.length ? "reject" : "accept",
      reasons,
      cert: { ...certFromVerified(judged.certificate), issuer: { code: judged.certificate.claims.issuer, name: judged.issuerName } },
      statusSource: judged.statusSource,
      statusAsOf: judged.statusAsOf === null ? null : new Date(judged.statusAsOf * 1000).toISOString(),
      listIat: judged.newestIat ?? null,
    };
  } catch {
    return model;
  }
}

let listTimer = null;

/** After a verdict (never before the first), fetch, verify and cache the trust list and status lists. */
function refreshStatusLists() {
  if (!config.trust_anchor) return;
  if (listTimer === null) {
    listTimer = setInterval(refreshStatusLists, LIST_REFRESH_MS);
    window.addEventListener("online", refreshStatusLists);
  }
  if (navigator.onLine === false) return;
  import("./status.js")
    .then((status) => status.refreshLists(config.trust_anchor))
    .catch(() => {})
    .finally(() => performance.mark("certseal-lists-refreshed"));
}

function settleOnline(data, local, holderId) {
  performance.mark("certseal-online-verdict");
  const reasons = data.reasons || [];
  if (holderId) {
    const checked = (data.checks || []).includes("holder");
    state.holderMessage = checked ? (reasons.includes("holder_mismatch") ? "holder.mismatch" : "holder.confirmed") : null;
  }
  show({
    stage: "settled",
    source: "online",
    verdict: data.decision === "accept" ? "accept" : "reject",
    reasons,
    cert: data.certificate ? certFromServer(data.certificate) : local ? local.cert : null,
    keyDate: local ? local.keyDate : null,
    statusSource: "online",
    statusAsOf: Number.isNaN(Date.parse(data.checked_at || "")) ? new Date().toISOString() : new Date(data.checked_at).toISOString(),
  });
}

// --- rendering ---
//
// One verdict, never contradicted: green (tone "accept") only for a final accept; the interim
// panel ("local", "pending") is neutral with its own word; amber ("offline") says what was and
// was not checked. The panels differ by word and icon as well as colour.

const CLOCK_TOLERANCE_MS = 5 * 60 * 1000;
const TIME_REASONS = ["not_yet_valid", "expired", "review_overdue"];
const STATUS_REASONS = ["revoked", "suspended", "superseded"];
const ICONS = { accept: "✓", reject: "✕", offline: "!", checking: "…", error: "?" };

/**
 * The phone's clock against what it knows: online, the answer's checked_at (within 5 minutes);
 * offline, the newest cached key list or signed list (the phone cannot be before it). With a
 * wrong clock offline no date is judged: a time-based reason turns into amber with the warning.
 */
function withClockCheck(m) {
  if (m.stage !== "settled") return m;
  const now = Date.now();
  if (m.source === "online") {
    const checked = Date.parse(m.statusAsOf || "");
    return { ...m, clockWrong: !Number.isNaN(checked) && Math.abs(now - checked) > CLOCK_TOLERANCE_MS };
  }
  const newest = Math.max(Date.parse(m.keyDate || "") || 0, (m.listIat || 0) * 1000);
  if (m.clockWrong || now + CLOCK_TOLERANCE_MS >= newest) return { ...m, clockWrong: Boolean(m.clockWrong) };
  const reasons = (m.reasons || []).filter((code) => !TIME_REASONS.includes(code));
  const verdict = m.verdict === "error" ? "error" : reasons.length ? "reject" : "accept";
  return { ...m, clockWrong: true, reasons, verdict };
}

function show(model) {
  state.model = withClockCheck(model);
  render();
}

function formatKeyDate(iso) {
  const time = Date.parse(iso || "");
  if (Number.isNaN(time)) return tr("value.none");
  return new Date(time + 8 * 3600 * 1000).toISOString().slice(0, 16).replace("T", " ");
}

const pad = (n) => String(n).padStart(2, "0");

/** A list's time in the phone's local time: HH:MM today, else MM-DD HH:MM. */
function formatListTime(iso) {
  const time = new Date(iso);
  const clock = `${pad(time.getHours())}:${pad(time.getMinutes())}`;
  return time.toDateString() === new Date().toDateString() ? clock : `${pad(time.getMonth() + 1)}-${pad(time.getDate())} ${clock}`;
}

/** How long ago ``iso`` was: minutes below two hours, hours below two days, then days. */
function formatAge(iso) {
  const minutes = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 60000));
  if (minutes < 120) return tr("age.minutes", { n: minutes });
  if (minutes < 48 * 60) return tr("age.hours", { n: Math.floor(minutes / 60) });
  return tr("age.days", { n: Math.floor(minutes / 1440) });
}

/** [tone, word, sub] of the panel; the tone is also the panel's class and picks the icon. */
function panelText(m) {
  const params = { why: tr(`why.${m.why || "offline"}`), date: formatKeyDate(m.keyDate) };
  if (m.stage === "pending") return ["checking", tr("verdict.checking"), ""];
  if (m.verdict === "error") return ["error", tr("verdict.error"), tr(m.errorKey || "error.unexpected")];
  if (m.stage === "local") {
    // Interim: never a final verdict's colour or word, whatever the phone found.
    return ["checking", tr("verdict.checking"), tr(m.verdict === "accept" ? "sub.checkingOnline" : "sub.confirmingOnline")];
  }
  if (m.source === "online") {
    return m.verdict === "accept"
      ? ["accept", tr("verdict.accept"), tr("sub.online")]
      : ["reject", tr("verdict.reject"), tr("sub.onlineReject")];
  }
  if (m.statusSource === "list" || m.statusSource === "stale") {
    const list = { time: formatListTime(m.statusAsOf), age: formatAge(m.statusAsOf) };
    if (m.verdict !== "accept") return ["reject", tr("verdict.reject"), tr(m.statusSource === "list" ? "sub.listReject" : "sub.staleReject", list)];
    if (m.statusSource === "list" && !m.clockWrong) return ["accept", tr("verdict.accept"), tr("sub.listAccept", list)];
    return ["offline", tr("verdict.unconfirmed"), tr(m.statusSource === "list" ? "sub.listAccept" : "sub.staleAccept", list)];
  }
  return m.verdict === "accept"
    ? ["offline", tr("verdict.unconfirmed"), tr("sub.offlineAccept", params)]
    : ["reject", tr("verdict.reject"), tr("sub.offlineReject", params)];
}

function detailRow(list, labelKey, value, extraClass = "") {
  const term = document.createElement("dt");
  term.textContent = tr(labelKey);
  const description = document.createElement("dd");
  if (extraClass) description.className = extraClass;
  for (const [i, line] of [].concat(value).entries()) {
    if (i) description.append(document.createElement("br"));
    description.append(line);
  }
  list.append(term, description);
}

/** The certificate's operation item in the page's language ("2.1 熔化焊接与热切割作业"). */
function itemName(op) {
  const name = state.lang === "zh" ? op.zh || op.en : op.en || op.zh;
  return name ? `${op.code} ${name}` : tr("value.unknownOperation", { code: op.code });
}

function renderCard(cert, accepted) {
  $("card").hidden = !cert;
  const photo = $("photo");
  const photoButton = $("photo-button");
  if (!cert || !cert.photoUrl) {
    photo.hidden = true;
    photoButton.hidden = true;
    photoButton.setAttribute("aria-expanded", "false");
    photo.removeAttribute("src");
  }
  if (!cert) return;
  $("holder-name").textContent = cert.holderName;
  $("masked-id").textContent = cert.maskedId;
  if (cert.photoUrl) {
    if (photo.getAttribute("src") !== cert.photoUrl) photo.src = cert.photoUrl;
    photo.alt = tr("field.photo");
    photo.hidden = false;
    photoButton.hidden = false;
    photoButton.title = tr(photoButton.getAttribute("aria-expanded") === "true" ? "photo.shrink" : "photo.enlarge");
  }
  const details = $("details");
  details.replaceChildren();
  const op = cert.operation;
  const names = op.zh || op.en ? [`${op.code} ${op.zh || ""}`.trim(), op.en || ""].filter(Boolean) : [tr("value.unknownOperation", { code: op.code })];
  detailRow(details, "field.operation", names);
  // A plain fact, and only under an accept: never a "covered" line under a red, amber or interim panel.
  if (accepted && op.coversHotWork) detailRow(details, "field.hotWork", tr("value.hotWorkYes"), "fact");
  detailRow(details, "field.validUntil", cert.validUntil);
  detailRow(details, "field.reviewDue", cert.reviewDue || tr("value.none"));
  const issuer = cert.issuer.name ? [cert.issuer.name, cert.issuer.code] : cert.issuer.code;
  detailRow(details, "field.issuer", issuer);
  if (cert.examPoint) detailRow(details, "field.examPoint", cert.examPoint);
  detailRow(details, "field.serial", cert.serial, "mono serial");
}

/** A tel: link for a service phone, or null when it has no digits to dial. */
function phoneLink(number) {
  const dial = String(number).replace(/[^0-9+]/g, "");
  if (!/[0-9]{3}/.test(dial)) return null;
  const link = document.createElement("a");
  link.href = `tel:${dial}`;
  link.textContent = String(number);
  return link;
}

/** CST calendar date (YYYY-MM-DD) of an ISO time, or null. */
function cstDay(iso) {
  const time = Date.parse(iso || "");
  return Number.isNaN(time) ? null : new Date(time + 8 * 3600 * 1000).toISOString().slice(0, 10);
}

/** What to do next, in the site manager's words: [tone, main line, [lines (text or nodes)]], or null. */
function nextSteps(m, tone) {
  if (m.stage !== "settled" || tone === "error") return null;
  const cert = m.cert;
  if (tone === "accept") return ["accept", tr("next.accept", { item: cert ? itemName(cert.operation) : "" }), []];
  if (tone === "reject") {
    const lines = [];
    const since = cstDay(cert && cert.statusSince);
    const statusReason = (m.reasons || []).find((code) => STATUS_REASONS.includes(code));
    if (since && statusReason) lines.push(tr(`next.since.${statusReason}`, { date: since }));
    if (cert && cert.supersededBy && statusReason === "superseded") lines.push(tr("next.replacedBy", { serial: cert.supersededBy }));
    if (cert && cert.issuer.name) lines.push(tr("next.issuer", { name: cert.issuer.name }));
    const link = cert && cert.issuer.servicePhone ? phoneLink(cert.issuer.servicePhone) : null;
    if (link) lines.push([tr("next.call"), link]);
    return ["reject", tr("next.reject"), lines];
  }
  const lines = [tr("next.checked", { what: tr("next.checkedOffline") })];
  if (m.statusSource !== "list") lines.push(tr("next.notChecked", { what: tr("next.notCheckedStatus") }));
  if (m.clockWrong) lines.push(tr("next.notChecked", { what: tr("next.notCheckedTime") }));
  if (m.statusSource === "stale" && m.statusAsOf) lines.push(tr("next.listAge", { age: formatAge(m.statusAsOf) }));
  const advice = config.amber_advice && config.amber_advice[state.lang];
  if (advice) lines.push(tr("next.siteRule", { advice }));
  return ["offline", tr("next.amber"), lines];
}

function renderNext(m, tone) {
  const steps = nextSteps(m, tone);
  $("next").hidden = !steps;
  if (!steps) return;
  const [kind, main, lines] = steps;
  $("next").className = `next ${kind}`;
  $("next-main").textContent = main;
  $("next-lines").replaceChildren(
    ...lines.map((line) => {
      const item = document.createElement("li");
      item.append(...[].concat(line));
      return item;
    }),
  );
}

function render() {
  const m = state.model;
  const result = $("result");
  result.dataset.stage = m.stage;
  if (m.stage === "settled") {
    result.dataset.verdict = m.verdict;
    result.dataset.source = m.source;
    result.dataset.statusSource = m.statusSource || "none";
    if (m.statusAsOf) result.dataset.statusAsOf = m.statusAsOf;
    else delete result.dataset.statusAsOf;
  } else {
    delete result.dataset.verdict;
    delete result.dataset.source;
    delete result.dataset.statusSource;
    delete result.dataset.statusAsOf;
  }
  if (m.clockWrong) result.dataset.clock = "wrong";
  else delete result.dataset.clock;
  const idle = m.stage === "idle";
  $("idle").hidden = !idle;
  $("panel").hidden = idle;
  let tone = null;
  if (!idle) {
    const [panelTone, word, sub] = panelText(m);
    tone = panelTone;
    $("panel").className = `panel ${tone}`;
    $("verdict-icon").textContent = ICONS[tone];
    $("verdict-word").textContent = word;
    $("verdict-sub").textContent = sub;
  }
  result.dataset.tone = tone || "idle";
  $("clock-warning").hidden = !m.clockWrong;
  $("clock-detail").textContent = m.clockWrong ? tr(m.source === "online" ? "clock.wrongDetail" : "clock.wrongOffline") : "";
  renderNext(m, tone);
  renderCard(m.stage === "pending" || idle ? null : m.cert, tone === "accept");
  // Reasons belong to a final verdict: the interim panel lists none.
  const reasons = m.stage === "settled" && m.reasons ? m.reasons : [];
  $("reasons-box").hidden = reasons.length === 0;
  $("reasons").replaceChildren(
    ...reasons.map((code) => {
      const item = document.createElement("li");
      item.dataset.reason = code;
      item.textContent = tr(`reason.${code}`, { purpose: purposeLabel() });
      return item;
    }),
  );
  $("phishing").hidden = !state.phishingOrigin;
  $("phishing-body").textContent = state.phishingOrigin ? tr("phishing.body", { origin: state.phishingOrigin }) : "";
  const holder = $("holder-status");
  holder.hidden = !state.holderMessage;
  holder.textContent = state.holderMessage ? tr(state.holderMessage) : "";
  const confirmed = state.holderMessage === "holder.confirmed";
  holder.className = `holder-status ${confirmed ? (tone === "accept" ? "ok" : "info") : "bad"}`;
  $("holder-form").hidden = !state.qr;
}

/** Tap the photo to see it at full width, tap again to shrink it. */
function initRendering() {
  const button = $("photo-button");
  button.addEventListener("click", () => {
    const expanded = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(expanded));
    button.title = tr(expanded ? "photo.shrink" : "photo.enlarge");
  });
}

function fillPurposes() {
  const select = $("purpose");
  const selected = select.value || "hot_work";
  select.replaceChildren(new Option(tr("purpose.hotWork"), "hot_work"));
  const groups = new Map();
  for (const item of config.catalogue || []) {
    if (!groups.has(item.category)) {
      const group = document.createElement("optgroup");
      group.label = state.lang === "zh" ? item.category_zh : item.category_en;
      groups.set(item.category, group);
      select.append(group);
    }
    groups.get(item.category).append(new Option(`${item.code} ${operationName(item)}`, item.code));
  }
  select.value = selected;
}

function applyLanguage() {
  root.lang = state.lang === "zh" ? "zh-CN" : "en";
  root.dataset.lang = state.lang;
  document.title = tr("app.title");
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = tr(element.dataset.i18n);
  for (const element of document.querySelectorAll("[data-i18n-label]")) element.setAttribute("aria-label", tr(element.dataset.i18nLabel));
  $("lang-toggle").lang = state.lang === "zh" ? "en" : "zh-CN"; // its text is in the other language
  $("holder-id").placeholder = tr("holder.placeholder");
  fillPurposes();
  renderTorch();
  render();
}

// --- holder check ---

function normalizeIdNumber(raw) {
  return raw.normalize("NFKC").trim().toUpperCase();
}

function validIdNumber(number) {
  if (!/^[1-9][0-9]{16}[0-9X]$/.test(number)) return false;
  const sum = ID_WEIGHTS.reduce((total, weight, i) => total + weight * Number(number[i]), 0);
  return ID_CHECK[sum % 11] === number[17];
}

// --- scanner ---

function unofficialOrigin(text) {
  const trimmed = text.trim();
  if (!/^https?:\/\//i.test(trimmed)) return null;
  try {
    const { origin } = new URL(trimmed);
    return (config.official_origins || []).includes(origin) ? null : origin;
  } catch {
    return trimmed.slice(0, 80);
  }
}

function renderTorch() {
  const session = state.scanner;
  const button = $("torch");
  button.hidden = !(session && session.camera && session.camera.hasTorch);
  button.textContent = tr(session && session.torch ? "scan.torchOff" : "scan.torchOn");
  button.setAttribute("aria-pressed", String(Boolean(session && session.torch)));
}

async function openScanner() {
  if (state.scanner) return;
  if (!state.audio && (window.AudioContext || window.webkitAudioContext)) {
    state.audio = new (window.AudioContext || window.webkitAudioContext)();
  }
  // #scanner data-state: starting | loading (decoder download, data-progress = percent) | scanning | failed
  const session = { cancelled: false, camera: null, torch: false, decoder: null };
  state.scanner = session;
  const overlay = $("scanner");
  const status = $("scanner-status");
  overlay.hidden = false;
  overlay.dataset.state = "starting";
  delete overlay.dataset.progress;
  status.textContent = tr("scan.loading");
  renderTorch();
  const showProgress = () => {
    if (session.cancelled || !session.camera || !session.decoder) return;
    const percent = Math.min(99, Math.floor((100 * session.decoder.loaded) / session.decoder.total));
    overlay.dataset.state = "loading";
    overlay.dataset.progress = String(percent);
    status.textContent = tr("scanner_loading", { percent });
  };
  try {
    const scanner = await import("./scanner.js");
    // The decoder loads (or BarcodeDetector starts) while the camera opens.
    const detector = scanner.prepareDetector($("scanner-canvas"), (progress) => {
      session.decoder = progress;
      showProgress();
    });
    detector.then(() => (session.decoder = null)).catch(() => {});
    session.camera = await scanner.openCamera($("scanner-video"));
    if (session.cancelled) {
      session.camera.stop();
      return;
    }
    renderTorch();
    showProgress();
    await detector;
    if (session.cancelled) return;
    overlay.dataset.state = "scanning";
    delete overlay.dataset.progress;
    status.textContent = tr("scan.hint");
    const text = await scanner.scanUntilFound($("scanner-video"), detector, () => session.cancelled);
    if (text === null) return;
    closeScanner();
    handleScanned(text);
  } catch (error) {
    // Any failure: the camera goes off (every track) and the page says how to scan without it.
    if (session.camera) session.camera.stop();
    session.camera = null;
    if (!session.cancelled) {
      overlay.dataset.state = "failed";
      delete overlay.dataset.progress;
      status.textContent = tr("scanner_failure", { cause: tr(scannerFailureCause(error)) });
      renderTorch();
    }
  }
}

/** The i18n key of a scanner failure's cause, in plain words (never the exception's name). */
function scannerFailureCause(error) {
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError") return "scanner_noPermission";
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "NotSupportedError") return "scanner_noCamera";
  if (name === "NotReadableError" || name === "AbortError") return "scanner_cameraBusy";
  if (name === "DecoderUnavailable") return "scanner_decoderFailed";
  return "scanner_failed";
}

function closeScanner() {
  const session = state.scanner;
  if (session) {
    session.cancelled = true;
    if (session.camera) session.camera.stop();
  }
  state.scanner = null;
  $("scanner").hidden = true;
}

function handleScanned(text) {
  state.phishingOrigin = unofficialOrigin(text);
  $("holder-id").value = "";
  try {
    const url = new URL(text.trim());
    const official = !state.phishingOrigin && url.pathname === "/c1" && url.hash.length > 1;
    history.replaceState(null, "", official ? `/c1${url.hash}` : "/c1");
  } catch {
    history.replaceState(null, "", "/c1");
  }
  window.scrollTo(0, 0);
  check(text, { scanned: true });
}

// --- start ---

let serviceWorkerRequested = false;

function registerServiceWorker() {
  if (serviceWorkerRequested || !("serviceWorker" in navigator)) return;
  serviceWorkerRequested = true;
  navigator.serviceWorker.register("/sw.js", { scope: "/c1" }).catch(() => {});
}

let decoderRequested = false;

/**
 * Once per load, after a verdict: ask the service worker to keep the scanner's decoder (sw.js), so a first
 * scan works offline. It downloads only what its cache lacks; a failure is retried at the next load or
 * when the phone comes back online. Marks certseal-decoder-cached or certseal-decoder-failed.
 */
function cacheDecoder() {
  if (decoderRequested || !("serviceWorker" in navigator)) return;
  decoderRequested = true;
  navigator.serviceWorker.ready
    .then(
      (registration) =>
        new Promise((resolve, reject) => {
          const channel = new MessageChannel();
          channel.port1.onmessage = (event) => (event.data && event.data.ok ? resolve() : reject(new Error("decoder not cached")));
          registration.active.postMessage({ type: "cache-decoder" }, [channel.port2]);
        }),
    )
    .then(
      () => performance.mark("certseal-decoder-cached"),
      () => {
        performance.mark("certseal-decoder-failed");
        decoderRequested = false;
        window.addEventListener("online", cacheDecoder, { once: true });
      },
    );
}

function pageQrText() {
  // The query is dropped: apps such as WeChat append their own parameters when they open a link.
  return `${location.origin}${location.pathname}${location.hash}`;
}

function start() {
  $("lang-toggle").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    storage.set(LANG_STORE, state.lang);
    applyLanguage();
  });
  $("purpose").addEventListener("change", () => state.qr && check(state.qr));
  $("holder-x").addEventListener("click", () => {
    const input = $("holder-id");
    input.value = (input.value + "X").slice(0, 18);
    input.focus();
  });
  $("holder-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const number = normalizeIdNumber($("holder-id").value);
    if (!state.qr) return;
    if (!validIdNumber(number)) {
      state.holderMessage = "holder.invalid";
      render();
      return;
    }
    $("holder-id").value = "";
    window.scrollTo(0, 0);
    check(state.qr, { holderId: number });
  });
  $("scan-next").addEventListener("click", openScanner);
  $("scanner-close").addEventListener("click", closeScanner);
  $("torch").addEventListener("click", async () => {
    const session = state.scanner;
    if (!session || !session.camera) return;
    try {
      await session.camera.setTorch(!session.torch);
      session.torch = !session.torch;
    } catch {
      session.camera.hasTorch = false;
    }
    renderTorch();
  });
  window.addEventListener("hashchange", () => {
    state.phishingOrigin = null;
    check(pageQrText());
  });
  initRendering();
  applyLanguage();
  root.dataset.app = "started"; // the inline boot guard shows "页面加载失败" unless this is set by the load event
  if (location.hash.length > 1) {
    check(pageQrText());
  } else {
    setTimeout(() => {
      registerServiceWorker();
      cacheDecoder();
    }, 1000);
  }
}

start();

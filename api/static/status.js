// Offline status for the page (issue 11): the signed trust list and the IETF Token Status Lists
// (docs/credential-format.md section 11 and the trust list's CDDL), verified with WebCrypto against
// the trust-anchor key pinned in the page's configuration, never against a key that came with a
// response. Loaded only after the first verdict (to fetch) or offline (to judge), so the first
// verdict costs no byte of it. Lists live in Cache Storage ("certseal-lists") as the server sent
// them and are verified again each time they are used.

import { CborMap, CborTag, VerifyError, decodeStrict, malformed } from "./cbor.js";
import { envelopeFromQrText } from "./digits.js";
import { CLOCK_SKEW_SECONDS, checkSignature, isHighS, offlineReasons, sigStructure, toHex, verifyEnvelope } from "./verify.js";

const ES256 = -7;
const TRUST_TYP = "application/vnd.certseal.trust-list+cbor";
const STATUS_TYP = "application/statuslist+cwt";
const MAX_TRUST_BYTES = 1 << 20;
const MAX_TOKEN_BYTES = 64 * 1024;
const MAX_LISTS = 2000;
export const LIST_SIZE = 131072; // entries of 2 bits per list: 32,768 bytes
export const LIST_BYTES = LIST_SIZE / 4;
const STATUS_REASONS = [null, "revoked", "suspended", "superseded"];
// The order of reasons: the certificate's own checks as the server lists them, the key rules, status last.
const REASON_ORDER = [
  "not_yet_valid",
  "expired",
  "key_revoked",
  "issuer_not_authorized",
  "key_not_valid_at_issue",
  "review_overdue",
  "operation_not_covered",
  ...STATUS_REASONS.slice(1),
];
export const CACHE = "certseal-lists";
const TRUST_URL = "/v1/trust-list";
const LISTS_URL = "/v1/status-lists";
const FETCHED = "X-Certseal-Fetched"; // ms, when the server last confirmed the stored copy
const MAX_AGE = "X-Certseal-Max-Age"; // s, the ttl (or Cache-Control max-age) to refetch after
const ISSUED = "X-Certseal-Iat"; // s, iat of a stored status list (a refetch never goes back in time)

const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const hexBytes = (hex) => Uint8Array.from(hex.match(/../g) || [], (pair) => parseInt(pair, 16));
const isUint = (value) => typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 2 ** 32 - 1;
const isBytes = (value, size) => value instanceof Uint8Array && (size === undefined || value.length === size);
const isText = (value) => typeof value === "string" && value.length > 0;
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  parts.reduce((at, part) => (out.set(part, at), at + part.length), 0);
  return out;
};
// SubjectPublicKeyInfo DER prefixes: the kid is SHA-256(SPKI)[0:8] (credential-format section 4).
const SPKI = {
  "P-256": hexBytes("3059301306072a8648ce3d020106082a8648ce3d03010703420004"),
  Ed25519: hexBytes("302a300506032b6570032100"),
};

/** A map with exactly ``required`` text keys plus any of ``optional``, else malformed. */
function fields(map, required, optional = []) {
  if (!(map instanceof CborMap)) throw malformed("expected a map");
  const keys = map.keys;
  if (!required.every((key) => keys.includes(key)) || !keys.every((key) => required.includes(key) || optional.includes(key))) {
    throw malformed(`expected the fields ${required.join(", ")}`);
  }
  return (key) => map.get(key);
}

// --- COSE_Sign1 with {1: -7, 4: kid, 16: typ} ---

function parseSigned(bytes, maxBytes, typ) {
  const value = decodeStrict(bytes, maxBytes);
  if (!(value instanceof CborTag) || value.tag !== 18 || !Array.isArray(value.value) || value.value.length !== 4) {
    throw malformed("not a COSE_Sign1 tagged 18");
  }
  const [protectedBytes, unprotected, payload, signature] = value.value;
  if (!isBytes(protectedBytes) || !isBytes(payload) || !isBytes(signature)) throw malformed("COSE_Sign1 element types");
  if (!(unprotected instanceof CborMap) || unprotected.entries.length) throw malformed("unprotected header is not empty");
  const header = decodeStrict(protectedBytes);
  if (!(header instanceof CborMap) || header.get(16) !== typ) throw new VerifyError("wrong_type", `typ is not ${typ}`);
  if (header.keys.join() !== "1,4,16") throw malformed("protected header must be exactly alg, kid and typ");
  if (header.get(1) !== ES256) throw new VerifyError("unsupported_algorithm", "ES256 only");
  const kid = header.get(4);
  if (!isBytes(kid, 8)) throw new VerifyError("unknown_key", "no 8-byte kid");
  return { kid: toHex(kid), protectedBytes, payload, signature };
}

async function checkEs256(message, jwk) {
  await checkSignature(ES256, { jwk }, message.signature, sigStructure(message.protectedBytes, message.payload));
  if (isHighS(message.signature)) throw malformed("ES256 signature with a high s");
}

// --- trust list ---

async function readKey(map) {
  const get = fields(map, ["kid", "key", "use", "state", "not_after", "not_before", "verify_until"], ["compromised_at"]);
  const cose = get("key");
  if (!(cose instanceof CborMap)) throw malformed("key is not a COSE_Key");
  const [kty, alg, crv, x, y] = [1, 3, -1, -2, -3].map((label) => cose.get(label));
  let jwk;
  if (kty === 2 && alg === ES256 && crv === 1 && isBytes(x, 32) && isBytes(y, 32) && cose.entries.length === 5) {
    jwk = { kty: "EC", crv: "P-256", x: b64url(x), y: b64url(y) };
  } else if (kty === 1 && alg === -8 && crv === 6 && isBytes(x, 32) && cose.entries.length === 4 && get("use") === "certificate") {
    jwk = { kty: "OKP", crv: "Ed25519", x: b64url(x) };
  } else {
    throw malformed("COSE_Key is neither EC2 P-256 nor OKP Ed25519");
  }
  const kid = get("kid");
  const spki = concat(SPKI[jwk.crv], x, jwk.crv === "P-256" ? y : new Uint8Array());
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", spki));
  if (!isBytes(kid, 8) || toHex(kid) !== toHex(digest.subarray(0, 8))) throw malformed("kid is not SHA-256(SPKI)[0:8]");
  const state = get("state");
  const compromisedAt = get("compromised_at");
  const orNull = (value) => value === null || isUint(value);
  const checks = [
    ["certificate", "status_list"].includes(get("use")),
    ["active", "retired", "compromised"].includes(state),
    isUint(get("not_before")) && orNull(get("not_after")) && orNull(get("verify_until")),
    state === "compromised" ? isUint(compromisedAt) : compromisedAt === undefined,
  ];
  if (!checks.every(Boolean)) throw malformed("key entry out of range");
  return {
    kid: toHex(kid),
    use: get("use"),
    jwk,
    notBefore: get("not_before"),
    notAfter: get("not_after"),
    verifyUntil: get("verify_until"),
    state,
    compromisedAt: compromisedAt ?? null,
  };
}

async function readIssuer(map) {
  const get = fields(map, ["code", "name", "keys", "region", "operations", "status_base"]);
  const [code, name, region, operations, statusBase, keys] = ["code", "name", "region", "operations", "status_base", "keys"].map(get);
  if (!isText(code) || typeof name !== "string" || typeof region !== "string" || !Array.isArray(operations) || !operations.every(isText)) {
    throw malformed("issuer fields");
  }
  if (!isText(statusBase) || statusBase.endsWith("/") || !Array.isArray(keys)) throw malformed("issuer status_base or keys");
  return { code, name, region, operations, statusBase, keys: await Promise.all(keys.map(readKey)) };
}

/**
 * Verify a signed trust list against the pinned ``anchor`` ({kid, jwk}) and read it:
 * {seq, iat, exp, issuers: [{code, name, region, operations, statusBase, keys}]}. Expiry is the caller's to judge.
 */
export async function verifyTrustList(bytes, anchor) {
  const message = parseSigned(bytes, MAX_TRUST_BYTES, TRUST_TYP);
  if (message.kid !== anchor.kid) throw new VerifyError("unknown_key", "not signed by the pinned trust anchor");
  await checkEs256(message, anchor.jwk);
  const get = fields(decodeStrict(message.payload, MAX_TRUST_BYTES), ["exp", "iat", "seq", "issuers"]);
  const [seq, iat, exp, issuers] = ["seq", "iat", "exp", "issuers"].map(get);
  if (!isUint(seq) || seq < 1 || !isUint(iat) || !isUint(exp) || iat >= exp || !Array.isArray(issuers)) throw malformed("trust list claims");
  return { seq, iat, exp, issuers: await Promise.all(issuers.map(readIssuer)) };
}

// --- status list tokens ---

/** Inflate a ZLIB stream into exactly LIST_BYTES bytes, never more (a bomb stops at the bound). */
export async function inflate(lst) {
  if (typeof DecompressionStream !== "function") throw new VerifyError("status_unknown", "no DecompressionStream", { browserLimit: true });
  const stream = new DecompressionStream("deflate");
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  const out = new Uint8Array(LIST_BYTES);
  let size = 0;
  let tooLarge = false;
  const feed = (async () => {
    for (let at = 0; at < lst.length; at += 1024) await writer.write(lst.subarray(at, at + 1024));
    await writer.close();
  })();
  feed.catch(() => {});
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (size + value.length > LIST_BYTES) {
        tooLarge = true;
        reader.cancel().catch(() => {});
        break;
      }
      out.set(value, size);
      size += value.length;
    }
    await feed;
  } catch {
    if (!tooLarge) throw new VerifyError("status_list_malformed", "damaged or truncated zlib stream");
  }
  if (tooLarge) throw new VerifyError("status_list_too_large", `lst inflates beyond ${LIST_BYTES} bytes`);
  if (size !== LIST_BYTES) throw new VerifyError("status_list_malformed", `${size} bytes, not ${LIST_BYTES}`);
  return out;
}

/** The issuer key that signed a status list: one of its status_list keys, not compromised, in its window. */
function statusListKey(issuer, kid, iat, now) {
  return issuer.keys.find(
    (key) =>
      key.use === "status_list" &&
      key.kid === kid &&
      key.jwk.kty === "EC" &&
      key.state !== "compromised" &&
      (key.verifyUntil === null || now <= key.verifyUntil) &&
      iat >= key.notBefore - CLOCK_SKEW_SECONDS &&
      (key.notAfter === null || iat <= key.notAfter + CLOCK_SKEW_SECONDS),
  );
}

/**
 * Verify a Status List Token for ``uri`` signed by one of ``issuer``'s status-list keys and inflate it:
 * {uri, iat, exp, ttl, list} (list: the 32,768-byte array). Expiry is the caller's to judge.
 */
export async function verifyStatusList(bytes, issuer, uri, now) {
  const message = parseSigned(bytes, MAX_TOKEN_BYTES, STATUS_TYP);
  const claims = decodeStrict(message.payload, MAX_TOKEN_BYTES);
  if (!(claims instanceof CborMap) || claims.keys.join() !== "2,4,6,65533,65534") throw malformed("claims must be exactly sub, exp, iat, status_list and ttl");
  const [sub, exp, iat, statusList, ttl] = [2, 4, 6, 65533, 65534].map((label) => claims.get(label));
  const key = isUint(iat) ? statusListKey(issuer, message.kid, iat, now) : null;
  if (!key) throw new VerifyError("unknown_key", "not a status-list key of the issuer");
  await checkEs256(message, key.jwk);
  if (!isText(sub) || !isUint(iat) || !isUint(exp) || iat >= exp || !isUint(ttl) || ttl === 0) throw malformed("status list claims");
  if (!(statusList instanceof CborMap) || statusList.keys.join() !== "lst,bits" || statusList.get("bits") !== 2 || !isBytes(statusList.get("lst"))) {
    throw new VerifyError("status_list_malformed", "status_list must be exactly {bits: 2, lst}");
  }
  if (sub !== uri) throw new VerifyError("status_list_subject_mismatch", `sub ${sub} is not ${uri}`);
  return { uri, iat, exp, ttl, list: await inflate(statusList.get("lst")) };
}

/** The 2-bit status at ``idx``, least significant bits first (the draft's order). */
export const statusAt = (list, idx) => (list[idx >> 2] >> (2 * (idx & 3))) & 3;

/** The list URI and entry of a status index: ``<status_base>/<index >> 17>`` and ``index & 0x1FFFF``. */
export const listEntry = (statusBase, statusIndex) => ({
  uri: `${statusBase}/${Math.floor(statusIndex / LIST_SIZE)}`,
  idx: statusIndex % LIST_SIZE,
});

// --- cache ---

async function openCache() {
  return "caches" in self ? caches.open(CACHE) : null;
}

async function storedBytes(cache, url) {
  const response = cache && (await cache.match(url));
  return response ? new Uint8Array(await response.arrayBuffer()) : null;
}

/** The stored, verified trust list, or null. */
async function storedTrustList(cache, anchor) {
  const bytes = await storedBytes(cache, TRUST_URL);
  return bytes ? verifyTrustList(bytes, anchor).catch(() => null) : null;
}

const maxAgeOf = (response, fallback) => Number((/max-age=(\d+)/.exec(response.headers.get("Cache-Control") || "") || [])[1] || fallback);

/** Fetch ``url`` unless the stored copy is within its max age; null when the stored copy stands (304 or fresh). */
async function fetchDue(cache, url, maxBytes) {
  const stored = await cache.match(url);
  const headers = {};
  if (stored) {
    const fetched = Number(stored.headers.get(FETCHED) || 0);
    if (Date.now() < fetched + Number(stored.headers.get(MAX_AGE) || 0) * 1000) return null;
    if (stored.headers.get("ETag")) headers["If-None-Match"] = stored.headers.get("ETag");
  }
  const response = await fetch(url, { headers, cache: "no-store", credentials: "omit" });
  if (response.status === 304 && stored) {
    await store(cache, url, await stored.arrayBuffer(), stored.headers, {});
    return null;
  }
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes.length > maxBytes) throw new Error(`${url}: too large`);
  return { bytes, response };
}

/** Store ``body`` for ``url`` with the ETag and metadata of ``from`` (headers) overridden by ``extra``. */
function store(cache, url, body, from, extra) {
  const headers = { [MAX_AGE]: from.get(MAX_AGE) || "300", ETag: from.get("ETag") || "", ...extra, [FETCHED]: String(Date.now()) };
  if (from.get(ISSUED) && !extra[ISSUED]) headers[ISSUED] = from.get(ISSUED);
  return cache.put(url, new Response(body, { headers }));
}

async function sync(anchor) {
  const cache = await openCache();
  if (!cache) return;
  const now = Date.now() / 1000;
  let trust = await storedTrustList(cache, anchor);
  const fresh = await fetchDue(cache, TRUST_URL, MAX_TRUST_BYTES);
  if (fresh) {
    const list = await verifyTrustList(fresh.bytes, anchor);
    if (!trust || list.seq >= trust.seq) {
      trust = list;
      await store(cache, TRUST_URL, fresh.bytes, fresh.response.headers, { [MAX_AGE]: String(maxAgeOf(fresh.response, 300)) });
    }
  }
  if (!trust) return;
  const index = await fetchDue(cache, LISTS_URL, MAX_TRUST_BYTES);
  if (index) {
    const uris = JSON.parse(new TextDecoder().decode(index.bytes)).status_lists;
    if (!Array.isArray(uris) || !uris.every((uri) => typeof uri === "string")) throw new Error("status list aggregation");
    await store(cache, LISTS_URL, index.bytes, index.response.headers, { [MAX_AGE]: String(maxAgeOf(index.response, 300)) });
  }
  const uris = JSON.parse(new TextDecoder().decode(await storedBytes(cache, LISTS_URL))).status_lists.slice(0, MAX_LISTS);
  const wanted = new Set([TRUST_URL, LISTS_URL].map((path) => new URL(path, location.href).href));
  const pending = uris.filter((uri) => {
    const issuer = trust.issuers.find((item) => uri.startsWith(`${item.statusBase}/`) && /^\d+$/.test(uri.slice(item.statusBase.length + 1)));
    if (issuer) wanted.add(new URL(uri, location.href).href);
    return issuer;
  });
  const one = async (uri) => {
    const issuer = trust.issuers.find((item) => uri.startsWith(`${item.statusBase}/`));
    const got = await fetchDue(cache, uri, MAX_TOKEN_BYTES);
    if (!got) return;
    const token = await verifyStatusList(got.bytes, issuer, uri, now);
    const stored = await cache.match(uri);
    if (stored && Number(stored.headers.get(ISSUED) || 0) > token.iat) return;
    await store(cache, uri, got.bytes, got.response.headers, { [MAX_AGE]: String(token.ttl), [ISSUED]: String(token.iat) });
  };
  for (let at = 0; at < pending.length; at += 4) {
    await Promise.all(pending.slice(at, at + 4).map((uri) => one(uri).catch(() => {})));
  }
  for (const request of await cache.keys()) if (!wanted.has(request.url)) await cache.delete(request);
}

let syncing = null;

/** Fetch, verify and store the trust list and every status list that is due; one run at a time. */
export function refreshLists(anchor) {
  if (!syncing) syncing = sync(anchor).finally(() => (syncing = null));
  return syncing;
}

// --- the offline verdict ---

/**
 * Judge ``qr`` with the stored trust list and status lists (``now`` in Unix seconds).
 * Resolves to null when they cannot judge it (no trust list, key not in it, this browser cannot
 * verify the signature): the caller keeps the signature-only verdict. Otherwise
 * {verdict, reasons, certificate, issuerName, statusSource: "list" | "stale" | "none", statusAsOf (s) | null,
 * newestIat (s): the iat of the newest stored list used, which a phone clock cannot honestly be before}.
 */
export async function judgeOffline(qr, anchor, { now, purpose, reviewRequired, hotWorkCategory }) {
  const cache = await openCache();
  const trust = await storedTrustList(cache, anchor);
  if (!trust) return null;
  const certificateKey = (kid) => {
    for (const issuer of trust.issuers) {
      const key = issuer.keys.find((item) => item.kid === kid && item.use === "certificate");
      if (key) return { ...key, issuer: issuer.code, state: key.state === "compromised" ? "revoked" : "active" };
    }
    return undefined;
  };
  let certificate;
  try {
    certificate = await verifyEnvelope(envelopeFromQrText(qr), certificateKey);
  } catch {
    return null; // the signature-only verdict already says why (or this browser cannot check this key)
  }
  const { claims, key } = certificate;
  const reasons = offlineReasons(certificate, { now, purpose, reviewRequired, hotWorkCategory });
  const issuer = trust.issuers.find((item) => item.code === claims.issuer);
  const operation = `${claims.operation.category}.${claims.operation.item}`;
  if (!issuer || !issuer.operations.includes(operation)) reasons.push("issuer_not_authorized");
  if (claims.issuedAt < key.notBefore - CLOCK_SKEW_SECONDS || (key.notAfter !== null && claims.issuedAt > key.notAfter + CLOCK_SKEW_SECONDS)) {
    reasons.push("key_not_valid_at_issue");
  }
  if (key.verifyUntil !== null && now >= key.verifyUntil && !reasons.includes("expired")) reasons.push("expired"); // §12.4, as crypto.verify_offline
  let statusSource = "none";
  let token = null;
  let asOf = null;
  if (issuer && claims.statusIndex !== null) {
    const { uri, idx } = listEntry(issuer.statusBase, claims.statusIndex);
    const bytes = await storedBytes(cache, uri);
    token = bytes && (await verifyStatusList(bytes, issuer, uri, now).catch(() => null));
    if (token) {
      // A list is current before its exp, and only while the trust list that vouches for its key is;
      // the status is as old as the older of the two then. A stale list's revocation still rejects.
      const trustCurrent = now < trust.exp;
      statusSource = now < token.exp && trustCurrent ? "list" : "stale";
      asOf = trustCurrent ? token.iat : Math.min(token.iat, trust.iat);
      const reason = STATUS_REASONS[statusAt(token.list, idx)];
      if (reason) reasons.push(reason);
    }
  }
  const unique = [...new Set(reasons)].sort((a, b) => REASON_ORDER.indexOf(a) - REASON_ORDER.indexOf(b));
  return {
    verdict: unique.length ? "reject" : "accept",
    reasons: unique,
    certificate,
    issuerName: issuer ? issuer.name : null,
    statusSource,
    statusAsOf: asOf,
    newestIat: Math.max(trust.iat, token ? token.iat : 0),
  };
}

// Offline verification in the browser: the twin of crypto/envelope.py, crypto/cose.py and
// crypto/policy.py. Same strict profile, same order of checks, same reason codes:
//   format (digits, envelope shape, protected header) -> kid -> alg -> key -> signature ->
//   low-S (an ES256 signature that verifies but has s > n/2 is malformed) ->
//   claims (strict CBOR, exact profile) -> validity period (5 minutes of clock skew).
// Signatures are checked with WebCrypto: ES256 always, EdDSA where the browser has Ed25519.

import { CborFloat, CborMap, VerifyError, decodeStrict, malformed } from "./cbor.js";
import { codePoints, envelopeFromQrText } from "./digits.js";
import { NAME_CHAR_RANGES } from "./name-chars.js";

export { VerifyError } from "./cbor.js";

export const CLOCK_SKEW_SECONDS = 300;
const CST_OFFSET_SECONDS = 8 * 3600;
const ES256 = -7;
const EDDSA = -8;
const PS256 = -37;
const ECDSA = new Map([
  [ES256, { hash: "SHA-256", curve: "P-256", size: 32 }],
  [-35, { hash: "SHA-384", curve: "P-384", size: 48 }],
  [-36, { hash: "SHA-512", curve: "P-521", size: 66 }],
]);
const KNOWN_ALGS = new Set([...ECDSA.keys(), EDDSA, PS256]);
// n / 2 of P-256: an ES256 signature's s above it is the high-S twin of a valid signature (crypto._algorithms).
const P256_HALF_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n / 2n;

const CLAIM_ORDER = [1, 4, 5, 6, 7, -65537];
const CERT_REQUIRED = [1, 2, 3];
const MAX_UINT32 = 2 ** 32 - 1;
const ISSUER_PATTERN = /^[A-Z0-9][A-Z0-9-]{0,15}$/;
const MASKED_ID_PATTERN = /^[0-9]{7}[0-9X]$/;
// The holder-name rule (crypto.envelope.holder_name_problem): words of letters, marks and the middle dots
// U+00B7 and U+30FB from the pinned table of name-chars.js, single spaces between them, NFC.
const hex = (code) => code.toString(16);
const NAME_CHAR = `[${NAME_CHAR_RANGES.map(([a, b]) => (a === b ? `\\u{${hex(a)}}` : `\\u{${hex(a)}}-\\u{${hex(b)}}`)).join("")}\\u{b7}\\u{30fb}]`;
const NAME_PATTERN = new RegExp(`^${NAME_CHAR}+(?: ${NAME_CHAR}+)*$`, "u");
const NAME_CHAR_PATTERN = new RegExp(`^(?:${NAME_CHAR}| )$`, "u");
const SIGNATURE1_PREFIX = [0x84, 0x6a, ...new TextEncoder().encode("Signature1")];

export const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function bstrHead(length) {
  if (length < 24) return [0x40 | length];
  if (length < 0x100) return [0x58, length];
  if (length < 0x10000) return [0x59, length >> 8, length & 0xff];
  return [0x5a, length >>> 24, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff];
}

/** The COSE Sig_structure ["Signature1", protected, h'', payload] (RFC 9052 section 4.4). */
export function sigStructure(protectedBytes, payload) {
  const head = [...SIGNATURE1_PREFIX, ...bstrHead(protectedBytes.length)];
  const middle = [0x40, ...bstrHead(payload.length)];
  const out = new Uint8Array(head.length + protectedBytes.length + middle.length + payload.length);
  out.set(head, 0);
  out.set(protectedBytes, head.length);
  out.set(middle, head.length + protectedBytes.length);
  out.set(payload, head.length + protectedBytes.length + middle.length);
  return out;
}

// --- envelope: 18([bstr protected, {}, bstr payload, bstr signature]) and nothing else ---

function readBstr(data, pos) {
  if (pos >= data.length) throw malformed("truncated COSE_Sign1");
  const head = data[pos];
  const info = head & 0x1f;
  if (head >> 5 !== 2 || info > 25) throw malformed("expected a byte string of at most 65535 bytes");
  let length;
  if (info < 24) {
    length = info;
    pos += 1;
  } else if (info === 24) {
    if (pos + 1 >= data.length) throw malformed("truncated COSE_Sign1");
    length = data[pos + 1];
    pos += 2;
    if (length < 24) throw malformed("byte string length not in shortest form");
  } else {
    if (pos + 2 >= data.length) throw malformed("truncated COSE_Sign1");
    length = (data[pos + 1] << 8) | data[pos + 2];
    pos += 3;
    if (length < 0x100) throw malformed("byte string length not in shortest form");
  }
  if (pos + length > data.length) throw malformed("truncated byte string");
  return [data.subarray(pos, pos + length), pos + length];
}

/** Split an envelope into its parts, checking the only shape the profile allows. */
export function parseEnvelope(data) {
  if (data.length > 4096 || data[0] !== 0xd2 || data[1] !== 0x84) {
    throw malformed("not a tagged COSE_Sign1 of at most 4096 bytes");
  }
  const [protectedBytes, afterProtected] = readBstr(data, 2);
  if (afterProtected >= data.length) throw malformed("truncated COSE_Sign1");
  if (data[afterProtected] !== 0xa0) throw malformed("profile requires an empty unprotected header");
  const [payload, afterPayload] = readBstr(data, afterProtected + 1);
  const [signature, end] = readBstr(data, afterPayload);
  if (end !== data.length) throw malformed("trailing bytes after COSE_Sign1");
  const header = decodeStrict(protectedBytes);
  if (!(header instanceof CborMap) || header.entries.length !== 2 || header.entries[0][0] !== 1 || header.entries[1][0] !== 4) {
    throw malformed("profile requires exactly alg and kid, both protected");
  }
  return { protectedBytes, alg: header.entries[0][1], kid: header.entries[1][1], payload, signature };
}

// --- signature ---

const b64urlBytes = (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const importedKeys = new Map();

async function importKey(jwk, algorithm) {
  const id = JSON.stringify([jwk, algorithm]);
  if (!importedKeys.has(id)) {
    // Only the key material: WebCrypto refuses a JWK whose "alg" names another hash or scheme.
    const material = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, n: jwk.n, e: jwk.e };
    Object.keys(material).forEach((name) => material[name] === undefined && delete material[name]);
    importedKeys.set(id, crypto.subtle.importKey("jwk", material, algorithm, false, ["verify"]));
  }
  return importedKeys.get(id);
}

const badSignature = (detail) => new VerifyError("bad_signature", detail);

/** Check ``signature`` over ``message`` with ``key.jwk`` under COSE ``alg``; throws a VerifyError (bad_signature). */
export async function checkSignature(alg, key, signature, message) {
  const jwk = key.jwk || {};
  let valid = false;
  if (ECDSA.has(alg)) {
    const { hash, curve, size } = ECDSA.get(alg);
    // The key must be on the algorithm's own curve (crypto._algorithms._Ecdsa.accepts); r || s as WebCrypto takes it.
    if (jwk.kty !== "EC" || jwk.crv !== curve || signature.length !== 2 * size) throw badSignature("wrong key type or signature length");
    const cryptoKey = await importKey(jwk, { name: "ECDSA", namedCurve: curve }).catch(() => null);
    valid = !!cryptoKey && (await crypto.subtle.verify({ name: "ECDSA", hash }, cryptoKey, signature, message));
  } else if (alg === EDDSA) {
    if (jwk.kty !== "OKP" || (jwk.crv !== "Ed25519" && jwk.crv !== "Ed448")) throw badSignature("key is not an Edwards-curve key");
    let cryptoKey;
    try {
      cryptoKey = await importKey(jwk, { name: jwk.crv });
    } catch {
      throw new VerifyError("unsupported_algorithm", `this browser cannot verify ${jwk.crv}`, { browserLimit: true });
    }
    valid = await crypto.subtle.verify({ name: jwk.crv }, cryptoKey, signature, message);
  } else {
    const bits = jwk.kty === "RSA" && jwk.n ? b64urlBytes(jwk.n).length * 8 : 0;
    if (bits < 2048) throw badSignature("PS256: key is not an RSA key of at least 2048 bits");
    const cryptoKey = await importKey(jwk, { name: "RSA-PSS", hash: "SHA-256" }).catch(() => null);
    valid = !!cryptoKey && (await crypto.subtle.verify({ name: "RSA-PSS", saltLength: 32 }, cryptoKey, signature, message));
  }
  if (!valid) throw badSignature("signature does not verify");
}

/** Whether a verified 64-byte ES256 signature r || s has s > n/2: the profile allows only the low-S form. */
export const isHighS = (signature) => BigInt(`0x${toHex(signature.subarray(32))}`) > P256_HALF_ORDER;

// --- claims ---

const isUint = (value, maximum) => typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= maximum;

/** Why ``name`` breaks the holder-name rule, or null: the same messages as crypto.envelope.holder_name_problem. */
export function nameProblem(name) {
  const length = codePoints(name);
  if (length < 1 || length > 32) return "holder name must have 1-32 characters";
  if (!NAME_PATTERN.test(name)) {
    for (const char of name) {
      if (!NAME_CHAR_PATTERN.test(char)) {
        const code = char.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
        return `holder name: U+${code} is not allowed (only letters, marks, the middle dots U+00B7 and U+30FB, and spaces)`;
      }
    }
    return "holder name: a space must stand alone between two words (none leading, trailing or doubled)";
  }
  if (name.normalize("NFC") !== name) return "holder name is not in Unicode NFC";
  return null;
}

const validName = (name) => nameProblem(name) === null;

/** Read the CWT claims map, which must follow the profile exactly (crypto.envelope.decode_claims). */
export function claimsFromCbor(claims) {
  const sameKeys = (map, keys) => map.entries.length === keys.length && map.entries.every(([k], i) => k === keys[i]);
  if (!(claims instanceof CborMap) || !sameKeys(claims, CLAIM_ORDER)) {
    throw malformed("CWT claims are not exactly iss, exp, nbf, iat, cti and the certificate, in order");
  }
  const certificate = claims.get(-65537);
  if (!(certificate instanceof CborMap)) throw malformed("certificate claim is not a map");
  const fields = certificate.keys;
  const known = fields.every((k) => typeof k === "number" && Number.isInteger(k) && k >= 1 && k <= 6);
  const sorted = fields.every((k, i) => i === 0 || fields[i - 1] < k);
  if (!known || !CERT_REQUIRED.every((k) => fields.includes(k)) || !sorted) {
    throw malformed("certificate claim has missing, unknown or unordered fields");
  }
  const present = (key) => certificate.has(key);
  const operation = certificate.get(3);
  const reviewDays = present(4) ? certificate.get(4) : null;
  if (
    !Array.isArray(operation) ||
    operation.length !== 2 ||
    !operation.every((part) => typeof part === "number" || typeof part === "bigint") ||
    !(!present(4) || (typeof reviewDays === "number" && reviewDays >= 0 && reviewDays < 100000))
  ) {
    throw malformed("operation or review date has the wrong type");
  }
  const result = {
    issuer: claims.get(1),
    expires: claims.get(4),
    notBefore: claims.get(5),
    issuedAt: claims.get(6),
    serial: claims.get(7),
    holderName: certificate.get(1),
    maskedId: certificate.get(2),
    operation: { category: operation[0], item: operation[1] },
    reviewDays,
    photoDigest: present(5) ? certificate.get(5) : null,
    statusIndex: present(6) ? certificate.get(6) : null,
  };
  const checks = [
    typeof result.issuer === "string" && ISSUER_PATTERN.test(result.issuer),
    result.serial instanceof Uint8Array && result.serial.length >= 8 && result.serial.length <= 16,
    [result.issuedAt, result.notBefore, result.expires].every((t) => isUint(t, MAX_UINT32)),
    result.expires > result.notBefore,
    typeof result.holderName === "string" && validName(result.holderName),
    typeof result.maskedId === "string" && MASKED_ID_PATTERN.test(result.maskedId),
    isUint(operation[0], 255) && isUint(operation[1], 255) && operation[0] > 0 && operation[1] > 0,
    !present(5) || (result.photoDigest instanceof Uint8Array && result.photoDigest.length === 16),
    !present(6) || isUint(result.statusIndex, MAX_UINT32),
  ];
  if (!checks.every(Boolean)) throw malformed("claims out of the profile's range");
  return result;
}

// --- dates (China Standard Time calendar dates) ---

const cstIso = (seconds) => new Date((seconds + CST_OFFSET_SECONDS) * 1000).toISOString();

/** The CST calendar date of a Unix time, YYYY-MM-DD. */
export const cstDate = (seconds) => cstIso(seconds).slice(0, 10);

/** The review (复审) date, YYYY-MM-DD, or null. */
export const reviewDate = (claims) =>
  claims.reviewDays === null ? null : new Date(claims.reviewDays * 86400000).toISOString().slice(0, 10);

/** Dates as printed: first and last day of validity, review date (or null), issue time. */
export function claimDates(claims) {
  return {
    validFrom: cstDate(claims.notBefore),
    validUntil: cstDate(claims.expires - 1),
    reviewDue: reviewDate(claims),
    issuedAt: `${cstIso(claims.issuedAt).slice(0, 19)}+08:00`,
  };
}

/** The claims as the test vectors list them (tests/vectors/certseal/README.md). */
export function claimsJson(claims) {
  const dates = claimDates(claims);
  return {
    issuer: claims.issuer,
    serial: toHex(claims.serial),
    holder_name: claims.holderName,
    masked_id: claims.maskedId,
    operation: `${claims.operation.category}.${claims.operation.item}`,
    valid_from: dates.validFrom,
    valid_until: dates.validUntil,
    review_due: dates.reviewDue,
    photo_digest: claims.photoDigest === null ? null : toHex(claims.photoDigest),
    status_index: claims.statusIndex,
    issued_at: dates.issuedAt,
  };
}

// --- verification ---

/**
 * Verify an envelope's format and signature; ``lookup(kidHex)`` returns a key of GET /v1/keys
 * ({kid, alg, state, issuer, jwk}) or nothing. Resolves to {claims, kid, alg, key}; rejects with
 * a VerifyError. Time and status are judged separately.
 */
export async function verifyEnvelope(envelope, lookup) {
  const message = parseEnvelope(envelope);
  if (!(message.kid instanceof Uint8Array)) throw new VerifyError("unknown_key", "no kid byte string");
  if (typeof message.alg !== "number" || !KNOWN_ALGS.has(message.alg)) {
    throw new VerifyError("unsupported_algorithm", `alg ${message.alg instanceof CborFloat ? message.alg.value : String(message.alg)}`);
  }
  const kid = toHex(message.kid);
  const key = lookup(kid);
  if (!key) throw new VerifyError("unknown_key", `kid ${kid}`);
  await checkSignature(message.alg, key, message.signature, sigStructure(message.protectedBytes, message.payload));
  // Only after the signature verifies, so a forgery is still bad_signature (crypto.envelope.verify_signature).
  if (message.alg === ES256 && isHighS(message.signature)) throw malformed("ES256 signature with a high s");
  return { claims: claimsFromCbor(decodeStrict(message.payload)), kid, alg: message.alg, key };
}

/** The validity-period reason at ``now`` (Unix seconds), or null: crypto.policy.ValidityPeriod. */
export function validityProblem(claims, now) {
  if (now + CLOCK_SKEW_SECONDS < claims.notBefore) return "not_yet_valid";
  if (now - CLOCK_SKEW_SECONDS >= claims.expires) return "expired";
  return null;
}

/** Verify QR text with the default policy (validity only), throwing the first failure like crypto.verify_qr_text. */
export async function verifyQrText(text, lookup, now) {
  const certificate = await verifyEnvelope(envelopeFromQrText(text), lookup);
  const problem = validityProblem(certificate.claims, now);
  if (problem) throw new VerifyError(problem);
  return certificate;
}

/**
 * Every reason the phone can judge without the server, in the order the server lists them:
 * validity, key revoked, key of another issuer, review date, purpose.
 * ``purpose`` is {hotWork: true} or {operation: "2.1"}.
 */
export function offlineReasons(certificate, { now, purpose = { hotWork: true }, reviewRequired = true, hotWorkCategory = 2 }) {
  const { claims, key } = certificate;
  const reasons = [];
  const validity = validityProblem(claims, now);
  if (validity) reasons.push(validity);
  if (key.state === "revoked") reasons.push("key_revoked");
  if (key.issuer && key.issuer !== claims.issuer) reasons.push("issuer_not_authorized");
  const today = cstDate(now);
  const reviewDue = reviewDate(claims);
  if (reviewRequired && reviewDue !== null && today > reviewDue) reasons.push("review_overdue");
  const code = `${claims.operation.category}.${claims.operation.item}`;
  if (purpose.hotWork && claims.operation.category !== hotWorkCategory) reasons.push("operation_not_covered");
  if (purpose.operation && purpose.operation !== code) reasons.push("operation_not_covered");
  return reasons;
}

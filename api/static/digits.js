// QR text -> envelope bytes: the browser twin of crypto/qrtext.py (same rules, same error codes).
//
// ``<base URL>/c1#<digits>``: every 17 digits carry 7 bytes, a final short group of 3, 5, 8, 10,
// 13 or 15 digits carries 1-6 bytes. Bare digits (no "#") are accepted too, as the tools do.

import { VerifyError, malformed } from "./cbor.js";

export const VERSION_PATH = "/c1";
export const MAX_QR_TEXT = 4096;
const GROUP_BYTES = 7;
const GROUP_DIGITS = 17;
const TAIL_BYTES = new Map([[0, 0], [3, 1], [5, 2], [8, 3], [10, 4], [13, 5], [15, 6]]);
// Python's str.strip() removes exactly the characters for which str.isspace() is true.
const SPACE = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const STRIP = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, "gu");
const SCHEME = /^(?:http|https|HTTP|HTTPS):\/\//;

/** Length in code points, as Python's len() counts a str. */
export function codePoints(text) {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** Python's str.strip() with no arguments. */
export function pyStrip(text) {
  return text.replace(STRIP, "");
}

function writeGroup(out, offset, digits, bytes) {
  let value = BigInt(digits);
  if (value >= 1n << BigInt(8 * bytes)) throw malformed("a digit group exceeds its byte range");
  for (let i = bytes - 1; i >= 0; i--) {
    out[offset + i] = Number(value & 0xffn);
    value >>= 8n;
  }
}

/** Reverse the packing; any non-digit, impossible length or oversized group is malformed. */
export function unpackDigits(digits) {
  if (codePoints(digits) > MAX_QR_TEXT || !/^[0-9]+$/.test(digits)) {
    throw malformed("payload is not 1-4096 ASCII digits");
  }
  const full = Math.floor(digits.length / GROUP_DIGITS);
  const tailBytes = TAIL_BYTES.get(digits.length % GROUP_DIGITS);
  if (tailBytes === undefined) throw malformed(`digit count ${digits.length} is not a valid packing`);
  const out = new Uint8Array(full * GROUP_BYTES + tailBytes);
  for (let group = 0; group < full; group++) {
    writeGroup(out, group * GROUP_BYTES, digits.slice(group * GROUP_DIGITS, (group + 1) * GROUP_DIGITS), GROUP_BYTES);
  }
  if (tailBytes) writeGroup(out, full * GROUP_BYTES, digits.slice(full * GROUP_DIGITS), tailBytes);
  return out;
}

/** The envelope bytes of QR text: a certseal URL or bare digits. */
export function envelopeFromQrText(text) {
  if (typeof text !== "string" || codePoints(text) > MAX_QR_TEXT) {
    throw malformed("QR text missing or longer than 4096 characters");
  }
  const stripped = pyStrip(text);
  const hash = stripped.indexOf("#");
  if (hash < 0) {
    if (SCHEME.test(stripped)) throw new VerifyError("unsupported_format", "URL has no credential fragment");
    return unpackDigits(stripped);
  }
  if (!stripped.slice(0, hash).endsWith(VERSION_PATH)) {
    throw new VerifyError("unsupported_format", "URL path is not a known credential version");
  }
  return unpackDigits(stripped.slice(hash + 1));
}

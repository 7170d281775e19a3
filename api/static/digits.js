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
// Python's str.isspace() characters (what str.strip() removes).
const SPACE = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
// crypto.qrtext.SURROUNDING_SPACE: the above plus U+200B-U+200D, U+2060 and U+FEFF.
const QR_SPACE = `${SPACE}\\u200b-\\u200d\\u2060\\ufeff`;
const QR_STRIP = new RegExp(`^[${QR_SPACE}]+|[${QR_SPACE}]+$`, "gu");
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/** Length in code points, as Python's len() counts a str. */
export function codePoints(text) {
  let count = 0;
  for (const _ of text) count++;
  return count;
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

/** QR text without the surrounding space of crypto.qrtext.SURROUNDING_SPACE. */
export function stripQrText(text) {
  return text.replace(QR_STRIP, "");
}

/**
 * The envelope bytes of QR text: a certseal URL or bare digits. The URL rule of
 * docs/credential-format.md section 1, the twin of crypto.qrtext.envelope_from_qr_text, tested on
 * tests/vectors/url-cases.json: the same codes and the same messages.
 */
export function envelopeFromQrText(text) {
  if (typeof text !== "string" || codePoints(text) > MAX_QR_TEXT) {
    throw malformed("QR text missing or longer than 4096 characters");
  }
  const stripped = stripQrText(text);
  if (!stripped) throw malformed("QR text is empty");
  const hash = stripped.indexOf("#");
  if (hash < 0) {
    if (stripped.includes("%23")) {
      throw new VerifyError("unsupported_format", "%23 is not a fragment: the digits must follow a literal '#'");
    }
    if (SCHEME.test(stripped)) throw new VerifyError("unsupported_format", "URL has no credential fragment ('#' and digits)");
    return unpackDigits(stripped);
  }
  const location = stripped.slice(0, hash);
  const query = location.indexOf("?");
  const path = query < 0 ? location : location.slice(0, query); // the query is ignored (WeChat)
  if (!path.endsWith(VERSION_PATH)) {
    if (path.slice(-VERSION_PATH.length).toLowerCase() === VERSION_PATH) {
      throw new VerifyError("unsupported_format", "URL path must end with /c1: the version path is case-sensitive");
    }
    throw new VerifyError("unsupported_format", "URL path is not a known credential version (it must end with /c1)");
  }
  return unpackDigits(stripped.slice(hash + 1));
}

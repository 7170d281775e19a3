// Strict CBOR decoder for the certseal profile: the browser twin of crypto/_cbor.loads_strict.
//
// crypto/_cbor.py accepts an item only if re-encoding it (cbor2, deterministic) gives the same
// bytes. This decoder refuses the same inputs directly: indefinite lengths, non-shortest heads,
// duplicate or unordered map keys (bytewise order of the encoded keys, RFC 8949 section 4.2.1),
// invalid UTF-8, reserved additional information and trailing bytes. Floats are accepted only in
// the form cbor2 itself writes (float64, or the half-float NaN/Infinity), tags only where cbor2
// keeps them as plain tags. Every refusal is a VerifyError with code "malformed".

export const MAX_ENVELOPE_BYTES = 4096;
const MAX_DEPTH = 256;

/** A verification failure with one of the reason codes of schemas/api.py. */
export class VerifyError extends Error {
  constructor(code, detail = "", flags = {}) {
    super(detail || code);
    this.code = code;
    Object.assign(this, flags);
  }
}

export const malformed = (detail) => new VerifyError("malformed", detail);

/** A CBOR float (kept apart from integers, which are plain numbers or BigInts). */
export class CborFloat {
  constructor(value) {
    this.value = value;
  }
}

/** A CBOR simple value other than false, true, null and undefined. */
export class CborSimple {
  constructor(value) {
    this.value = value;
  }
}

/** A tagged item. */
export class CborTag {
  constructor(tag, value) {
    this.tag = tag;
    this.value = value;
  }
}

/** A map with its entries in encoded order. */
export class CborMap {
  constructor(entries) {
    this.entries = entries;
  }

  get keys() {
    return this.entries.map(([key]) => key);
  }

  has(key) {
    return this.entries.some(([k]) => k === key);
  }

  get(key) {
    const entry = this.entries.find(([k]) => k === key);
    return entry ? entry[1] : undefined;
  }
}

export const UNDEFINED = Symbol("cbor undefined");

// Tags cbor2 decodes into other Python objects (dates, bignums, decimals, sets, ...): their
// round trip is not byte-exact in general, so the profile refuses them.
const SEMANTIC_TAGS = new Set([0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 100, 256, 258, 260, 261, 1004, 43000, 55799]);
const MIN_FOR_INFO = { 24: 24, 25: 0x100, 26: 0x10000, 27: 0x100000000 };
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decode exactly one deterministic CBOR item filling ``bytes`` (a Uint8Array) of at most ``maxBytes``. */
export function decodeStrict(bytes, maxBytes = MAX_ENVELOPE_BYTES) {
  if (bytes.length > maxBytes) throw malformed(`${bytes.length} bytes exceeds ${maxBytes}`);
  const reader = { bytes, pos: 0 };
  const value = readItem(reader, 0);
  if (reader.pos !== bytes.length) throw malformed("trailing bytes after CBOR item");
  return value;
}

function take(reader, count) {
  if (reader.pos + count > reader.bytes.length) throw malformed("truncated CBOR");
  const slice = reader.bytes.subarray(reader.pos, reader.pos + count);
  reader.pos += count;
  return slice;
}

function readArgument(reader, info) {
  if (info < 24) return info;
  if (info > 27) throw malformed(info === 31 ? "indefinite length" : "reserved additional information");
  const raw = take(reader, 1 << (info - 24));
  let value = 0n;
  for (const byte of raw) value = (value << 8n) | BigInt(byte);
  if (value < BigInt(MIN_FOR_INFO[info])) throw malformed("head not in shortest form");
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function readSimpleOrFloat(reader, info) {
  if (info < 20) return new CborSimple(info);
  if (info === 20) return false;
  if (info === 21) return true;
  if (info === 22) return null;
  if (info === 23) return UNDEFINED;
  if (info === 24) {
    const value = take(reader, 1)[0];
    if (value < 32) throw malformed("simple value in two bytes below 32");
    return new CborSimple(value);
  }
  if (info === 25) {
    const [high, low] = take(reader, 2);
    // cbor2 writes NaN and the infinities as half floats and every other float as float64.
    if (low === 0 && high === 0x7e) return new CborFloat(NaN);
    if (low === 0 && high === 0x7c) return new CborFloat(Infinity);
    if (low === 0 && high === 0xfc) return new CborFloat(-Infinity);
    throw malformed("half float other than NaN or Infinity");
  }
  if (info === 27) {
    const raw = take(reader, 8);
    const value = new DataView(raw.buffer, raw.byteOffset, 8).getFloat64(0);
    if (!Number.isFinite(value)) throw malformed("NaN or Infinity not as a half float");
    return new CborFloat(value);
  }
  throw malformed(info === 26 ? "float32 is never deterministic here" : "break or reserved simple value");
}

function compareBytes(a, b) {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

function readItem(reader, depth) {
  if (depth > MAX_DEPTH) throw malformed("nested too deeply");
  const initial = take(reader, 1)[0];
  const major = initial >> 5;
  const info = initial & 0x1f;
  if (major === 7) return readSimpleOrFloat(reader, info);
  const argument = readArgument(reader, info);
  switch (major) {
    case 0:
      return argument;
    case 1:
      return typeof argument === "number" && argument < Number.MAX_SAFE_INTEGER ? -1 - argument : -1n - BigInt(argument);
    case 2:
      return take(reader, lengthOf(reader, argument)).slice();
    case 3:
      try {
        return utf8.decode(take(reader, lengthOf(reader, argument)));
      } catch (error) {
        if (error instanceof VerifyError) throw error;
        throw malformed("text string is not valid UTF-8");
      }
    case 4: {
      const items = [];
      for (let i = lengthOf(reader, argument); i > 0; i--) items.push(readItem(reader, depth + 1));
      return items;
    }
    case 5: {
      const entries = [];
      let previous = null;
      for (let i = lengthOf(reader, argument); i > 0; i--) {
        const start = reader.pos;
        const key = readItem(reader, depth + 1);
        const encoded = reader.bytes.subarray(start, reader.pos);
        if (previous !== null) {
          const order = compareBytes(previous, encoded);
          if (order === 0) throw malformed("duplicate map key");
          if (order > 0) throw malformed("map keys not in deterministic order");
        }
        previous = encoded;
        entries.push([key, readItem(reader, depth + 1)]);
      }
      return new CborMap(entries);
    }
    default: {
      if (typeof argument !== "number" || SEMANTIC_TAGS.has(argument)) throw malformed(`tag ${argument}`);
      return new CborTag(argument, readItem(reader, depth + 1));
    }
  }
}

function lengthOf(reader, argument) {
  if (typeof argument !== "number" || argument > reader.bytes.length - reader.pos) throw malformed("truncated CBOR");
  return argument;
}

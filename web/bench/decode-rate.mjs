#!/usr/bin/env node
// Decode-rate benchmark: zxing-wasm (reader build) vs jsQR on camera-like frames.
//
//   cd web && npm ci && npm run bench            # generates frames into a temp dir
//   node bench/decode-rate.mjs --frames DIR      # reuse frames from make_frames.py
//   node bench/decode-rate.mjs --per-condition 10
//
// Frames come from make_frames.py (python3 + pillow + numpy + qrcode). A frame
// counts as decoded only if the decoded text equals the encoded certificate URL.
// Both decoders get the same RGBA buffer (what canvas getImageData() returns).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync, inflateSync } from "node:zlib";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
const webDir = join(here, "..");
const require = createRequire(import.meta.url);

// ---------- args
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
let framesDir = opt("--frames", null);
const perCondition = opt("--per-condition", "30");
let tmp = null;
if (!framesDir) {
  tmp = mkdtempSync(join(tmpdir(), "qr-frames-"));
  framesDir = tmp;
  process.stderr.write(`generating frames in ${tmp} ...\n`);
  execFileSync("python3", [join(here, "make_frames.py"), tmp, "--per-condition", perCondition], {
    stdio: ["ignore", "inherit", "inherit"],
  });
}

// ---------- minimal PNG decoder (8-bit RGB/RGBA/grey, non-interlaced) -> RGBA
function decodePng(buf) {
  let pos = 8, width, height, bitDepth, colorType, interlace;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString("latin1", pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      bitDepth = data[8]; colorType = data[9]; interlace = data[12];
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    pos += 12 + len;
  }
  const ch = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType];
  if (bitDepth !== 8 || !ch || interlace) throw new Error("unsupported PNG");
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * ch;
  const px = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1, dst = y * stride, prev = dst - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= ch ? px[dst + x - ch] : 0;
      const b = y > 0 ? px[prev + x] : 0;
      const c = x >= ch && y > 0 ? px[prev + x - ch] : 0;
      let v = raw[src + x];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[dst + x] = v & 255;
    }
  }
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0, j = 0; i < width * height; i++, j += ch) {
    const g = ch <= 2;
    rgba[i * 4] = px[j];
    rgba[i * 4 + 1] = g ? px[j] : px[j + 1];
    rgba[i * 4 + 2] = g ? px[j] : px[j + 2];
    rgba[i * 4 + 3] = ch === 4 ? px[j + 3] : ch === 2 ? px[j + 1] : 255;
  }
  return { data: rgba, width, height };
}

// ---------- decoders
const zxingDir = join(webDir, "node_modules/zxing-wasm");
const zxingVersion = JSON.parse(readFileSync(join(zxingDir, "package.json"))).version;
const zx = await import("zxing-wasm/reader");
const wasmPath = join(zxingDir, "dist/reader/zxing_reader.wasm");
zx.prepareZXingModule({
  overrides: { wasmBinary: readFileSync(wasmPath).buffer.slice(0) },
  fireImmediately: false,
});
// Same options as api/static/qr-decoder.js.
const ZX_OPTS = { formats: ["QRCode"], tryHarder: true, tryInvert: false, textMode: "Plain", maxNumberOfSymbols: 1 };
const jsqrDir = join(webDir, "node_modules/jsqr");
const jsqrVersion = JSON.parse(readFileSync(join(jsqrDir, "package.json"))).version;
const jsQR = require("jsqr");

const decoders = {
  [`zxing-wasm ${zxingVersion}`]: async (img) => {
    const r = await zx.readBarcodes(img, ZX_OPTS);
    return r.length && r[0].isValid ? r[0].text : null;
  },
  [`jsQR ${jsqrVersion}`]: async (img) => {
    const r = jsQR(img.data, img.width, img.height, { inversionAttempts: "dontInvert" });
    return r ? r.data : null;
  },
};
const names = Object.keys(decoders);
await decoders[names[0]](decodePng(readFileSync(join(framesDir, JSON.parse(
  readFileSync(join(framesDir, "manifest.json"))).frames[0].file)))); // warm-up (wasm init)

// ---------- run
const manifest = JSON.parse(readFileSync(join(framesDir, "manifest.json")));
const stats = {}; // cond -> name -> {ok, n, ms[]}
for (const fr of manifest.frames) {
  const img = decodePng(readFileSync(join(framesDir, fr.file)));
  for (const name of names) {
    const t0 = performance.now();
    let text = null;
    try { text = await decoders[name](img); } catch (e) { text = null; }
    const ms = performance.now() - t0;
    const s = ((stats[fr.condition] ??= {})[name] ??= { ok: 0, n: 0, ms: [] });
    s.n++; s.ms.push(ms);
    if (text === fr.text) s.ok++;
  }
}

// ---------- report
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const median = (a) => { const b = [...a].sort((x, y) => x - y); return b[b.length >> 1]; };
const versions = [...new Set(manifest.frames.map((f) => f.version))].join(",");
console.log(`\nDecode rate, ${manifest.frames.length} frames ${manifest.width}x${manifest.height}, ` +
  `QR version ${versions} EC Q, "${manifest.frames[0].text.slice(0, 31)}" + 460 digits\n`);
const colW = 26;
console.log(pad("condition", 17) + names.map((n) => lpad(n, colW)).join(""));
const tot = Object.fromEntries(names.map((n) => [n, { ok: 0, n: 0, ms: [] }]));
for (const c of manifest.conditions) {
  const row = names.map((n) => {
    const s = stats[c.name][n];
    tot[n].ok += s.ok; tot[n].n += s.n; tot[n].ms.push(...s.ms);
    return lpad(`${s.ok}/${s.n} ${lpad(((100 * s.ok) / s.n).toFixed(0), 3)}%  ${lpad(median(s.ms).toFixed(0), 4)}ms`, colW);
  });
  console.log(pad(c.name, 17) + row.join("") + "   " + c.desc);
}
console.log(pad("TOTAL", 17) + names.map((n) => lpad(
  `${tot[n].ok}/${tot[n].n} ${lpad(((100 * tot[n].ok) / tot[n].n).toFixed(0), 3)}%  ${lpad(median(tot[n].ms).toFixed(0), 4)}ms`, colW)).join(""));
console.log("(ms = median decode time per frame in Node on this machine)\n");

const size = (files) => {
  const bufs = files.map((f) => readFileSync(f));
  const raw = bufs.reduce((a, b) => a + b.length, 0);
  const gz = bufs.reduce((a, b) => a + gzipSync(b, { level: 9 }).length, 0);
  return `${lpad((raw / 1024).toFixed(1), 7)} KiB raw ${lpad((gz / 1024).toFixed(1), 7)} KiB gzip -9`;
};
console.log("Transfer size (files the browser would load):");
const zf = ["dist/es/reader/index.js", "dist/es/share.js", "dist/reader/zxing_reader.wasm"].map((f) => join(zxingDir, f));
console.log(`  ${pad(names[0], 18)} ${size(zf)}   (reader ES module + share.js + zxing_reader.wasm)`);
console.log(`  ${pad("", 18)} ${size(zf.slice(0, 2))}   (JS only)`);
console.log(`  ${pad(names[1], 18)} ${size([join(jsqrDir, "dist/jsQR.js")])}   (dist/jsQR.js, UMD)`);

if (tmp) rmSync(tmp, { recursive: true, force: true });

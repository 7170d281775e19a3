// QR decoding fallback for the in-page scanner, used when the browser has no
// BarcodeDetector (e.g. Debian's Chromium). Import it lazily, when the scanner
// opens:
//
//   const { decodeQrFromImageData } = await import("/static/qr-decoder.js");
//   const text = await decodeQrFromImageData(ctx.getImageData(0, 0, w, h));
//
// Backed by the vendored zxing-wasm reader build (see web/README.md). Both the
// JS and the .wasm are loaded from this origin, relative to this file; the
// library's default (fetching the .wasm from a CDN) is always overridden.
// The first call downloads and compiles the wasm (~400 KiB gzip); later calls
// reuse it. ``loadDecoder(onProgress)`` loads it ahead of the first frame and
// reports the download ({loaded, total} bytes), so the scanner can show it. The
// service worker keeps these files once the page has shown a verdict (sw.js), so
// a first scan also works offline.

const WASM_URL = new URL("./vendor/zxing-wasm/reader/zxing_reader.wasm", import.meta.url).href;
// The wasm's size once decoded: the response is gzip-encoded on the wire, so its Content-Length is not
// what the reader counts (tests/browser/test_decoder_cache.py checks this against the file).
export const WASM_BYTES = 953527;

// Same options as measured in web/bench/decode-rate.mjs.
const READER_OPTIONS = {
  formats: ["QRCode"],
  tryHarder: true,
  tryInvert: false,
  textMode: "Plain",
  maxNumberOfSymbols: 1,
};

let loading = null;
const listeners = new Set();

function report(loaded) {
  const progress = { loaded, total: Math.max(WASM_BYTES, loaded) };
  for (const listener of listeners) {
    try {
      listener(progress);
    } catch {
      /* a listener's error is not the decoder's */
    }
  }
}

/** The wasm's bytes, read as they arrive so the download can be shown. */
async function fetchWasm() {
  report(0);
  const response = await fetch(WASM_URL, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`decoder: HTTP ${response.status}`);
  if (!response.body || !response.body.getReader) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    report(bytes.byteLength);
    return bytes;
  }
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    report(loaded);
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

function loadZXing() {
  if (!loading) {
    loading = (async () => {
      const [zx, wasmBinary] = await Promise.all([import("./vendor/zxing-wasm/es/reader/index.js"), fetchWasm()]);
      try {
        await zx.prepareZXingModule({
          overrides: {
            locateFile: (path, prefix) => (path.endsWith(".wasm") ? WASM_URL : prefix + path),
            wasmBinary,
          },
          fireImmediately: true,
        });
      } catch (err) {
        zx.purgeZXingModule(); // drop the failed instance so a later call can retry
        throw err;
      }
      return zx;
    })();
    loading.catch(() => {
      loading = null;
    });
  }
  return loading;
}

/**
 * Download and compile the decoder now (once); ``onProgress({loaded, total})`` follows the wasm's
 * download. Rejects when it cannot be loaded (offline and not cached); a later call tries again.
 * @param {(progress: {loaded: number, total: number}) => void} [onProgress]
 * @returns {Promise<void>}
 */
export async function loadDecoder(onProgress) {
  if (onProgress) listeners.add(onProgress);
  try {
    await loadZXing();
  } finally {
    if (onProgress) listeners.delete(onProgress);
  }
}

/**
 * Decode the first QR code in an ImageData (or any {data: RGBA Uint8ClampedArray,
 * width, height}). Resolves to its text, or null when no QR code is found.
 * Rejects only if the decoder itself cannot be loaded.
 * @param {ImageData} imageData
 * @returns {Promise<string|null>}
 */
export async function decodeQrFromImageData(imageData) {
  const zx = await loadZXing();
  const results = await zx.readBarcodes(imageData, READER_OPTIONS);
  for (const r of results) {
    if (r.isValid) return r.text;
  }
  return null;
}

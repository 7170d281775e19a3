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
// reuse it.

const WASM_URL = new URL("./vendor/zxing-wasm/reader/zxing_reader.wasm", import.meta.url).href;

// Same options as measured in web/bench/decode-rate.mjs.
const READER_OPTIONS = {
  formats: ["QRCode"],
  tryHarder: true,
  tryInvert: false,
  textMode: "Plain",
  maxNumberOfSymbols: 1,
};

let loading = null;

function loadZXing() {
  if (!loading) {
    loading = (async () => {
      const zx = await import("./vendor/zxing-wasm/es/reader/index.js");
      try {
        await zx.prepareZXingModule({
          overrides: {
            locateFile: (path, prefix) => (path.endsWith(".wasm") ? WASM_URL : prefix + path),
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

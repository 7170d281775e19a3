// In-page QR scanner: rear camera (getUserMedia), BarcodeDetector where the browser has it and
// it works, otherwise the vendored zxing-wasm decoder (./qr-decoder.js), loaded while the camera
// opens, with its download reported so the page can show it. Also the vibrate/beep feedback on a
// verdict. Loaded lazily by app.js when "scan next" is tapped.

const FRAME_INTERVAL_MS = 120;
const MAX_DECODE_SIDE = 960;
// BarcodeDetector can exist and still fail (no platform barcode service): after this many errors in a
// row the wasm decoder takes over.
const NATIVE_FAILURES_BEFORE_FALLBACK = 3;

/** The decoder could not be loaded (offline and never cached, or a broken download). */
export class DecoderUnavailable extends Error {
  name = "DecoderUnavailable";
}

/** Open the rear camera into ``video``; returns {hasTorch, setTorch(on), stop()}. */
export async function openCamera(video) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new DOMException("no camera API", "NotSupportedError");
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
  });
  const stopAll = () => {
    stream.getTracks().forEach((t) => t.stop());
    video.srcObject = null;
  };
  try {
    video.srcObject = stream;
    video.muted = true;
    video.setAttribute("playsinline", "");
    await video.play();
  } catch (error) {
    stopAll(); // the camera never stays on behind a failure
    throw error;
  }
  const [track] = stream.getVideoTracks();
  const capabilities = track && track.getCapabilities ? track.getCapabilities() : {};
  return {
    hasTorch: Boolean(capabilities.torch),
    setTorch: (on) => track.applyConstraints({ advanced: [{ torch: on }] }),
    stop: stopAll,
  };
}

async function nativeDetector() {
  if (!("BarcodeDetector" in globalThis)) return null;
  try {
    const formats = await globalThis.BarcodeDetector.getSupportedFormats();
    if (!formats.includes("qr_code")) return null;
    const detector = new globalThis.BarcodeDetector({ formats: ["qr_code"] });
    return async (video) => {
      const codes = await detector.detect(video);
      return codes.length ? codes[0].rawValue : null;
    };
  } catch {
    return null;
  }
}

async function wasmDetector(canvas, onProgress) {
  let decodeQrFromImageData;
  try {
    const decoder = await import("./qr-decoder.js");
    await decoder.loadDecoder(onProgress);
    decodeQrFromImageData = decoder.decodeQrFromImageData;
  } catch (error) {
    throw new DecoderUnavailable(String(error && error.message));
  }
  const context = canvas.getContext("2d", { willReadFrequently: true });
  return async (video) => {
    const { videoWidth: width, videoHeight: height } = video;
    if (!width || !height) return null;
    const scale = Math.min(1, MAX_DECODE_SIDE / Math.max(width, height));
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    return decodeQrFromImageData(context.getImageData(0, 0, canvas.width, canvas.height));
  };
}

/**
 * Start preparing a frame decoder now (call it before opening the camera, so the two overlap):
 * BarcodeDetector when present, else the wasm decoder, whose download goes to ``onProgress``
 * ({loaded, total} bytes; never called for BarcodeDetector). Resolves to ``detect(video)`` (text or
 * null); rejects with DecoderUnavailable.
 */
export function prepareDetector(canvas, onProgress) {
  let wasm = null;
  const useWasm = () => (wasm = wasm || wasmDetector(canvas, onProgress));
  const ready = (async () => {
    const native = await nativeDetector();
    if (!native) return useWasm();
    let failures = 0;
    let fallback = null;
    return async (video) => {
      if (fallback) return fallback(video);
      try {
        const text = await native(video);
        failures = 0;
        return text;
      } catch {
        failures += 1;
        if (failures >= NATIVE_FAILURES_BEFORE_FALLBACK) fallback = await useWasm();
        return null;
      }
    };
  })();
  ready.catch(() => {}); // handled by whoever awaits it; never an unhandled rejection meanwhile
  return ready;
}

/** Decode frames until a QR code is found (its text) or ``cancelled()`` turns true (null). */
export async function scanUntilFound(video, detector, cancelled) {
  const detect = await detector;
  while (!cancelled()) {
    const text = await detect(video).catch((error) => {
      if (error instanceof DecoderUnavailable) throw error;
      return null;
    });
    if (text && !cancelled()) return text;
    await new Promise((resolve) => setTimeout(resolve, FRAME_INTERVAL_MS));
  }
  return null;
}

/** Vibrate and beep: one short high tone for accept, two low ones otherwise. */
export function feedback(verdict, audio) {
  const ok = verdict === "accept";
  if (navigator.vibrate) navigator.vibrate(ok ? 120 : [300, 120, 300]);
  if (!audio) return;
  const tones = ok ? [[880, 0]] : [[220, 0], [220, 0.3]];
  for (const [frequency, delay] of tones) {
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = frequency;
    gain.gain.value = 0.25;
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start(audio.currentTime + delay);
    oscillator.stop(audio.currentTime + delay + 0.18);
  }
}

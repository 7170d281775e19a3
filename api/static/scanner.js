// In-page QR scanner: rear camera (getUserMedia), BarcodeDetector where the browser has it,
// otherwise the vendored zxing-wasm decoder (./qr-decoder.js), loaded only now. Also the
// vibrate/beep feedback on a verdict. Loaded lazily by app.js when "scan next" is tapped.

const FRAME_INTERVAL_MS = 120;
const MAX_DECODE_SIDE = 960;

/** Open the rear camera into ``video``; returns {hasTorch, setTorch(on), stop()}. */
export async function openCamera(video) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
  });
  video.srcObject = stream;
  video.muted = true;
  video.setAttribute("playsinline", "");
  await video.play();
  const [track] = stream.getVideoTracks();
  const capabilities = track && track.getCapabilities ? track.getCapabilities() : {};
  return {
    hasTorch: Boolean(capabilities.torch),
    setTorch: (on) => track.applyConstraints({ advanced: [{ torch: on }] }),
    stop() {
      stream.getTracks().forEach((t) => t.stop());
      video.srcObject = null;
    },
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

async function wasmDetector(canvas) {
  const { decodeQrFromImageData } = await import("./qr-decoder.js");
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

/** Decode frames until a QR code is found (its text) or ``cancelled()`` turns true (null). */
export async function scanUntilFound(video, canvas, cancelled) {
  const detect = (await nativeDetector()) || (await wasmDetector(canvas));
  while (!cancelled()) {
    const text = await detect(video).catch(() => null);
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

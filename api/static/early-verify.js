// Sends POST /v1/verify for the card in the page's own URL the moment the page's scripts run: app.js
// imports this module first, so the request leaves before the other modules are evaluated and before
// the page is drawn (with a 4x slower phone CPU that is several hundred milliseconds earlier). app.js
// takes the request over (takeEarlyVerify) when it checks the same card for the same purpose.
// (Loading it as its own async module script in c1.html gained only ~50 ms more on the emulated phone.)

const TIMEOUT_MS = 15000; // app.js VERIFY_TIMEOUT_MS

let early = null;

if (location.hash.length > 1 && typeof fetch === "function") {
  // As app.js pageQrText(): the query is dropped (WeChat appends its own parameters).
  const qr = `${location.origin}${location.pathname}${location.hash}`;
  const body = JSON.stringify({ qr, purpose: "hot_work" });
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  const response = fetch("/v1/verify", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body,
    cache: "no-store",
    signal: controller.signal,
  });
  response.then(
    () => clearTimeout(timer),
    () => clearTimeout(timer),
  );
  response.catch(() => null);
  early = { body, response, sentAt: performance.now() };
}

/** The request already sent for exactly this body (once): {response, sentAt (performance.now())}, else null. */
export function takeEarlyVerify(body) {
  if (!early || early.body !== body) return null;
  const taken = early;
  early = null;
  return taken;
}

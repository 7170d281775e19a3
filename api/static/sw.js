// Service worker for the verification page (served at /sw.js, scope /c1; the server fills in
// VERSION, a hash of the page's files, and SHELL). It keeps the page, its assets and the key
// list, so a QR code opened with no network still gets the signature verdict.
//   /c1 (navigation)     stale-while-revalidate: answers at once, refreshes in the background
//   the page's assets    cache first (precached at install; a new VERSION replaces them)
//   /v1/keys             stale-while-revalidate in a cache that survives page updates
//   the scanner decoder  cache first, stored on first use (it is large and optional)
//   trust and status lists  not here: status.js fetches, verifies and stores them in
//                        "certseal-lists" after a verdict; this worker only keeps that cache
//   everything else      the network (POST /v1/verify, photos)

const VERSION = "dev";
const SHELL = ["/c1"];
const PAGE = "/c1";
const KEYS = "/v1/keys";
const SHELL_CACHE = `certseal-shell-${VERSION}`;
const DECODER_CACHE = `certseal-decoder-${VERSION}`;
const DATA_CACHE = "certseal-data";
const LISTS_CACHE = "certseal-lists";
const DECODER = /^\/static\/(qr-decoder\.js$|vendor\/)/;

async function refresh(cacheName, key, request) {
  const response = await fetch(request, { cache: "no-cache" });
  if (response.ok) await (await caches.open(cacheName)).put(key, response.clone());
  return response;
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const shell = await caches.open(SHELL_CACHE);
      await shell.addAll(SHELL.map((url) => new Request(url, { cache: "no-cache" })));
      await refresh(DATA_CACHE, KEYS, KEYS).catch(() => null);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  const keep = new Set([SHELL_CACHE, DECODER_CACHE, DATA_CACHE, LISTS_CACHE]);
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith("certseal-") && !keep.has(name)) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

function staleWhileRevalidate(event, cacheName, key) {
  const update = refresh(cacheName, key, event.request.mode === "navigate" ? key : event.request);
  event.waitUntil(update.catch(() => null));
  return (async () => {
    const cached = await caches.match(key, { cacheName, ignoreSearch: true, ignoreVary: true });
    return cached || update;
  })();
}

async function cacheFirst(request, cacheName, store) {
  const cached = await caches.match(request, { cacheName, ignoreSearch: true, ignoreVary: true });
  if (cached) return cached;
  const response = await fetch(request);
  if (store && response.ok) await (await caches.open(cacheName)).put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (request.mode === "navigate" || url.pathname === PAGE) {
    event.respondWith(staleWhileRevalidate(event, SHELL_CACHE, PAGE));
  } else if (url.pathname === KEYS) {
    event.respondWith(staleWhileRevalidate(event, DATA_CACHE, KEYS));
  } else if (SHELL.includes(url.pathname)) {
    event.respondWith(cacheFirst(request, SHELL_CACHE, false));
  } else if (DECODER.test(url.pathname)) {
    event.respondWith(cacheFirst(request, DECODER_CACHE, true));
  }
});

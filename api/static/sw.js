// Service worker for the verification page (served at /sw.js, scope /c1; the server fills in
// VERSION, a hash of the page's files, SHELL, DECODER_VERSION, a hash of the decoder's files, and
// DECODER). It keeps the page, its assets and the key list, so a QR code opened with no network
// still gets the signature verdict.
//   /c1 (navigation)     stale-while-revalidate: answers at once, refreshes in the background
//   the page's assets    cache first (precached at install; a new VERSION replaces them)
//   /v1/keys             stale-while-revalidate in a cache that survives page updates
//   the scanner decoder  cache first. Not part of the install (0.4 MB: it would hold up the first
//                        visit and a failed download would fail the install): after a verdict the page
//                        posts {type: "cache-decoder"} and this worker downloads whatever the cache
//                        lacks, in the background, and answers {ok} on the message's port. A failure
//                        is retried at the page's next load. The cache is named by DECODER_VERSION, so
//                        a page update keeps it; a page fetch during the download shares it.
//   trust and status lists  not here: status.js fetches, verifies and stores them in
//                        "certseal-lists" after a verdict; this worker only keeps that cache
//   everything else      the network (POST /v1/verify, photos)

const VERSION = "dev";
const SHELL = ["/c1"];
const DECODER_VERSION = "dev";
const DECODER = ["/static/qr-decoder.js"];
const PAGE = "/c1";
const KEYS = "/v1/keys";
const SHELL_CACHE = `certseal-shell-${VERSION}`;
const DECODER_CACHE = `certseal-decoder-${DECODER_VERSION}`;
const DATA_CACHE = "certseal-data";
const LISTS_CACHE = "certseal-lists";

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

async function cacheFirst(request, cacheName) {
  const cached = await caches.match(request, { cacheName, ignoreSearch: true, ignoreVary: true });
  return cached || fetch(request);
}

// Decoder downloads under way, by path: {response (resolves with the headers), stored (in the cache)}.
// The page's own request during the background download is answered from the same download.
const downloads = new Map();

function downloadDecoderFile(path) {
  if (!downloads.has(path)) {
    const response = fetch(path, { cache: "no-cache", credentials: "same-origin" }).then((answer) => {
      if (!answer.ok) throw new Error(`${path}: HTTP ${answer.status}`);
      return answer;
    });
    // The first response stays unread: every reader gets a clone of it, which starts at byte 0.
    const stored = response
      .then(async (answer) => (await caches.open(DECODER_CACHE)).put(path, answer.clone()))
      .finally(() => downloads.delete(path));
    stored.catch(() => null);
    downloads.set(path, { response, stored });
  }
  return downloads.get(path);
}

async function decoderResponse(event, path) {
  const cached = await caches.match(path, { cacheName: DECODER_CACHE, ignoreSearch: true, ignoreVary: true });
  if (cached) return cached;
  const download = downloadDecoderFile(path);
  event.waitUntil(download.stored.catch(() => null));
  return (await download.response).clone();
}

/** Put every decoder file the cache lacks into it; rejects if one cannot be downloaded. */
async function cacheDecoder() {
  const cache = await caches.open(DECODER_CACHE);
  const missing = [];
  for (const path of DECODER) {
    if (!(await cache.match(path, { ignoreSearch: true, ignoreVary: true }))) missing.push(path);
  }
  await Promise.all(missing.map((path) => downloadDecoderFile(path).stored));
}

self.addEventListener("message", (event) => {
  if (!event.data || event.data.type !== "cache-decoder") return;
  const done = cacheDecoder().then(
    () => ({ ok: true }),
    (error) => ({ ok: false, error: String(error && error.message) }),
  );
  event.waitUntil(done);
  done.then((answer) => event.ports[0] && event.ports[0].postMessage(answer));
});

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (request.mode === "navigate" || url.pathname === PAGE) {
    event.respondWith(staleWhileRevalidate(event, SHELL_CACHE, PAGE));
  } else if (url.pathname === KEYS) {
    event.respondWith(staleWhileRevalidate(event, DATA_CACHE, KEYS));
  } else if (SHELL.includes(url.pathname)) {
    event.respondWith(cacheFirst(request, SHELL_CACHE));
  } else if (DECODER.includes(url.pathname)) {
    event.respondWith(decoderResponse(event, url.pathname));
  }
});

"""Photo-upload memory: 20 concurrent 4096 x 4096 JPEG uploads against a real server, its peak RSS before and after.

Starts `certseal serve --demo` on a fresh, migrated SQLite database twice: once as shipped, and once with
the photo cleaner replaced by the previous one (full-resolution decode, no decode slots; for comparison
only, patched into the server process by this script). Each time it reads the server's VmHWM (peak
resident memory, /proc/PID/status) after start-up and one small upload, fires 20 concurrent issuances
each carrying the same 4096 x 4096 JPEG, reads VmHWM again and prints both side by side with the
answers' status codes and the wall time.

Two photos: ``noise`` (random noise, ~4 MiB: CERTSEAL_MAX_PHOTO_BYTES and CERTSEAL_MAX_BODY_BYTES are
raised for it, so the request bodies themselves weigh in) and ``smooth`` (a gradient, ~0.3 MiB, within
the default limits). Decoding costs the same for both: memory goes with the pixels, not the file size.

Run: python3 bench/bench_photos.py [--image noise|smooth|both] [--uploads 20] [--side 4096] [--quality 25]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402 -- after the path setup
from benchlib import start_demo_server  # noqa: E402
from PIL import Image  # noqa: E402

from api import demo  # noqa: E402
from api.settings import DEMO_ISSUER_API_KEY  # noqa: E402
from crypto import CST  # noqa: E402

# The server process, started as `python3 -c BOOT <cli arguments>`; LEGACY swaps in the previous cleaner.
BOOT = """
import sys
if sys.argv[1] == "legacy":
    import base64, io
    from PIL import Image, ImageOps
    from api.routers import certificates
    from api.services import photos

    def legacy_clean_photo(photo_base64, *, max_bytes):
        raw = base64.b64decode(photo_base64, validate=True)
        with Image.open(io.BytesIO(raw)) as probe:
            kind = probe.format
            probe.load()
            picture = ImageOps.exif_transpose(probe).convert("RGB")
        picture.thumbnail((600, 600))
        out = io.BytesIO()
        picture.save(out, format="JPEG" if kind == "JPEG" else "PNG")
        return out.getvalue(), "image/jpeg" if kind == "JPEG" else "image/png"

    photos.clean_photo = certificates.clean_photo = legacy_clean_photo
from api.cli import main
sys.exit(main(sys.argv[2:]))
"""


def status_kib(pid: int, field: str) -> int:
    """A ``VmHWM``/``VmRSS`` line of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def noise_jpeg(side: int, quality: int) -> bytes:
    """A ``side`` x ``side`` JPEG of random noise (large: nothing for the encoder to compress)."""
    picture = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def smooth_jpeg(side: int) -> bytes:
    """A ``side`` x ``side`` JPEG of colour gradients: small (within the default photo limit), same pixel count."""
    radial = Image.radial_gradient("L").resize((side, side))
    linear = Image.linear_gradient("L").resize((side, side))
    picture = Image.merge("RGB", (radial, linear, radial.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=85)
    return out.getvalue()


def small_jpeg() -> bytes:
    """A small JPEG for the warm-up upload."""
    out = io.BytesIO()
    Image.new("RGB", (120, 160), (200, 150, 120)).save(out, format="JPEG")
    return out.getvalue()


def issuance_body(photo: bytes, n: int) -> bytes:
    """An issuance request for the demo issuer carrying ``photo`` (built as bytes: it is megabytes long)."""
    today = datetime.now(CST).date().isoformat()
    name = "张伟" + "零一二三四五六七八九"[n % 10]  # names are letters only
    head = (
        f'{{"holder_name": "{name}", "holder_id_number": "{demo.demo_id_number("19900307", "123")}", '
        f'"operation": "2.1", "issue_date": "{today}", "photo_base64": "'
    )
    return head.encode() + base64.b64encode(photo) + b'"}'


def run_server(mode: str, folder: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Migrate a fresh database and start the server on it; return the process and its base URL."""
    return start_demo_server(BOOT, mode, folder, env)


def measure(mode: str, folder: Path, env: dict[str, str], bodies: list[bytes]) -> dict[str, float | str]:
    """Start a server, warm it up, fire the uploads at once; return memory figures and answers."""
    server, base = run_server(mode, folder, env)
    headers = {"Authorization": f"Bearer {DEMO_ISSUER_API_KEY}", "Content-Type": "application/json"}
    try:
        warm = httpx.post(f"{base}/v1/certificates", content=issuance_body(small_jpeg(), 0), headers=headers)
        assert warm.status_code == 201, warm.text
        before_hwm, before_rss = status_kib(server.pid, "VmHWM"), status_kib(server.pid, "VmRSS")
        statuses: list[int] = []
        barrier = threading.Barrier(len(bodies))

        def upload(body: bytes) -> None:
            barrier.wait()
            try:
                response = httpx.post(f"{base}/v1/certificates", content=body, headers=headers, timeout=120)
                statuses.append(response.status_code)
            except httpx.HTTPError:
                statuses.append(0)

        threads = [threading.Thread(target=upload, args=(body,)) for body in bodies]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        after_hwm = status_kib(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(timeout=30)
    answers = ", ".join(f"{count}x {code}" for code, count in sorted(Counter(statuses).items()))
    return {
        "before": before_rss / 1024,
        "before_hwm": before_hwm / 1024,
        "after": after_hwm / 1024,
        "seconds": elapsed,
        "answers": answers,
    }


def run(kind: str, photo: bytes, args: argparse.Namespace) -> None:
    """Measure the shipped and the previous photo cleaner under the same uploads; print them side by side."""
    bodies = [issuance_body(photo, n) for n in range(args.uploads)]
    body_bytes = max(len(body) for body in bodies)
    env = {name: value for name, value in os.environ.items() if not name.startswith("CERTSEAL_")}
    env["PYTHONPATH"] = str(ROOT)
    if len(photo) > 512_000:  # over the default CERTSEAL_MAX_PHOTO_BYTES: raise the limits for this photo
        env |= {"CERTSEAL_MAX_PHOTO_BYTES": str(len(photo) + 1024), "CERTSEAL_MAX_BODY_BYTES": str(body_bytes + 4096)}
    print(
        f"\n{args.uploads} concurrent uploads of one {args.side}x{args.side} {kind} JPEG "
        f"({len(photo) / 2**20:.2f} MiB, {body_bytes / 2**20:.2f} MiB request body each)"
    )
    modes = ["current"] if args.only_current else ["current", "legacy"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            results[mode] = measure(mode, Path(tmp), env, bodies)
    names = {"current": "draft + 2 decode slots (now)", "legacy": "full decode, unbounded (before)"}
    print(f"{'photo cleaner':<34}{'RSS before':>12}{'peak after':>12}{'growth':>11}{'wall s':>9}  answers")
    for mode, figures in results.items():
        growth = float(figures["after"]) - float(figures["before_hwm"])
        print(
            f"{names[mode]:<34}{figures['before']:>8.0f} MiB{figures['after']:>8.0f} MiB"
            f"{growth:>7.0f} MiB{figures['seconds']:>9.1f}  {figures['answers']}"
        )


def main() -> int:
    """Run the chosen photos."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", choices=["noise", "smooth", "both"], default="both")
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--quality", type=int, default=25, help="JPEG quality of the noise image (its size)")
    parser.add_argument("--only-current", action="store_true", help="skip the previous cleaner")
    args = parser.parse_args()
    if args.image in ("noise", "both"):
        run("noise", noise_jpeg(args.side, args.quality), args)
    if args.image in ("smooth", "both"):
        run("smooth", smooth_jpeg(args.side), args)
    print("\nRSS before: resident memory after start-up and one small upload; peak after: VmHWM after the uploads;")
    print("growth: peak after minus the peak before the uploads.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

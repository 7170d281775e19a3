#!/usr/bin/env python3
"""Generate camera-like 640x480 test frames of certificate QR codes.

Each frame holds one real QR code (version 13, error correction Q) carrying a
certificate URL of the form https://cert.example.gov.cn/c1#<460 digits>,
printed on white paper lying on a grey desk, seen by a phone camera: placed at
a random position, rotated, tilted (perspective), rendered with 4x
supersampling and box-downsampled to 640x480, then degraded by lighting
(dim, low contrast, uneven illumination), gaussian blur, sensor noise and,
for the "camera" mixes, JPEG compression.

Writes OUTDIR/<condition>_<nn>.png and OUTDIR/manifest.json:
  {"width": 640, "height": 480,
   "conditions": [{"name", "desc"}...],
   "frames": [{"file", "condition", "text", "version"}...]}

Usage: python3 make_frames.py OUTDIR [--per-condition N] [--seed S]
Needs: qrcode, pillow, numpy.
"""

import argparse
import io
import json
import os
import random

import numpy as np
import qrcode
from PIL import Image, ImageFilter

W, H = 640, 480
SS = 4  # supersampling factor for geometry rendering
PREFIX = "https://cert.example.gov.cn/c1#"
N_DIGITS = 460
PAPER_MARGIN = 8  # modules of white paper around the 4-module quiet zone

# name -> parameters. Values given as (lo, hi) are drawn uniformly per frame.
#   mod: module size in frame pixels; rot: |rotation| in degrees (random sign);
#   tilt: keystone strength (0 = none, 0.15 = one edge 15% shorter);
#   blur: gaussian sigma in frame pixels; light: paper white level (0..1);
#   ink: ink reflectance (0.06 = black toner; higher = low contrast);
#   flare: additive veiling glare (0..1); noise: gaussian sigma in 8-bit levels;
#   grad: illumination gradient amplitude; jpeg: JPEG quality or None.
BASE = dict(
    mod=(4.2, 5.0),
    rot=(0, 2),
    tilt=(0, 0.03),
    blur=0.5,
    light=(0.85, 0.95),
    ink=0.06,
    flare=0.0,
    noise=2.0,
    grad=(0.0, 0.1),
    jpeg=None,
)
CONDITIONS = [
    ("clean", "sharp, well lit, module ~4.6px", {}),
    ("blur1.0", "gaussian blur sigma 1.0px", dict(blur=1.0)),
    ("blur1.5", "gaussian blur sigma 1.5px", dict(blur=1.5)),
    ("blur2.0", "gaussian blur sigma 2.0px", dict(blur=2.0)),
    ("blur2.5", "gaussian blur sigma 2.5px", dict(blur=2.5)),
    ("dim", "paper white ~0.25 (~64/255), noise 4", dict(light=(0.22, 0.28), noise=4.0)),
    (
        "lowcontrast",
        "ink 0.55 + glare: ~45 levels between ink and paper",
        dict(ink=0.55, flare=0.15, light=(0.55, 0.65)),
    ),
    ("dim+lowcontrast", "white ~70, black ~45, noise 4", dict(ink=0.5, light=(0.25, 0.3), flare=0.02, noise=4.0)),
    ("noise12", "gaussian noise sigma 12 levels", dict(noise=12.0)),
    ("noise24", "gaussian noise sigma 24 levels", dict(noise=24.0)),
    ("rot5", "rotation 3-7 deg", dict(rot=(3, 7))),
    ("rot12", "rotation 10-14 deg", dict(rot=(10, 14))),
    ("rot25", "rotation 20-30 deg", dict(rot=(20, 30))),
    ("tilt", "perspective keystone 10-20%, rot 0-8 deg", dict(tilt=(0.10, 0.20), rot=(0, 8))),
    ("small", "far away: module 2.6-3.2px", dict(mod=(2.6, 3.2))),
    (
        "camera",
        "mix: module 3.6-4.6, blur 1.2, white ~0.5, ink 0.3, noise 6, rot 0-8, tilt 0-10%, gradient, JPEG 70",
        dict(
            mod=(3.6, 4.6),
            blur=1.2,
            light=(0.45, 0.55),
            ink=0.3,
            flare=0.03,
            noise=6.0,
            rot=(0, 8),
            tilt=(0, 0.10),
            grad=(0.2, 0.4),
            jpeg=70,
        ),
    ),
    (
        "camera-hard",
        "mix: module 3.2-4.0, blur 1.6, white ~0.35, ink 0.45, noise 8, rot 0-12, tilt 5-15%, gradient, JPEG 60",
        dict(
            mod=(3.2, 4.0),
            blur=1.6,
            light=(0.3, 0.4),
            ink=0.45,
            flare=0.03,
            noise=8.0,
            rot=(0, 12),
            tilt=(0.05, 0.15),
            grad=(0.3, 0.5),
            jpeg=60,
        ),
    ),
]


def draw(rng, v):
    return rng.uniform(*v) if isinstance(v, tuple) else v


def make_qr(rng):
    text = PREFIX + "".join(rng.choice("0123456789") for _ in range(N_DIGITS))
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_Q, border=4)
    qr.add_data(text, optimize=20)  # byte segment for the URL, numeric for the digits
    qr.make(fit=True)
    m = np.array(qr.get_matrix(), dtype=bool)  # includes the 4-module quiet zone
    return text, qr.version, m


def perspective_coeffs(dst, src):
    """Coefficients for PIL PERSPECTIVE mapping output points dst -> input points src."""
    a = []
    b = []
    for (x, y), (u, v) in zip(dst, src, strict=False):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        b.append(u)
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b.append(v)
    return np.linalg.solve(np.array(a, float), np.array(b, float)).tolist()


def render(rng, matrix, p):
    n = matrix.shape[0]  # modules incl. quiet zone
    side_mod = n + 2 * PAPER_MARGIN
    # reflectance image of the paper with the QR code, 8 px per module (nearest)
    px = 8
    refl = np.ones((side_mod, side_mod), np.float32)
    refl[PAPER_MARGIN : PAPER_MARGIN + n, PAPER_MARGIN : PAPER_MARGIN + n] = np.where(matrix, p["ink"], 1.0)
    src = Image.fromarray((refl * 255).astype(np.uint8), "L").resize((side_mod * px, side_mod * px), Image.NEAREST)

    mod = draw(rng, p["mod"])
    rot = np.radians(draw(rng, p["rot"]) * rng.choice([-1, 1]))
    tilt = draw(rng, p["tilt"])
    # unit square corners (paper), keystone along a random axis, then rotate
    half = side_mod * mod / 2
    sq = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    if tilt:
        axis = rng.choice([0, 1])
        sign = rng.choice([-1, 1])
        other = 1 - axis
        sq[:, other] *= 1 + sign * tilt * sq[:, axis]
    c, s = np.cos(rot), np.sin(rot)
    quad = sq @ np.array([[c, s], [-s, c]]) * half
    # the QR (incl. quiet zone) must stay inside the frame; paper may be clipped
    qr_frac = n / side_mod
    qr_quad = quad * qr_frac
    lo = -qr_quad.min(axis=0) + 2
    hi = np.array([W, H]) - qr_quad.max(axis=0) - 2
    if np.any(hi < lo):  # too big: shrink around the centre
        centre = np.array([W / 2, H / 2])
    else:
        centre = np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1])])
    dst = (quad + centre) * SS
    S = side_mod * px
    src_pts = [(0, 0), (S, 0), (S, S), (0, S)]
    coeffs = perspective_coeffs([tuple(d) for d in dst], src_pts)

    bg_level = rng.uniform(0.3, 0.5)
    big = Image.new("L", (W * SS, H * SS), int(bg_level * 255))
    mask = Image.new("L", src.size, 255)
    warped = src.transform(big.size, Image.PERSPECTIVE, coeffs, Image.BILINEAR)
    wmask = mask.transform(big.size, Image.PERSPECTIVE, coeffs, Image.NEAREST)
    big.paste(warped, (0, 0), wmask)
    img = big.resize((W, H), Image.BOX)  # sensor integration / antialiasing

    if p["blur"] > 0:
        img = img.filter(ImageFilter.GaussianBlur(p["blur"]))
    r = np.asarray(img, np.float32) / 255.0

    # illumination: level * (1 + linear gradient) * vignette, plus veiling glare
    light = draw(rng, p["light"])
    grad = draw(rng, p["grad"])
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    g = ((xx - W / 2) * np.cos(ang) + (yy - H / 2) * np.sin(ang)) / (W / 2)
    vign = 1 - 0.25 * (((xx - W / 2) / W) ** 2 + ((yy - H / 2) / H) ** 2) * 4
    illum = light * (1 + grad * g) * vign
    out = r * illum + p["flare"]
    out = out * 255.0
    # sensor noise: gaussian, slightly per channel, plus a tiny colour cast
    cast = np.array([rng.uniform(0.95, 1.05), 1.0, rng.uniform(0.9, 1.05)], np.float32)
    nrs = np.random.default_rng(rng.getrandbits(32))
    rgb = out[..., None] * cast + nrs.normal(0, p["noise"], (H, W, 3)).astype(np.float32)
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    im = Image.fromarray(rgb, "RGB")
    if p["jpeg"]:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=p["jpeg"])
        buf.seek(0)
        im = Image.open(buf).convert("RGB")
    return im


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--per-condition", type=int, default=30)
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--only", help="comma-separated condition names")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    only = set(a.only.split(",")) if a.only else None
    frames = []
    conds = []
    for name, desc, over in CONDITIONS:
        if only and name not in only:
            continue
        conds.append({"name": name, "desc": desc})
        p = dict(BASE, **over)
        rng = random.Random(f"{a.seed}/{name}")
        for i in range(a.per_condition):
            text, version, m = make_qr(rng)
            im = render(rng, m, p)
            fn = f"{name}_{i:02d}.png"
            im.save(os.path.join(a.outdir, fn), compress_level=1)
            frames.append({"file": fn, "condition": name, "text": text, "version": version})
    with open(os.path.join(a.outdir, "manifest.json"), "w") as f:
        json.dump({"width": W, "height": H, "conditions": conds, "frames": frames}, f)
    print(f"wrote {len(frames)} frames to {a.outdir}")


if __name__ == "__main__":
    main()

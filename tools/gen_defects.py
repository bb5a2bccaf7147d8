#!/usr/bin/python3
"""Synthesises a NEU-like metal-surface defect dataset as an image folder:
OUT_DIR/train/<class>/*.png and OUT_DIR/test/<class>/*.png, 8-bit grayscale,
square. Classes: the six NEU surface defects plus `ok` (defect-free).

Each image is a steel-like background (brushed grain along a random direction,
fine noise, mottling, a lighting gradient, slight vignetting) with one defect
drawn at a random position, size, orientation and contrast. Contrast is
measured against the background's own texture: about one defect in five is
faint (below the grain's amplitude), so the task is not trivially separable;
the others are 2 to 5 times the texture's amplitude.
Every image draws from its own generator keyed by (seed, class, index): the
same seed gives the same bytes, and images do not depend on each other.

    gen_defects.py OUT_DIR [--per-class N] [--size 200] [--seed S]
                   [--val-fraction F | --split TRAIN,TEST] [--force]

OUT_DIR is written complete or not at all (built in a temporary folder beside
it, then renamed); an existing non-empty OUT_DIR is refused unless --force."""
import argparse
import math
import os
import shutil
import struct
import sys
import tempfile
import time
import zlib

# Small matrix products per image: BLAS threads would only contend.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

CLASSES = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches", "ok"]
FAINT_PROBABILITY = 0.2
# Contrast of the other defects, in texture amplitudes. From 1.2 (the first
# version) a third of the defects at 48x48 were lost in the lighting and the
# mottling, not just the faint fifth: a ResNet-20 trained for 25 min on 2 cores
# stayed below 60 %. From 2.0 every clear defect stands out of the grain.
CLEAR_CONTRAST = (2.0, 5.0)


# ---------------------------------------------------------------------------
# PNG (grayscale, 8 bit, no interlace): signature, IHDR, one IDAT, IEND.

def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_gray(pixels):
    """PNG bytes of a (h, w) uint8 array; every row uses filter 0 (None)."""
    h, w = pixels.shape
    rows = np.zeros((h, w + 1), dtype=np.uint8)
    rows[:, 1:] = pixels
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) +
            png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + png_chunk(b"IEND", b""))


# ---------------------------------------------------------------------------
# Fields over the unit square; pixel centres at ((j + 0.5) / n, (i + 0.5) / n).

def smooth_field(rng, n, cells):
    """(n, n) smooth random field, about unit variance: a (cells+2)^2 grid of
    normal values interpolated with smoothstep weights."""
    grid = rng.standard_normal((cells + 2, cells + 2))
    t = (np.arange(n) + 0.5) / n * cells
    i = t.astype(np.int64)
    f = t - i
    f = f * f * (3.0 - 2.0 * f)
    rows = grid[i] * (1.0 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1.0 - f)[None, :] + rows[:, i + 1] * f[None, :]


def gaussian_blur(img, sigma_px):
    """Separable Gaussian blur as two matrix products (edges renormalised)."""
    n = img.shape[0]
    d = np.arange(n)[:, None] - np.arange(n)[None, :]
    k = np.exp(-0.5 * (d / sigma_px) ** 2)
    k /= k.sum(axis=1, keepdims=True)
    return k @ img @ k.T


def segment_distance(x, y, x0, y0, x1, y1):
    """Distance from every pixel centre to the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / max(length2, 1e-12), 0.0, 1.0)
    return np.hypot(x - (x0 + t * dx), y - (y0 + t * dy))


def polyline_mask(x, y, points, width):
    """Soft line of Gaussian profile (std `width`) through points, max over
    segments; each segment only touches the pixels within 4 widths of it."""
    n = x.shape[0]
    mask = np.zeros_like(x)
    reach = 4.0 * width
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        c0 = max(0, int((min(x0, x1) - reach) * n))
        c1 = min(n, int((max(x0, x1) + reach) * n) + 1)
        r0 = max(0, int((min(y0, y1) - reach) * n))
        r1 = min(n, int((max(y0, y1) + reach) * n) + 1)
        if c0 >= c1 or r0 >= r1:
            continue
        d = segment_distance(x[r0:r1, c0:c1], y[r0:r1, c0:c1], x0, y0, x1, y1)
        np.maximum(mask[r0:r1, c0:c1], np.exp(-0.5 * (d / width) ** 2), out=mask[r0:r1, c0:c1])
    return mask


def soft_inside(r, sharpness):
    """About 1 where r < 1 and 0 where r > 1, with a logistic edge (no overflow)."""
    return 0.5 - 0.5 * np.tanh(0.5 * sharpness * (r - 1.0))


def ellipse_radius(x, y, cx, cy, rx, ry, angle):
    """Normalised radius of the rotated ellipse: 1 on its boundary."""
    c, s = math.cos(angle), math.sin(angle)
    u = (x - cx) * c + (y - cy) * s
    v = -(x - cx) * s + (y - cy) * c
    return np.sqrt((u / rx) ** 2 + (v / ry) ** 2)


def random_walk(rng, start, heading, n_steps, step, turn):
    points = [start]
    for _ in range(n_steps):
        heading += rng.uniform(-turn, turn)
        x, y = points[-1]
        points.append((x + step * math.cos(heading), y + step * math.sin(heading)))
    return points


# ---------------------------------------------------------------------------
# Background and defects. Every defect returns a mask (about 0..1) and a sign.

def background(rng, n, x, y):
    """(image, texture amplitude, grain direction) of a brushed steel surface."""
    grain_angle = rng.uniform(0.0, math.pi)
    across = -x * math.sin(grain_angle) + y * math.cos(grain_angle)  # constant along the grain
    profile = rng.standard_normal(4 * n + 8)
    profile = np.convolve(profile, [0.25, 0.5, 0.25], mode="same")
    grid = np.linspace(-1.5, 1.5, profile.size)
    grain_amp = rng.uniform(0.025, 0.06)
    noise_sd = rng.uniform(0.01, 0.035)
    grain = np.interp(across, grid, profile) * (0.6 + 0.25 * smooth_field(rng, n, 3))
    img = rng.uniform(0.38, 0.62) + grain_amp * grain
    img += rng.uniform(0.01, 0.04) * smooth_field(rng, n, int(rng.integers(3, 8)))
    img += rng.uniform(-0.15, 0.15) * (x - 0.5) + rng.uniform(-0.15, 0.15) * (y - 0.5)
    vx, vy = rng.uniform(0.3, 0.7, size=2)
    img -= rng.uniform(0.0, 0.15) * ((x - vx) ** 2 + (y - vy) ** 2)
    img += noise_sd * rng.standard_normal((n, n))
    return img, grain_amp + noise_sd, grain_angle


def defect_crazing(rng, n, x, y, grain_angle):
    """A net of fine cracks: short turning random walks inside a round region."""
    cx, cy = rng.uniform(0.25, 0.75, size=2)
    radius = rng.uniform(0.2, 0.55)
    width = rng.uniform(0.5, 0.9) / n
    mask = np.zeros_like(x)
    for _ in range(int(rng.integers(8, 22))):
        r, a = radius * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
        start = (cx + r * math.cos(a), cy + r * math.sin(a))
        walk = random_walk(rng, start, rng.uniform(0, 2 * math.pi), int(rng.integers(2, 6)),
                           rng.uniform(0.03, 0.09), 0.9)
        np.maximum(mask, polyline_mask(x, y, walk, width), out=mask)
    return mask, -1.0


def defect_inclusion(rng, n, x, y, grain_angle):
    """A few elongated dark bodies roughly along the rolling direction, ragged edges."""
    mask = np.zeros_like(x)
    cx, cy = rng.uniform(0.15, 0.85, size=2)
    for _ in range(int(rng.integers(1, 5))):
        length = rng.uniform(0.04, 0.18)
        ratio = rng.uniform(2.0, 6.0)
        px, py = cx + rng.uniform(-0.12, 0.12), cy + rng.uniform(-0.12, 0.12)
        r = ellipse_radius(x, y, px, py, length, max(length / ratio, 1.2 / n),
                           grain_angle + rng.uniform(-0.3, 0.3))
        ragged = 1.0 + 0.25 * smooth_field(rng, n, 12)
        np.maximum(mask, soft_inside(r * ragged, 6.0), out=mask)
    return mask, -1.0 if rng.uniform() < 0.85 else 1.0


def defect_patches(rng, n, x, y, grain_angle):
    """Large irregular blotches: a smooth field thresholded inside a wide envelope."""
    cx, cy = rng.uniform(0.25, 0.75, size=2)
    envelope = ellipse_radius(x, y, cx, cy, rng.uniform(0.2, 0.45), rng.uniform(0.15, 0.4),
                              rng.uniform(0, math.pi))
    field = smooth_field(rng, n, int(rng.integers(4, 9)))
    blotch = soft_inside(rng.uniform(-0.5, 0.5) - field + 1.0, 6.0)
    mask = blotch * np.clip(1.6 - envelope, 0.0, 1.0)
    return mask, -1.0 if rng.uniform() < 0.7 else 1.0


def defect_pitted(rng, n, x, y, grain_angle):
    """Many small round pits scattered over a region."""
    cx, cy = rng.uniform(0.2, 0.8, size=2)
    rx, ry = rng.uniform(0.12, 0.45, size=2)
    count = int(rng.integers(12, 70))
    r = np.sqrt(rng.uniform(size=count))
    a = rng.uniform(0, 2 * math.pi, size=count)
    rows = np.clip(((cy + ry * r * np.sin(a)) * n).astype(np.int64), 0, n - 1)
    cols = np.clip(((cx + rx * r * np.cos(a)) * n).astype(np.int64), 0, n - 1)
    impulses = np.zeros((n, n))
    np.add.at(impulses, (rows, cols), rng.uniform(0.5, 1.0, size=count))
    sigma = rng.uniform(0.6, 1.6) * max(1.0, n / 100.0)
    mask = np.clip(gaussian_blur(impulses, sigma) * (2 * math.pi * sigma * sigma), 0.0, 1.5)
    return mask, -1.0


def defect_rolled_in_scale(rng, n, x, y, grain_angle):
    """Flakes of scale pressed into the surface: small textured blobs along the grain."""
    mask = np.zeros_like(x)
    texture = 0.6 + 0.4 * np.clip(smooth_field(rng, n, max(8, n // 8)), -1.0, 1.0)
    band = rng.uniform(-0.3, 0.3)  # offset of the band of flakes across the grain
    c, s = math.cos(grain_angle), math.sin(grain_angle)
    for _ in range(int(rng.integers(4, 16))):
        size = rng.uniform(0.015, 0.06)
        along, across = rng.uniform(-0.4, 0.4), band + rng.uniform(-0.12, 0.12)
        px, py = 0.5 + along * c - across * s, 0.5 + along * s + across * c
        r = ellipse_radius(x, y, px, py, size * rng.uniform(1.0, 2.5), max(size, 1.0 / n),
                           grain_angle + rng.uniform(-0.4, 0.4))
        np.maximum(mask, soft_inside(r, 5.0), out=mask)
    return mask * texture, -1.0


def defect_scratches(rng, n, x, y, grain_angle):
    """One to three long thin lines, slightly curved, bright or dark."""
    mask = np.zeros_like(x)
    for _ in range(int(rng.integers(1, 4))):
        length = rng.uniform(0.3, 1.0)
        steps = int(rng.integers(3, 8))
        start = tuple(rng.uniform(0.05, 0.95, size=2))
        walk = random_walk(rng, start, rng.uniform(0, 2 * math.pi), steps, length / steps, 0.15)
        width = rng.uniform(0.5, 1.5) / n
        fade = 0.6 + 0.4 * np.clip(smooth_field(rng, n, 4), -1.0, 1.0)
        np.maximum(mask, polyline_mask(x, y, walk, width) * fade, out=mask)
    return mask, 1.0 if rng.uniform() < 0.6 else -1.0


def defect_none(rng, n, x, y, grain_angle):
    return np.zeros_like(x), -1.0


# Contrast gain per class: patches and scratches spread their contrast over
# large or thin areas and would otherwise hide in the mottling and the grain.
GAIN = {"patches": 1.8, "scratches": 1.4}

DEFECTS = {
    "crazing": defect_crazing,
    "inclusion": defect_inclusion,
    "patches": defect_patches,
    "pitted_surface": defect_pitted,
    "rolled-in_scale": defect_rolled_in_scale,
    "scratches": defect_scratches,
    "ok": defect_none,
}


def distractors(rng, n, x, y, grain_angle):
    """Faint harmless marks on any image (a few specks, a short streak along the
    grain), so that no single small mark decides a class."""
    mask = np.zeros_like(x)
    if rng.uniform() < 0.5:
        count = int(rng.integers(1, 5))
        rows = rng.integers(0, n, size=count)
        cols = rng.integers(0, n, size=count)
        impulses = np.zeros((n, n))
        np.add.at(impulses, (rows, cols), 1.0)
        sigma = 0.8 * max(1.0, n / 100.0)
        mask += np.clip(gaussian_blur(impulses, sigma) * (2 * math.pi * sigma * sigma), 0.0, 1.0)
    if rng.uniform() < 0.3:
        start = tuple(rng.uniform(0.1, 0.9, size=2))
        length = rng.uniform(0.1, 0.3)
        end = (start[0] + length * math.cos(grain_angle), start[1] + length * math.sin(grain_angle))
        mask = np.maximum(mask, polyline_mask(x, y, [start, end], 0.7 / n))
    return mask


def make_image(seed, class_index, index, n):
    """One (n, n) uint8 image of CLASSES[class_index], number `index` of its class."""
    rng = np.random.default_rng([seed, class_index, index])
    coords = (np.arange(n) + 0.5) / n
    x, y = np.meshgrid(coords, coords)
    img, texture, grain_angle = background(rng, n, x, y)
    mask, sign = DEFECTS[CLASSES[class_index]](rng, n, x, y, grain_angle)
    if rng.uniform() < FAINT_PROBABILITY:
        contrast = rng.uniform(0.4, 1.0) * texture
    else:
        contrast = rng.uniform(CLEAR_CONTRAST[0], CLEAR_CONTRAST[1]) * texture
    img += sign * contrast * GAIN.get(CLASSES[class_index], 1.0) * mask
    img -= rng.uniform(0.3, 0.8) * texture * distractors(rng, n, x, y, grain_angle)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------

def parse_split(text):
    parts = text.split(",")
    try:
        counts = [int(p) for p in parts]
    except ValueError:
        counts = []
    if len(counts) != 2 or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not TRAIN,TEST (two counts per class, each >= 1)")
    return counts


def parse_args(argv):
    p = argparse.ArgumentParser(description="Synthesise a NEU-like metal-surface defect image folder.")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--per-class", type=int, default=None, help="images per class, train + test (default 300)")
    p.add_argument("--size", type=int, default=200, help="image side in pixels (default 200, as NEU)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same bytes")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--val-fraction", type=float, default=None,
                       help="fraction of each class written to test/ (default 0.2)")
    group.add_argument("--split", type=parse_split, default=None, metavar="TRAIN,TEST",
                       help="images per class in train/ and test/ (instead of --per-class)")
    p.add_argument("--force", action="store_true", help="replace an existing non-empty OUT_DIR")
    a = p.parse_args(argv)
    if a.size < 8 or a.size > 4096:
        p.error("--size must be between 8 and 4096")
    if a.seed < 0:
        p.error("--seed must be >= 0")
    if a.split is not None:
        if a.per_class is not None:
            p.error("--per-class and --split are exclusive (--split gives the counts)")
        a.n_train, a.n_test = a.split
    else:
        fraction = 0.2 if a.val_fraction is None else a.val_fraction
        a.per_class = 300 if a.per_class is None else a.per_class
        if not 0.0 < fraction < 1.0:
            p.error("--val-fraction must be in (0, 1)")
        if a.per_class < 2:
            p.error("--per-class must be >= 2 (at least one train and one test image)")
        a.n_test = min(max(1, round(a.per_class * fraction)), a.per_class - 1)
        a.n_train = a.per_class - a.n_test
    return a


def write_dataset(root, a):
    for split, first, count in (("train", 0, a.n_train), ("test", a.n_train, a.n_test)):
        for k, name in enumerate(CLASSES):
            folder = os.path.join(root, split, name)
            os.makedirs(folder)
            for index in range(first, first + count):
                data = png_gray(make_image(a.seed, k, index, a.size))
                with open(os.path.join(folder, f"{name}_{index:05d}.png"), "wb") as f:
                    f.write(data)


def main(argv):
    a = parse_args(argv)
    out = os.path.abspath(a.out_dir)
    if os.path.lexists(out):
        if not os.path.isdir(out):
            print(f"gen_defects: error: {a.out_dir}: exists and is not a folder", file=sys.stderr)
            return 2
        if os.listdir(out) and not a.force:
            print(f"gen_defects: error: {a.out_dir}: folder is not empty (--force replaces it)", file=sys.stderr)
            return 2
    parent = os.path.dirname(out)
    started = time.monotonic()
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".gen_defects-", dir=parent)
    except OSError as e:
        print(f"gen_defects: error: {a.out_dir}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        write_dataset(tmp, a)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"gen_defects: error: {a.out_dir}: {e}", file=sys.stderr)
        return 1
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = len(CLASSES) * (a.n_train + a.n_test)
    print(f"gen_defects: {a.out_dir}: {total} images ({len(CLASSES)} classes x {a.n_train} train + {a.n_test} test, "
          f"{a.size}x{a.size}, seed {a.seed}) in {time.monotonic() - started:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""tools/gen_defects.py: the same seed gives byte-identical files, another seed
different ones; every class folder exists in train/ and test/ with the asked
counts; every file decodes (PIL, an independent PNG reader) as 8-bit grayscale
of the asked size; usage errors exit 2 and leave the output alone; 100 images
of 64x64 take well under 10 s."""
import hashlib
import os
import shutil
import subprocess
import sys
import time

from PIL import Image

from check_common import Failures
from refs_common import BUILD

GEN = ["/usr/bin/python3", "tools/gen_defects.py"]
CLASSES = sorted(["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches", "ok"])


def gen(*args):
    p = subprocess.run(GEN + [str(a) for a in args], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def digests(root):
    """{relative path: sha256} of every file under root."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def layout_problems(root, n_train, n_test, size):
    problems = []
    if sorted(os.listdir(root)) != ["test", "train"]:
        problems.append(f"{root}: holds {sorted(os.listdir(root))}, not train/ and test/")
        return problems
    for split, count in (("train", n_train), ("test", n_test)):
        classes = sorted(os.listdir(os.path.join(root, split)))
        if classes != CLASSES:
            problems.append(f"{split}/: classes {classes}")
            continue
        for c in classes:
            files = sorted(os.listdir(os.path.join(root, split, c)))
            if len(files) != count or not all(f.endswith(".png") for f in files):
                problems.append(f"{split}/{c}: {len(files)} files, expected {count} PNGs")
            for f in files:
                with Image.open(os.path.join(root, split, c, f)) as im:
                    im.load()
                    if im.mode != "L" or im.size != (size, size):
                        problems.append(f"{split}/{c}/{f}: {im.mode} {im.size}, expected L {size}x{size}")
    return problems


def main():
    out = os.path.join(BUILD, "gen-defects-e2e")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    a, b, c = (os.path.join(out, n) for n in ("a", "b", "c"))
    failures = Failures()

    for path, seed in ((a, 3), (b, 3), (c, 4)):
        rc, msg = gen(path, "--split", "4,2", "--size", 24, "--seed", seed)
        if rc != 0:
            print("FAIL gen_defects: " + msg)
            return 1
    da, db, dc = digests(a), digests(b), digests(c)
    if da != db:
        failures.append("seed 3 twice: files differ")
    same = [k for k in da if dc.get(k) == da[k]]
    if set(da) != set(dc) or same:
        failures.append(f"seeds 3 and 4: {len(same)} identical files of {len(da)}")
    failures += layout_problems(a, 4, 2, 24)

    d = os.path.join(out, "d")
    rc, msg = gen(d, "--per-class", 5, "--val-fraction", 0.4, "--size", 17, "--seed", 1)
    failures += [f"--per-class 5 --val-fraction 0.4: exit {rc}: {msg}"] if rc else layout_problems(d, 3, 2, 17)

    # Usage errors: exit 2, the existing folder untouched.
    for args in (["--split", "4,2", "--per-class", 6], ["--split", "4"], ["--split", "0,2"],
                 ["--per-class", 1], ["--val-fraction", 1.5], ["--size", 2], []):
        rc, msg = gen(a, *args)
        if rc != 2:
            failures.append(f"gen_defects {args} on a non-empty folder: exit {rc}, expected 2 ({msg.strip()})")
    if digests(a) != da:
        failures.append("a refused run changed the existing folder")
    rc, msg = gen(a, "--split", "1,1", "--size", 24, "--seed", 3, "--force")
    expected = {f"train/{k}/{k}_00000.png" for k in CLASSES} | {f"test/{k}/{k}_00001.png" for k in CLASSES}
    if rc != 0 or set(digests(a)) != expected:
        failures.append(f"--force did not replace the folder with the new, smaller one (exit {rc})")
    leftovers = [n for n in os.listdir(out) if n.startswith(".")]
    if leftovers:
        failures.append(f"temporary folders left: {leftovers}")

    speed = os.path.join(out, "speed")
    started = time.monotonic()
    rc, msg = gen(speed, "--split", "10,5", "--size", 64, "--seed", 9)  # 105 images
    seconds = time.monotonic() - started
    if rc != 0 or seconds > 10.0:
        failures.append(f"105 images of 64x64: exit {rc}, {seconds:.1f} s (limit 10 s)")

    return failures.finish(f"gen_defects: deterministic, layout and PNGs right, usage errors refused; "
                           f"105 images of 64x64 in {seconds:.2f} s", out)


if __name__ == "__main__":
    sys.exit(main())

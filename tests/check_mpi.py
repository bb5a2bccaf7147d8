"""Data-parallel training under `mpirun -np 2` (the MPI build, build-mpi/):

- one process of the MPI build writes the same bytes as the plain build;
- two processes with one thread each, same seed and global batch, end with
  the weights and BatchNormalization running statistics of the one-process
  run, to rounding (tolerance below); --local-bn (per-process statistics) does
  not, which shows the comparison can tell the two apart;
- only process 0 prints progress and writes (one progress line, no stray files);
- L2 pruning of the two-process model chooses the same channels as of the
  one-process model, and compress under mpirun writes once, the same bytes;
- compress --epochs 2 --method hybrid (pruning while fine-tuning) under
  mpirun zeroes the same channels as a one-process run, also on the model
  with BN folded into its convolutions (BN re-inserted on every process);
- a checkpoint of a one-process run interrupted by SIGINT resumes under two
  processes and ends where the uninterrupted two-process run ends;
- a process that fails (its own bad --data, via mpirun's MPMD syntax) stops
  the job: one error line (mpirun -q), the plain build's exit status, no output.

Tolerance. Every figure is max |a - b| over a tensor divided by max |a - w0|,
the size of what training changed in it (BN biases and running means start
at 0, so a scale of the weights themselves would hide differences). Two
processes add the same terms in another order: their partial sums (in
double for BN statistics, float for conv dW) meet in MPI_Allreduce instead
of one loop, and OpenBLAS blocks a 32-image share differently from a
64-image batch. BatchNormalization's backward subtracts nearly equal terms,
so these last-bit differences grow to ~1e-3 of the update in three steps
(seen: 3.8e-3 worst, 3.8e-4 median). The plain build itself differs between
--threads 1 and 2 by 1.8e-2 worst on the same run; 2e-2 is that noise level.
Per-process BN statistics give 0.1 median, 0.9 worst. The resume check runs
12 steps at lr 0.001 (the one-process vs two-process difference grows with
the steps: 1.6e-2 worst after 16 such steps), hence 5e-2; a lost momentum
or a wrong batch position is a difference of order 1.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

from check_common import interrupt_in_second_epoch

BUILD = os.environ.get("BUILD", "build")
MPI_BUILD = os.environ.get("MPI_BUILD", "build-mpi")
PLAIN = os.path.join(BUILD, "onnx-sfp")
SFP = os.path.join(MPI_BUILD, "onnx-sfp")
DATA = "/usr/share/datasets/fashion-mnist"
TOL = 2e-2
TOL_RESUME = 5e-2
MPIRUN = ["mpirun", "-q", "--oversubscribe", "-np", "2"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)
    return ok


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    return p.returncode, p.stdout, p.stderr


def floats(path):
    return {t.name: numpy_helper.to_array(t).astype(np.float64) for t in onnx.load(path).graph.initializer
            if t.data_type == onnx.TensorProto.FLOAT}


def worst_diff(w0, a, b, names=None):
    """Largest max|a - b| / max|a - w0| over the tensors training changed."""
    worst, where = 0.0, ""
    for k in (names if names is not None else a):
        scale = np.abs(a[k] - w0[k]).max()
        if scale == 0:
            continue
        d = np.abs(a[k] - b[k]).max() / scale
        if d > worst:
            worst, where = d, k
    return worst, where


def bn_stats(path):
    m = onnx.load(path)
    return [n.input[k] for n in m.graph.node if n.op_type == "BatchNormalization" for k in (3, 4)]


def zero_channels(path):
    """Per Conv weight, the output channels that are all zero (--keep-masked)."""
    m = onnx.load(path)
    w = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return {n.name: tuple(np.flatnonzero(np.abs(w[n.input[1]]).reshape(w[n.input[1]].shape[0], -1).max(axis=1) == 0))
            for n in m.graph.node if n.op_type == "Conv"}


def main():
    work = tempfile.mkdtemp(prefix="sfp-mpi-")
    p = lambda name: os.path.join(work, name)
    rc, _, err = run([PLAIN, "init", "resnet20", p("r20.onnx"), "--input", "1x28x28", "--classes", "10", "--seed", "1"])
    if not check(rc == 0, "init resnet20" + ("" if rc == 0 else ": " + err.strip())):
        return 1
    # 3 steps of a global batch of 64; small lr so three steps stay near the start.
    common = ["--data", DATA, "--limit", "192", "--epochs", "1", "--batch", "64", "--val-split", "0", "--seed", "3",
              "--lr", "0.01"]
    w0 = floats(p("r20.onnx"))

    rc1, _, _ = run([PLAIN, "train", p("r20.onnx"), p("plain.onnx"), "--threads", "1", "--quiet"] + common)
    rc2, _, _ = run([SFP, "train", p("r20.onnx"), p("one.onnx"), "--threads", "1", "--quiet"] + common)
    check(rc1 == 0 and rc2 == 0 and open(p("plain.onnx"), "rb").read() == open(p("one.onnx"), "rb").read(),
          "one process of the MPI build writes the plain build's bytes")

    rc, _, _ = run([SFP, "train", p("r20.onnx"), p("ref.onnx"), "--threads", "2", "--quiet"] + common)
    check(rc == 0, "one-process reference run (2 threads)")
    before = set(os.listdir(work))
    rc, out, err = run(MPIRUN + [SFP, "train", p("r20.onnx"), p("two.onnx"), "--threads", "1"] + common)
    check(rc == 0, "mpirun -np 2 train" + ("" if rc == 0 else f": exit {rc} {err.strip()[-300:]}"))
    check(out.count("wrote ") == 1 and err.count("epoch 1/1") == 1 and "2 processes" in err,
          "process 0 alone prints (one result line, one progress line naming 2 processes)")
    check(set(os.listdir(work)) - before == {"two.onnx"}, "process 0 alone writes: only two.onnx is new")
    ref, two = floats(p("ref.onnx")), floats(p("two.onnx"))
    stats = bn_stats(p("ref.onnx"))
    params = [k for k in ref if k not in stats]
    d, where = worst_diff(w0, ref, two, params)
    check(d < TOL, f"2 processes x 1 thread: weights equal the one-process run's ({d:.2g} of the update, in {where}; < {TOL})")
    d, where = worst_diff(w0, ref, two, stats)
    check(d < TOL, f"2 processes: BN running statistics equal ({d:.2g} of their change, in {where}; < {TOL})")

    rc, _, _ = run(MPIRUN + [SFP, "train", p("r20.onnx"), p("local.onnx"), "--threads", "1", "--local-bn", "--quiet"] + common)
    d, _ = worst_diff(w0, ref, floats(p("local.onnx")), params)
    check(rc == 0 and d > 10 * TOL, f"--local-bn (per-process statistics) trains differently ({d:.2g} of the update)")

    # Pruning: the same channels from the one- and two-process weights; compress under mpirun writes once.
    masks = []
    for name in ("ref", "two"):
        rc, _, err = run([SFP, "compress", p(name + ".onnx"), p(name + "-small.onnx"), "--epochs", "0", "--rate", "0.5",
                          "--keep-masked", p(name + "-masked.onnx")])
        check(rc == 0, f"compress {name}.onnx" + ("" if rc == 0 else ": " + err.strip()[-200:]))
        masks.append(zero_channels(p(name + "-masked.onnx")))
    check(masks[0] == masks[1] and sum(len(v) for v in masks[0].values()) > 0,
          f"L2 pruning at rate 0.5 removes the same channels ({sum(len(v) for v in masks[0].values())} conv rows zeroed)")
    before = set(os.listdir(work))
    rc, out, _ = run(MPIRUN + [SFP, "compress", p("two.onnx"), p("two-small-mpi.onnx"), "--epochs", "0", "--rate", "0.5"])
    check(rc == 0 and out.count("wrote ") == 1 and set(os.listdir(work)) - before == {"two-small-mpi.onnx"} and
          open(p("two-small.onnx"), "rb").read() == open(p("two-small-mpi.onnx"), "rb").read(),
          "compress under mpirun: one result line, one file, the one-process bytes")

    # Pruning while fine-tuning: the pruner runs on every process, from weights kept identical.
    ft = ["--data", DATA, "--limit", "192", "--epochs", "2", "--batch", "64", "--val-split", "0", "--seed", "3",
          "--lr", "0.01", "--rate", "0.4", "--method", "hybrid", "--quiet"]
    # The same with BN folded into the convolutions: compress re-inserts it on
    # every process from the same calibration images, so they stay identical.
    rc = subprocess.run(["/usr/bin/python3", "tools/fold_bn.py", p("r20.onnx"), p("r20-fused.onnx")],
                        capture_output=True).returncode
    check(rc == 0, "fold_bn.py r20.onnx")
    # (and with distillation and global per-group counts: the teacher runs on each process's share)
    for model, extra in (("r20", []), ("r20-fused", []), ("r20", ["--distill", "--global"])):
        rc1, _, err1 = run([SFP, "compress", p(model + ".onnx"), p("ft-one.onnx"), "--threads", "2",
                            "--keep-masked", p("ft-one-masked.onnx")] + ft + extra)
        rc2, _, err2 = run(MPIRUN + [SFP, "compress", p(model + ".onnx"), p("ft-two.onnx"), "--threads", "1",
                                     "--keep-masked", p("ft-two-masked.onnx")] + ft + extra)
        same = rc1 == 0 and rc2 == 0 and zero_channels(p("ft-one-masked.onnx")) == zero_channels(p("ft-two-masked.onnx"))
        rows = sum(len(v) for v in zero_channels(p("ft-one-masked.onnx")).values()) if rc1 == 0 else 0
        check(same and rows > 0, f"{model} {' '.join(extra)}: compress --epochs 2 --method hybrid: 2 processes choose the channels one "
              f"does ({rows} conv rows zeroed)" + ("" if rc1 == 0 and rc2 == 0 else f": {(err1 + err2).strip()[-300:]}"))

    # Resume with another process count: a one-process run interrupted by SIGINT once
    # epoch 1's checkpoint exists, resumed by two processes.
    long = ["--data", DATA, "--limit", "256", "--epochs", "3", "--batch", "64", "--val-split", "0", "--seed", "3",
            "--lr", "0.001"]
    rc, _, _ = run(MPIRUN + [SFP, "train", p("r20.onnx"), p("full.onnx"), "--threads", "1", "--quiet"] + long)
    check(rc == 0, "uninterrupted two-process run of 3 epochs")
    ck = p("int.ckpt")
    returncode, err = interrupt_in_second_epoch(
        [SFP, "train", p("r20.onnx"), p("int.onnx"), "--threads", "2", "--checkpoint", ck] + long, 0.0, ENV, ck)
    if check(returncode == 1 and "interrupted by SIGINT at epoch 2" in err and not os.path.exists(p("int.onnx")),
             "one-process run interrupted in epoch 2, checkpoint written"):
        rc, _, err = run(MPIRUN + [SFP, "train", p("r20.onnx"), p("int.onnx"), "--threads", "1", "--quiet",
                                   "--resume", ck] + long)
        full = floats(p("full.onnx"))
        d, where = worst_diff(w0, full, floats(p("int.onnx"))) if rc == 0 else (1.0, err.strip()[-200:])
        check(rc == 0 and d < TOL_RESUME,
              f"resumed under 2 processes, ends where the 2-process run does ({d:.2g}, {where}; < {TOL_RESUME})")

    # A process that fails alone stops the job: one error line, the plain build's exit status, nothing written.
    bad = p("no-such-data")
    status, _, _ = run([PLAIN, "train", p("r20.onnx"), p("fail.onnx"), "--quiet"] + common + ["--data", bad])
    rc, out, err = run(["mpirun", "-q", "--oversubscribe", "-np", "1", SFP, "train", p("r20.onnx"), p("fail.onnx"), "--quiet"] +
                       common + [":", "-np", "1", SFP, "train", p("r20.onnx"), p("fail.onnx"), "--quiet"] + common +
                       ["--data", bad])
    lines = [l for l in err.splitlines() if l.startswith("onnx-sfp: error:")]
    check(rc == status != 0 and len(lines) == 1 and len(err.strip().splitlines()) == 1 and "process 1 of 2" in lines[0] and "no-such-data" in lines[0] and
          not os.path.exists(p("fail.onnx")),
          f"process 1 failing to open its data: exit {rc} (plain: {status}), one line ({lines[0] if lines else err.strip()[-200:]}), no OUT")

    shutil.rmtree(work, ignore_errors=True)
    print(("FAIL " if failures else "ok   ") + f"data-parallel training: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Failure bookkeeping shared by the end-to-end checks of detect and gen_defects,
and a training run interrupted in its second epoch (train, mpi)."""
import os
import shutil
import signal
import subprocess
import time


class Failures(list):
    """Messages of failed checks; `compared` counts what was compared."""
    compared = 0

    def check(self, ok, what):
        if not ok:
            self.append(what)
        return ok

    def finish(self, ok_line, work):
        """Prints every failure (or ok_line when none), removes the work folder
        and returns the exit status."""
        for f in self:
            print("FAIL " + f)
        if not self:
            print("ok   " + ok_line)
        shutil.rmtree(work, ignore_errors=True)
        return 1 if self else 0


def interrupt_in_second_epoch(cmd, pause, env=None, after_file=None):
    """Starts cmd (a train run of 2+ epochs), sends SIGINT `pause` seconds after
    its first epoch line (or, with after_file, once that file exists: mpirun
    may pass the line on late), and returns (exit status, stderr)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 180  # the first epoch under ASan on a busy machine
    line = ""
    while time.time() < deadline and p.poll() is None:
        if after_file is not None:
            if os.path.exists(after_file):
                break
            time.sleep(0.05)
            continue
        line = p.stderr.readline()
        if "epoch 1/" in line:
            break
    time.sleep(pause)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    return p.returncode, line + err

"""Failure bookkeeping shared by the end-to-end checks of detect and gen_defects."""
import shutil


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

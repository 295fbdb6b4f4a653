"""Running fastnn in another process to stop it as a user would (Ctrl-C) or as a crash does
(SIGKILL): the process's output read line by line as it comes, each line with the time it came."""
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import fastnn

# the folder that holds the fastnn package under test, for the other processes
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
TIMEOUT = 180


def environment():
    """This environment with the fastnn under test first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])}


def run_code(code, timeout=TIMEOUT):
    """Run ``code`` (dedented) in a new interpreter with the fastnn under test, to its end."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=environment())


class Watched:
    """A process started with ``args`` (``python`` and its arguments), its standard output read
    by a thread into (time.monotonic() of arrival, line) pairs; CLOCK_MONOTONIC is one clock for
    every process of the machine, so times taken in the process compare with these."""

    def __init__(self, args, cwd=None):
        self.process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, cwd=cwd,
                                        env=environment())
        self.lines, self.seen = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()

    @classmethod
    def python(cls, code, *args, cwd=None):
        """A process that runs ``code`` with the arguments ``args``."""
        return cls(["-c", textwrap.dedent(code), *map(str, args)], cwd=cwd)

    def _read(self):
        for line in self.process.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))
        self.lines.put((time.monotonic(), None))

    def wait_for(self, start):
        """The arrival time and the text of the first line (from now on) that starts with
        ``start``; fails the test if the process ends or hangs first."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                when, line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                self.finish()
                pytest.fail(f"the process ended before printing {start!r}:\n{self.report()}")
            self.seen.append(line)
            if line.startswith(start):
                return when, line
        self.process.kill()
        pytest.fail(f"no line {start!r} within {TIMEOUT} s:\n{self.report()}")

    def finish(self):
        """Wait for the end; the exit status (the rest of the output goes into ``seen``)."""
        try:
            self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"the process hung:\n{self.report()}")
        while True:
            _, line = self.lines.get(timeout=TIMEOUT)
            if line is None:
                break
            self.seen.append(line)
        self.errors = self.process.stderr.read()
        return self.process.returncode

    def report(self):
        return "\n".join(self.seen) + "\nstderr:\n" + (getattr(self, "errors", None) or "")

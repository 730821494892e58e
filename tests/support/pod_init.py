"""A pod's init process (what a container's PID 1, e.g. ``tini``, does for the pod-per-task
executor in ``tests/support/pod_executor.py``): run the pod's command, pass SIGTERM/SIGINT on to it,
and when it exits take down whatever it left behind, as the end of a container does. A task's
warm dbt process (``manifest-dag prestart``) runs in a session of its own and outlives the task by
design; without this it would outlive the "pod" too.

It marks itself a child subreaper (``PR_SET_CHILD_SUBREAPER``), so every process the command starts
is reparented here when its parent exits, whatever session it moved to; after the command exits it
SIGTERMs those, waits a little, SIGKILLs what is left and reaps them. Exits with the command's code
(128 + N when a signal N ended it); its last line on stderr says how long the command ran and the
sweep took.

    python tests/support/pod_init.py -- COMMAND [ARGS...]

Standard library only and no imports from the repo: it starts in milliseconds and runs by path.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
#: seconds the leftovers get between SIGTERM and SIGKILL
GRACE = 5.0


def _children() -> list[int]:
    """The pids whose parent is this process (from ``/proc``, which every Linux has)."""
    me, found = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ")"
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.append(int(name))
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _sweep() -> list[int]:
    """SIGTERM, then SIGKILL, every process left in the pod; the pids it found."""
    swept: list[int] = []
    deadline = None
    while True:
        _reap()
        left = _children()
        if not left:
            return swept
        now = time.monotonic()
        if deadline is None:
            deadline = now + GRACE
        sig = signal.SIGTERM if now < deadline else signal.SIGKILL
        for pid in left:
            if pid not in swept:
                swept.append(pid)
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: pod_init.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"pod_init: prctl(PR_SET_CHILD_SUBREAPER) failed: errno {ctypes.get_errno()}", file=sys.stderr)
        return 2
    started = time.monotonic()
    child = subprocess.Popen(argv)

    def forward(signum: int, _frame: object) -> None:
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = child.wait()
    ran = time.monotonic() - started
    swept = _sweep()
    print(f"pod_init: the pod's command exited ({code}) after {ran:.2f} s; stopped {len(swept)} process(es) it "
          f"left in {time.monotonic() - started - ran:.2f} s: {swept}", file=sys.stderr, flush=True)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

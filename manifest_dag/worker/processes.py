"""Child processes of a task: their own session, dead with their parent, output streamed.

The worker starts two kinds of short-lived children, the venv installer and a cold ``dbt``, and
both need the same three things:

- **their own session**, so Airflow's signals to the task's process group reach only the task,
  and stopping a child stops its whole tree (uv's build backends, dbt's adapter threads);
- **a death signal** (Linux ``PR_SET_PDEATHSIG``): a task process killed with SIGKILL (a lost
  worker, an OOM kill) would otherwise leave its installer writing into a venv directory the next
  builder recreates, or dbt running the query that the retry runs again. dbt gets SIGINT, its
  Ctrl-C (it cancels its open queries and exits); an installer gets SIGKILL;
- **a stop that lets dbt cancel** (``stop``, Airflow's ``on_kill``): SIGINT first, then SIGTERM,
  then SIGKILL, with short waits between. dbt catches SIGINT as ``KeyboardInterrupt`` and asks the
  warehouse to cancel each open query (Postgres: ``pg_terminate_backend``) before it exits; SIGTERM
  or SIGKILL end it at once, and a query whose client died keeps running on the warehouse (Postgres
  notices only when it next writes to the client). The waits add up to less than the 5 s after
  which Airflow's supervisor SIGKILLs the task process itself. The child starts with SIGINT's
  default action, even under a parent that ignores it (``nohup``, a shell's background job);
- **line streaming** to a callback, with an optional timeout that kills the tree.

The death signal is set by ``prctl`` from a ``preexec_fn`` rather than by wrapping the argv in
``setpriv --pdeathsig``: it needs no util-linux 2.33+ binary (slim and distroless images lack it)
and no probe subprocess per task process, a program that cannot be started still raises
``OSError`` in the parent (with ``setpriv`` it became exit code 127 and a line of output), and it
checks that the parent did not die before the signal was armed. libc is resolved before ``fork``,
so the child runs nothing but three syscalls before ``exec`` (``signal`` to reset SIGINT, ``prctl``,
``getppid``). Elsewhere than Linux no signal is set.
The warm dbt server is not started here: it must outlive the task (see ``warm``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from manifest_dag.worker import Log

_PR_SET_PDEATHSIG = 1
_SIG_DFL = 0
#: seconds dbt gets after SIGINT to cancel its queries and exit, then after SIGTERM, before SIGKILL
#: (together under Airflow's 5 s between its SIGTERM and its SIGKILL of the task process)
INTERRUPT_GRACE = 3.0
TERM_GRACE = 1.5


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if not (hasattr(libc, "prctl") and hasattr(libc, "signal")):
        return None
    libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)  # a handler is a pointer: all 64 bits set
    libc.signal.restype = ctypes.c_void_p
    return libc


def _prctl() -> Any:
    libc = _libc()
    return None if libc is None else libc.prctl


def parent_death_supported() -> bool:
    """Whether children here can be given a death signal (Linux, with a libc that has prctl)."""
    return _prctl() is not None


def _death_signal_setup(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that gives the child SIGINT's default action and makes it get ``sig`` when
    its parent dies, or None. (libc's ``signal``, not Python's: ``signal.signal`` refuses to run
    outside the main thread, and a task may start dbt from another thread.)"""
    libc = _libc()
    if libc is None:
        return None
    prctl, reset = libc.prctl, libc.signal
    parent = os.getpid()

    def setup() -> None:
        reset(int(signal.SIGINT), _SIG_DFL)  # an ignored SIGINT would be inherited through exec
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return setup


class ChildProcess:
    """One child in its own session with a death signal; its output (stdout and stderr) as lines."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | os.PathLike[str] | None = None,
        death_signal: signal.Signals = signal.SIGKILL,
    ) -> None:
        self.argv = list(argv)
        self.timed_out = False
        self._proc = subprocess.Popen(  # noqa: S603 - an argv list, never a shell string
            self.argv,
            cwd=None if cwd is None else str(cwd),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,
            preexec_fn=_death_signal_setup(death_signal),  # noqa: PLW1509 - two syscalls, see the module doc
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stream(self, on_line: Log, *, timeout: float | None = None) -> int:
        """Each output line (without its newline) to ``on_line`` until the child exits; its exit code.

        After ``timeout`` seconds the child's tree is killed (``timed_out`` says so). If reading
        fails, ``on_line`` raises, or the task is interrupted (Airflow's execution timeout raises
        in the task's main thread), the child is stopped as ``stop`` does before the error
        propagates, so dbt cancels its queries: no child outlives the call that streams it.
        """
        timer = threading.Timer(timeout, self._time_out) if timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                on_line(line.rstrip("\n"))
            return self._proc.wait()
        except BaseException:
            self.stop()
            self._proc.wait()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def stop(self, interrupt_grace: float = INTERRUPT_GRACE, term_grace: float = TERM_GRACE) -> None:
        """Stop the child's tree (Airflow's on_kill): SIGINT, so dbt cancels its open queries;
        SIGTERM if it has not exited after ``interrupt_grace`` seconds; SIGKILL after
        ``term_grace`` more."""
        for sig, grace in ((signal.SIGINT, interrupt_grace), (signal.SIGTERM, term_grace)):
            if self._proc.poll() is not None:
                return
            self._signal(sig)
            try:
                self._proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                pass
        self._signal(signal.SIGKILL)

    def _time_out(self) -> None:
        self.timed_out = True
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)  # its own session: the group id is its pid

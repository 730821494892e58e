"""A warm dbt process: imports dbt once, then runs invocations one at a time.

This file runs with a *worker venv's* Python, which holds dbt but not manifest-dag, so it is a
standalone script using only the standard library and dbt. manifest-dag starts it
(``manifest_dag/worker/warm.py``), in its own session so it outlives the task that started it, and talks
to it over a Unix domain socket with one JSON object per line:

    request   {"args": [...dbt argv without "dbt"...], "cwd": "...", "env": {...},
               "synced": {"fingerprint": "...", "walk": [...]}}   (optional: the workspace sync's
              record of the project copy, checked instead of walking its files; see project_state.py)
    replies   {"log": "a dbt log line", "level": "info"}   (streamed while dbt runs)
              {"note": "what this process did, e.g. reused the parsed project"}
              {"exit": 0|1|2, "error": null|"..."}          (last line)
    ping      {"ping": true}  ->  {"pong": <pid>, "invocations": n, "rss_mb": m}

For run, test, seed, snapshot and build, dbt's manifest.json is not written (``--no-write-json``)
and this process writes ``run_results.json`` from the result object instead (see
``_lean_artifacts``); a request with ``DBT_WRITE_JSON`` set gets all of dbt's artifacts.

The process keeps the project it parsed for the next invocation when nothing it read has
changed (``manifest_reuse.py``, ``project_state.py``: siblings of this file, which Python finds
beside the script).

Each invocation gets its own environment and working directory, restored afterwards, so no secret
of one task is left for the next; afterwards the adapter's connections are closed, so the
warehouse sees no open session and a DuckDB file no lock. The process exits when idle for too
long, after a number of invocations, or above a memory ceiling; manifest-dag starts a new one.

A stopped task cancels its invocation with SIGINT, as Ctrl-C stops dbt: dbt runs in this
process's main thread, where Python raises ``KeyboardInterrupt``, and dbt's runner then asks the
warehouse to cancel each open query before it re-raises. The request gets its last line
(``exit`` 2) and the process exits: an invocation cut anywhere may have left dbt's state half
changed, so the next task gets a fresh process. SIGINT outside an invocation only retires the
process (at once when idle). The task that sent a request keeps its connection open until that
last line, so a connection closed before it means the task died (SIGKILL, a lost worker): the
process then interrupts itself in the same way, rather than finish a run nobody waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import signal
import socket
import sys
import threading
import traceback

try:  # a module of manifest_dag (tests) or a script in a worker venv (siblings on sys.path)
    from .manifest_reuse import ManifestReuse
    from .warm_up import Handover
    from .warm_up import warm_up as _warm_up
except ImportError:  # pragma: no cover - exercised by the server script
    from manifest_reuse import ManifestReuse  # type: ignore[no-redef]
    from warm_up import Handover  # type: ignore[no-redef]
    from warm_up import warm_up as _warm_up  # type: ignore[no-redef]

_CONSOLE_LEVELS = {"info", "warn", "warning", "error"}
#: commands whose result is a RunExecutionResult, written here as run_results.json
_RESULT_COMMANDS = {"run", "test", "seed", "snapshot", "build"}


def _lean_artifacts(args: list[str], cwd: str, env: dict) -> str | None:
    """Skip dbt's manifest.json writes; return where run_results.json goes, or None.

    dbt serialises the whole manifest twice per invocation (after parsing and after the run):
    0.3-0.4 s of a 0.9 s warm one-model run on a small project, more on a large one, for a file
    no task reads. This process holds the run's result object, so it writes run_results.json
    itself. A request that decides for itself is left alone: ``--write-json``/``--no-write-json``
    in its argv or ``DBT_WRITE_JSON`` in its environment (manifest-dag sets it when an
    ``artifacts_callback`` wants the target folder).
    """
    if (
        not args
        or args[0] not in _RESULT_COMMANDS
        or "--write-json" in args
        or "--no-write-json" in args
        or "DBT_WRITE_JSON" in env
    ):
        return None
    target = "target"
    if "--target-path" in args[:-1]:
        target = args[args.index("--target-path") + 1]
    args.append("--no-write-json")
    return os.path.join(cwd, target, "run_results.json")


def _rss_mb() -> float:
    # ru_maxrss is the peak; the current RSS from /proc is what matters for recycling
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _close_connections() -> None:
    """Drop every adapter connection dbt holds (and dbt-duckdb's shared database handle)."""
    try:
        from dbt.adapters.factory import cleanup_connections

        cleanup_connections()
    except Exception:  # noqa: BLE001 - best effort; the DuckDB step below matters most
        pass
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager

        DuckDBConnectionManager.close_all_connections()
    except Exception:  # noqa: BLE001 - not a DuckDB venv
        pass


class _Interrupt:
    """SIGINT's meaning in this process: cancel the running invocation, and retire.

    ``running`` is true while dbt's runner has the invocation; only then does the handler raise
    ``KeyboardInterrupt`` (in the main thread, where dbt runs), or while the process idles in
    ``accept``. Elsewhere (the reply, the clean-up) it only sets ``requested``, so the process
    retires after this request without cutting its clean-up short.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = False
        self.idle = False
        self.requested = False

    def handler(self, signum, frame) -> None:
        self.requested = True
        if self.running or self.idle:
            raise KeyboardInterrupt

    def start(self) -> None:
        with self.lock:
            self.running = True
        if self.requested:  # SIGINT arrived before dbt started: do not start it
            self.stop()
            raise KeyboardInterrupt

    def stop(self) -> None:
        with self.lock:
            self.running = False

    def from_client_gone(self) -> None:
        """The task closed its connection mid-invocation: interrupt ourselves (see the module doc)."""
        with self.lock:
            if self.running:
                os.kill(os.getpid(), signal.SIGINT)


def _watch_client(conn: socket.socket, interrupt: _Interrupt, done: threading.Event) -> None:
    """Until ``done``: if the task's end of ``conn`` closes, cancel the invocation. (``poll``, not
    ``select``: a long-lived process may hold file descriptors above ``select``'s 1024.)"""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    while not done.is_set():
        try:
            if poller.poll(200) and not conn.recv(4096):
                interrupt.from_client_gone()
                return
        except OSError:
            interrupt.from_client_gone()
            return


class _Writer:
    def __init__(self, conn: socket.socket, before_exit=None) -> None:
        self.out = conn.makefile("wb", buffering=0)
        self.broken = False
        #: called once, right before the reply's last line (``exit``): see ``serve``
        self.before_exit = before_exit

    def send(self, obj: dict) -> None:
        if "exit" in obj and self.before_exit is not None:
            hook, self.before_exit = self.before_exit, None
            hook()
        if self.broken:
            return
        try:
            self.out.write(json.dumps(obj).encode() + b"\n")
        except OSError:
            self.broken = True  # the task went away (_watch_client cancels the invocation)


def _invoke(
    runner_cls,
    request: dict,
    writer: _Writer,
    reuse: ManifestReuse | None = None,
    interrupt: _Interrupt | None = None,
) -> None:
    interrupt = interrupt or _Interrupt()
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()

    def on_event(event) -> None:  # dbt's EventMsg
        info = getattr(event, "info", None)
        level = str(getattr(info, "level", "info"))
        if level in _CONSOLE_LEVELS:
            writer.send({"log": getattr(info, "msg", ""), "level": level})

    try:
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request.get("env", {}).items()})
        os.chdir(request.get("cwd") or saved_cwd)
        args = list(request["args"])
        env = request.get("env", {})
        results_path = _lean_artifacts(args, os.getcwd(), env)
        manifest = None
        if reuse is not None:
            reuse.note = lambda text: writer.send({"note": text})
            manifest = reuse.before(args, os.getcwd(), env, request.get("synced"))
        runner = (
            runner_cls(callbacks=[on_event])
            if manifest is None
            else runner_cls(manifest=manifest, callbacks=[on_event])
        )
        try:
            interrupt.start()  # from here a SIGINT raises KeyboardInterrupt inside dbt's runner
            try:
                result = runner.invoke(args)
            finally:
                interrupt.stop()
        except BaseException as exc:
            if reuse is not None:
                reuse.after(env, exc)
            raise
        if reuse is not None:
            reuse.after(env, result.exception)
        if isinstance(result.exception, KeyboardInterrupt):
            raise result.exception  # dbt's runner returns it; reported as a cancel below
        if results_path is not None and hasattr(getattr(result, "result", None), "write"):
            os.makedirs(os.path.dirname(results_path), exist_ok=True)
            result.result.write(results_path)
        if result.success:
            writer.send({"exit": 0, "error": None})
        elif result.exception is not None:
            writer.send({"exit": 2, "error": f"{type(result.exception).__name__}: {result.exception}"})
        else:
            writer.send({"exit": 1, "error": None})
    except KeyboardInterrupt:
        writer.send({"exit": 2, "error": "interrupted: the task was stopped; dbt was asked to cancel its open queries"})
    except BaseException as exc:  # noqa: BLE001 - report, then carry on serving
        writer.send({"exit": 2, "error": "".join(traceback.format_exception_only(type(exc), exc)).strip()})
    finally:
        _close_connections()
        os.environ.clear()
        os.environ.update(saved_env)
        try:
            os.chdir(saved_cwd)
        except OSError:
            os.chdir("/")


def serve(
    path: str,
    idle: float,
    max_invocations: int,
    max_rss_mb: float,
    keep_project: bool = True,
    warm_up: str | None = None,
    warm_up_root: str | None = None,
    warm_up_project: str | None = None,
) -> None:
    interrupt = _Interrupt()
    signal.signal(signal.SIGINT, interrupt.handler)  # also where the parent ignored SIGINT

    # Listen before the slow import: a task that connects meanwhile waits in the backlog for its
    # turn instead of taking this process for dead and starting another (``manifest-dag
    # prestart`` starts this process before the task exists).
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is the owner's only
    try:
        server.bind(path)
    finally:
        os.umask(old_umask)
    mine = os.stat(path).st_ino
    server.listen(4)

    done = 0
    retiring = False

    def stop_listening() -> None:
        """No new task may reach this process: its socket is closed and its file removed (only
        ours: a replacement may already be listening at this path)."""
        server.close()
        try:
            if os.stat(path).st_ino == mine:
                os.unlink(path)
        except FileNotFoundError:
            pass

    def retire_if_due() -> None:
        """Before the task hears its answer: when this was the last invocation, stop listening
        first. Otherwise the task, done, lets the next one connect while this process is still
        winding down; that connection would wait in the backlog and then be dropped (a task
        started, reported as a warm failure and run cold), which on a loaded worker is likely."""
        nonlocal retiring
        if interrupt.requested or done + 1 >= max_invocations or _rss_mb() >= max_rss_mb:
            retiring = True
            stop_listening()

    try:
        try:
            from dbt.cli.main import dbtRunner  # the one slow import this process exists to pay once
        except BaseException:
            # into <slot>.log now: a task waiting on the socket kills this process when it closes
            traceback.print_exc()
            sys.stderr.flush()
            raise

        reuse = ManifestReuse(note=lambda text: None)
        reuse.install(keep_project)
        handover = Handover()  # the msgpack decoded ahead, for the first invocation (warm_up.py)
        if warm_up is not None:
            waiting = lambda: bool(select.select([server], [], [], 0)[0])  # noqa: E731 - a task connected
            print(_warm_up(warm_up, handover, warm_up_root, warm_up_project, waiting), file=sys.stderr, flush=True)
        server.settimeout(idle)
        while not interrupt.requested:
            try:
                interrupt.idle = True
                conn, _ = server.accept()
            except (TimeoutError, KeyboardInterrupt):
                break
            finally:
                interrupt.idle = False
            with conn:
                conn.settimeout(None)
                line = conn.makefile("rb").readline()
                writer = _Writer(conn)
                try:
                    request = json.loads(line)
                except ValueError:
                    writer.send({"exit": 2, "error": "bad request"})
                    continue
                if request.get("ping"):
                    writer.send({"pong": os.getpid(), "invocations": done, "rss_mb": round(_rss_mb(), 1)})
                    continue
                writer.before_exit = retire_if_due
                finished = threading.Event()
                watcher = threading.Thread(target=_watch_client, args=(conn, interrupt, finished), daemon=True)
                watcher.start()

                def note(text: str, to: _Writer = writer) -> None:
                    to.send({"note": text})

                handover.note = note
                try:
                    _invoke(dbtRunner, request, writer, reuse, interrupt)
                finally:
                    handover.drop()  # one-shot: not held for the process's life
                    finished.set()
                    watcher.join(timeout=1.0)
                done += 1
            if retiring or interrupt.requested:
                break  # retire after serving (the next task starts a fresh process), or cancelled:
                # this process's state is not trusted with another invocation
            if done >= max_invocations or _rss_mb() >= max_rss_mb:
                break
    finally:
        stop_listening()


def main(argv: list[str] | None = None) -> int:
    import faulthandler

    faulthandler.enable()  # a crash in a C extension (a driver) leaves its traceback in <slot>.log
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("--idle", type=float, default=600.0)
    parser.add_argument("--max-invocations", type=int, default=500)
    parser.add_argument("--max-rss-mb", type=float, default=2000.0)
    parser.add_argument("--no-keep-project", dest="keep_project", action="store_false")
    parser.add_argument("--warm-up", metavar="MSGPACK", help="warm dbt up before serving ('' = no msgpack)")
    parser.add_argument("--warm-up-root", metavar="DIR", help="the folder the task's workspace copy will be in")
    parser.add_argument("--warm-up-project", metavar="NAME", help="the root project's name (dbt_project.yml)")
    args = parser.parse_args(argv)
    serve(
        args.socket,
        args.idle,
        args.max_invocations,
        args.max_rss_mb,
        args.keep_project,
        args.warm_up,
        args.warm_up_root,
        args.warm_up_project,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

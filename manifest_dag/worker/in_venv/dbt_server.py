"""A warm dbt process: imports dbt once, then runs invocations one at a time.

This file runs with a *worker venv's* Python, which holds dbt but not manifest-dag, so it is a
standalone script using only the standard library and dbt. manifest-dag starts it
(``manifest_dag/worker/warm.py``), in its own session so it outlives the task that started it, and talks
to it over a Unix domain socket with one JSON object per line:

    request   {"args": [...dbt argv without "dbt"...], "cwd": "...", "env": {...}}
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
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import traceback

try:  # a module of manifest_dag (tests) or a script in a worker venv (siblings on sys.path)
    from .manifest_reuse import ManifestReuse
except ImportError:  # pragma: no cover - exercised by the server script
    from manifest_reuse import ManifestReuse  # type: ignore[no-redef]

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


class _Writer:
    def __init__(self, conn: socket.socket) -> None:
        self.out = conn.makefile("wb", buffering=0)
        self.broken = False

    def send(self, obj: dict) -> None:
        if self.broken:
            return
        try:
            self.out.write(json.dumps(obj).encode() + b"\n")
        except OSError:
            self.broken = True  # the task went away; finish the invocation quietly


def _invoke(runner_cls, request: dict, writer: _Writer, reuse: ManifestReuse | None = None) -> None:
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
            manifest = reuse.before(args, os.getcwd(), env)
        runner = (
            runner_cls(callbacks=[on_event])
            if manifest is None
            else runner_cls(manifest=manifest, callbacks=[on_event])
        )
        try:
            result = runner.invoke(args)
        except BaseException as exc:
            if reuse is not None:
                reuse.after(env, exc)
            raise
        if reuse is not None:
            reuse.after(env, result.exception)
        if results_path is not None and hasattr(getattr(result, "result", None), "write"):
            os.makedirs(os.path.dirname(results_path), exist_ok=True)
            result.result.write(results_path)
        if result.success:
            writer.send({"exit": 0, "error": None})
        elif result.exception is not None:
            writer.send({"exit": 2, "error": f"{type(result.exception).__name__}: {result.exception}"})
        else:
            writer.send({"exit": 1, "error": None})
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


def serve(path: str, idle: float, max_invocations: int, max_rss_mb: float, keep_project: bool = True) -> None:
    from dbt.cli.main import dbtRunner  # the one slow import this process exists to pay once

    reuse = ManifestReuse(note=lambda text: None)
    reuse.install(keep_project)

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
    server.settimeout(idle)
    done = 0
    try:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                break
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
                _invoke(dbtRunner, request, writer, reuse)
                done += 1
            if done >= max_invocations or _rss_mb() >= max_rss_mb:
                break  # retire after serving: the next task starts a fresh process
    finally:
        server.close()
        try:  # only our own socket file: a replacement may already be listening at this path
            if os.stat(path).st_ino == mine:
                os.unlink(path)
        except FileNotFoundError:
            pass


def main(argv: list[str] | None = None) -> int:
    import faulthandler

    faulthandler.enable()  # a crash in a C extension (a driver) leaves its traceback in <slot>.log
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("--idle", type=float, default=600.0)
    parser.add_argument("--max-invocations", type=int, default=500)
    parser.add_argument("--max-rss-mb", type=float, default=2000.0)
    parser.add_argument("--no-keep-project", dest="keep_project", action="store_false")
    args = parser.parse_args(argv)
    serve(args.socket, args.idle, args.max_invocations, args.max_rss_mb, args.keep_project)
    return 0


if __name__ == "__main__":
    sys.exit(main())

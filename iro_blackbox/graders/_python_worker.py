"""Worker process of the `python` grader: runs user code `grade(sample, item)`, one call per line.

Started as a plain script (`python _python_worker.py`), so it imports nothing from iro_blackbox.
Protocol, JSON lines on private copies of stdin/stdout (the user's code sees /dev/null as stdin and
its prints go to stderr):
  parent -> {"source", "filename", "function", "memory_mb", "sys_path"}
  worker -> {"ready": true} | {"ready": false, "error": "..."}
  parent -> {"sample": {...}, "item": {...}}      (repeated)
  worker -> {"score": float} | {"error": "..."}
The address-space limit (RLIMIT_AS) is set before the user's code runs, so a runaway allocation
raises MemoryError here instead of taking the machine down. A watchdog thread ends the worker when
its parent dies, even by SIGKILL, so no orphan keeps spinning in a user's endless loop.
"""

import json
import math
import numbers
import os
import sys
import threading
import time
import traceback


def _describe(exc: BaseException, filename: str) -> str:
    where = ""
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        if frames:
            where = f" (line {frames[-1].lineno})"
    except Exception:
        pass
    msg = str(exc)
    if isinstance(exc, MemoryError):
        msg = msg or "out of memory"
    text = f"{type(exc).__name__}: {msg}{where}" if msg else f"{type(exc).__name__}{where}"
    return text[:1000]


def _check_result(value: object) -> dict:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return {"error": f"grade() returned {type(value).__name__} {shown}, expected a number"}
    x = float(value)
    if not math.isfinite(x):
        return {"error": f"grade() returned {x}, expected a finite number"}
    return {"score": x}


def _exit_with_parent(ppid: int) -> None:
    """If the parent dies (even by SIGKILL), stop: user code may be stuck in a loop."""
    while True:
        time.sleep(1.0)
        if os.getppid() != ppid:
            os._exit(1)


def main() -> None:
    # started before the address-space limit, which would count the thread's stack
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    proto_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    proto_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # the user's prints land in stderr, never in the protocol

    def send(obj: dict) -> None:
        proto_out.write(json.dumps(obj) + "\n")
        proto_out.flush()

    hello = json.loads(proto_in.readline())
    filename = hello["filename"]
    memory_mb = hello.get("memory_mb")
    warning = None
    if memory_mb:
        try:
            import resource  # optional: POSIX only

            limit = int(memory_mb) * 1024 * 1024
            hard = resource.getrlimit(resource.RLIMIT_AS)[1]
            if hard != resource.RLIM_INFINITY and hard < limit:
                limit = hard  # a stricter limit already applies
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # user code cannot lift it
        except (ImportError, AttributeError, ValueError, OSError) as e:
            why = f"cannot set the memory limit ({type(e).__name__}: {e})"
            if hello.get("memory_required"):
                send({"ready": False, "error": why + "; set memory_limit_mb to null"})
                return
            warning = why + ": running without one"  # the timeout still applies
    for p in hello.get("sys_path") or []:
        sys.path.insert(0, p)
    try:
        ns = {"__name__": "__iro_grader__", "__file__": filename}
        exec(compile(hello["source"], filename, "exec"), ns)
        fn = ns.get(hello["function"])
        if not callable(fn):
            raise NameError(f"the source defines no function '{hello['function']}'")
    except BaseException as e:  # noqa: BLE001 - report anything the user's module does
        send({"ready": False, "error": _describe(e, filename)})
        return
    send({"ready": True, "warning": warning} if warning else {"ready": True})

    while True:
        line = proto_in.readline()
        if not line:
            return
        msg = json.loads(line)
        try:
            result = _check_result(fn(msg["sample"], msg["item"]))
        except BaseException as e:  # noqa: BLE001 - SystemExit, MemoryError, RecursionError...
            result = {"error": _describe(e, filename)}
        try:
            send(result)
        except (TypeError, ValueError) as e:
            send({"error": f"cannot send the result: {e}"})


if __name__ == "__main__":
    main()

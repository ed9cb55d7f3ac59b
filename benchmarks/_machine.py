"""Shared bits of the benchmarks: machine description, peak RSS, one-subprocess-per-config runner.

Every benchmark JSON carries `machine_info()`: `os.cpu_count()`, the CPU affinity the process
actually got, and `os.getloadavg()` at the start and end, so a number taken on a shared or loaded
machine says so. Peak RSS (`ru_maxrss`) is only meaningful for a process that measured one
configuration, which is why `run_isolated` starts a fresh interpreter per configuration.
"""
import json
import os
import platform
import resource
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine_info():
    """cpu_count, affinity, load average, CPU model, library versions (no TensorFlow import)."""
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = None
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        prio = os.sched_getscheduler(0)
        sched = {getattr(os, "SCHED_IDLE", -1): "idle", os.SCHED_OTHER: "other"}.get(prio, str(prio))
    except AttributeError:
        sched = None
    return {"cpu_count": os.cpu_count(), "affinity": affinity, "scheduler": sched,
            "loadavg": [round(x, 2) for x in os.getloadavg()], "cpu_model": model,
            "python": platform.python_version(),
            "env": {k: os.environ[k] for k in ("TF_ENABLE_ONEDNN_OPTS", "MALLOC_ARENA_MAX",
                                               "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                                               "KERAS_BACKEND") if k in os.environ}}


def peak_rss_mb():
    """Peak resident set size of this process so far, MiB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def run_isolated(script, args, timeout=3600, env=None):
    """Runs `python script args...` in a fresh process; returns the JSON object it printed last.

    The child prints exactly one JSON object on its last stdout line. A failure returns
    {"error": ...} with the tail of stderr instead of raising, so one broken configuration does
    not lose the others.
    """
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", script)] + list(args)
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env,
                           cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s", "cmd": " ".join(cmd)}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": f"exit {p.returncode}", "stderr_tail": p.stderr[-1500:], "cmd": " ".join(cmd)}
    return json.loads(lines[-1])

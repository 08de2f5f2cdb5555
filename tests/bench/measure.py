"""One measurement: run a load client against a URL and read what it costs.

The clients are ApacheBench (ab: one new connection per request, like the
original measurement) and wrk (keep-alive). Their text output is parsed into
one dict per run; server CPU time comes from /proc/PID/stat (utime + stime)
of every process under the row's root pids, read before and after the run.
This file never starts or stops a server.
"""
import os
import re
import signal
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


# -- server CPU time ------------------------------------------------------------

def _proc_table():
    """pid -> (ppid, utime + stime in ticks, nice) for every process visible now."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses.
        rest = stat[stat.rindex(")") + 2:].split()
        # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15,
        # nice 19.
        table[int(name)] = (int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[16]))
    return table


def cpu_snapshot(roots, niced=False):
    """{pid: ticks} for the root pids and all their descendants. niced:
    only the descendants running at a lower priority than their root (the
    responder's upload processes, which upload.c renices to +10)."""
    table = _proc_table()
    kids = {}
    for pid, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    seen = {}
    for root in roots:
        if root not in table:
            continue
        todo = [root]
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            if not niced or table[pid][2] > table[root][2]:
                seen[pid] = table[pid][1]
            todo.extend(kids.get(pid, []))
    return seen


def cpu_delta(before, after):
    """Seconds of CPU the processes used between two snapshots. A process
    that appeared in between counts from zero; one that vanished is lost
    (its last ticks land in a parent's cutime, which we do not read)."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return max(ticks, 0) / TICK


# -- machine stalls ---------------------------------------------------------------
# This kind of machine is a virtual one on a shared host, and now and then
# one of its CPUs runs nothing at all for about 100 ms: `perf record -a`
# during such a run shows no timer sample on that CPU for 101-102 ms while
# the task on it (nginx) counts as running, and the tasks queued behind it
# wake 100 ms late. A run that spans one measures the host, not the server:
# every request that waited on that CPU lands in the p99. The probe sees
# it from inside: one process pinned to each CPU sleeps PROBE_SLEEP over
# and over and keeps its worst lateness. Under the bench's load a sleeper
# wakes within a few ms (the scheduler's worst delay seen was 7 ms), so
# STALL_MS is far above what scheduling alone causes.
STALL_MS = 50
PROBE_SLEEP = 0.01

_PROBE = """
import os, signal, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
worst = 0.0
sys.stdout.write("ready\\n")
sys.stdout.flush()
while not stop:
    t = time.monotonic()
    time.sleep(%r)
    worst = max(worst, time.monotonic() - t - %r)
print("%%.1f" %% (worst * 1000))
""" % (PROBE_SLEEP, PROBE_SLEEP)


class StallProbe:
    """with StallProbe() as p: ...; then p.worst_ms and p.cpu: the longest
    time any CPU of this process's affinity ran nothing (ms), and which."""

    def __enter__(self):
        self.procs = []
        for cpu in sorted(os.sched_getaffinity(0)):
            p = subprocess.Popen([sys.executable, "-c", _PROBE, str(cpu)], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, text=True)
            self.procs.append((cpu, p))
        for _, p in self.procs:
            p.stdout.readline()  # pinned and sleeping
        self.worst_ms, self.cpu = 0.0, None
        return self

    def __exit__(self, *exc):
        for _, p in self.procs:
            p.send_signal(signal.SIGTERM)
        for cpu, p in self.procs:
            try:
                out, _ = p.communicate(timeout=10)
                ms = float(out.strip() or 0)
            except (subprocess.TimeoutExpired, ValueError):
                p.kill()
                p.wait()
                continue
            if ms > self.worst_ms:
                self.worst_ms, self.cpu = ms, cpu
        return False


# -- clients ----------------------------------------------------------------------

def _ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_ab(text):
    """ab's report -> dict; raises ValueError when it is not one."""
    def num(pattern, default=None):
        m = re.search(pattern, text, re.M)
        if m:
            return float(m.group(1))
        if default is None:
            raise ValueError("ab output lacks /%s/" % pattern)
        return default
    pct = {int(p): float(v) for p, v in re.findall(r"^\s*(\d+)%\s+(\d+)", text, re.M)}
    if 50 not in pct or 99 not in pct or 100 not in pct:
        raise ValueError("ab output lacks the percentile table")
    why = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", text)
    return {
        "failed_detail": dict(zip(("connect", "receive", "length", "exceptions"),
                                  map(int, why.groups()))) if why else {},
        "requests": int(num(r"^Complete requests:\s+(\d+)")),
        "failed": int(num(r"^Failed requests:\s+(\d+)")),
        "non2xx": int(num(r"^Non-2xx responses:\s+(\d+)", 0)),
        "rps": num(r"^Requests per second:\s+([\d.]+)"),
        "seconds": num(r"^Time taken for tests:\s+([\d.]+)"),
        "p50": pct[50], "p99": pct[99], "max": pct[100],
    }


def parse_wrk(text):
    """wrk --latency's report -> dict; raises ValueError when it is not one."""
    lat = re.search(r"^\s*Latency\s+([\d.]+)(us|ms|s|m)\s+([\d.]+)(us|ms|s|m)\s+([\d.]+)(us|ms|s|m)",
                    text, re.M)
    dist = {int(p): _ms(v, u) for p, v, u in
            re.findall(r"^\s*(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
    done = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", text, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not (lat and done and rps and 50 in dist and 99 in dist):
        raise ValueError("not a wrk --latency report")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "requests": int(done.group(1)),
        "failed": sum(int(x) for x in errors.groups()) if errors else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "rps": float(rps.group(1)),
        "seconds": _ms(done.group(2), done.group(3)) / 1000.0,
        "p50": dist[50], "p99": dist[99], "max": _ms(lat.group(5), lat.group(6)),
    }


def client_argv(kind, url, plan):
    """The command line of one run. plan holds the sizes of the profile."""
    if kind == "orig":  # the original measurement: ab -n 4000 -c 100
        n, c = plan["orig_n"], plan["orig_c"]
        return ["ab", "-r", "-q", "-s", "10", "-t", str(plan["orig_t"]), "-n", str(n),
                "-c", str(c), url]
    if kind == "long":  # the same client, for a fixed time
        return ["ab", "-r", "-q", "-s", "10", "-t", str(plan["long_t"]), "-n", str(plan["long_n"]),
                "-c", "100", url]
    if kind == "ka":    # keep-alive
        return ["wrk", "-t", "1", "-c", "100", "-d", "%ds" % plan["ka_t"], "--timeout", "10s",
                "--latency", url]
    if kind == "c1000":
        return ["ab", "-r", "-q", "-s", "10", "-t", str(plan["c1000_t"]), "-n",
                str(plan["c1000_n"]), "-c", "1000", url]
    raise ValueError(kind)


def run_one(kind, url, roots, plan):
    """Runs one client against url; returns the parsed result with the
    server CPU per request (µs) added, or a dict with "error" set."""
    argv = client_argv(kind, url, plan)
    limit = max(plan["orig_t"], plan["long_t"], plan["ka_t"], plan["c1000_t"]) + 60
    # One snapshot per root: the front server and the responder apart.
    before = [cpu_snapshot([r]) for r in roots]
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=limit)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired:
        out, err, rc = "", "killed after %d s" % limit, -1
    wall = time.monotonic() - t0
    parts = [cpu_delta(b, cpu_snapshot([r])) for b, r in zip(before, roots)]
    cpu = sum(parts)
    try:
        res = parse_wrk(out) if kind == "ka" else parse_ab(out)
    except ValueError as e:
        return {"error": "%s (exit %s): %s %s" % (e, rc, err.strip()[-300:], out.strip()[-300:]),
                "argv": " ".join(argv), "wall": wall}
    res["cpu_s"] = cpu
    res["cpu_us"] = cpu * 1e6 / res["requests"] if res["requests"] else None
    res["cpu_parts_us"] = [p * 1e6 / res["requests"] if res["requests"] else None for p in parts]
    res["wall"] = wall
    res["argv"] = " ".join(argv)
    if res["failed"] or res["non2xx"]:
        res["output"] = (err.strip() + "\n" + out.strip())[-2000:]  # for raw.json readers
    return res

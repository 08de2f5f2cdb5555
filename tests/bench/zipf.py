"""The site-like workload of `make bench` (issue 13): N avatars, ids drawn
from Zipf(1.0), 5 % of the ids missing, wrk with a Lua script choosing
each path, keep-alive and a new connection per request.

The store: N hard links ID.jpg to a pool of distinct JPEGs (the disk holds
the pool only). Ids 1..M are the ranks, rank r is id r, and every 20th id
has no file (5 % of the ids; missing ones get the default avatar, -1.jpg,
from every row). The fast path's published tree is linked the same way
from the pool's published copies: `avatar.fcgi publish` checked each pool
image once (publishing N copies would only repeat that check N times and
write N copies; what the fast path serves is the same bytes). Each row is
started once per N, the rows interleaved within each round, medians of
the rounds. Nothing here is a test: PASS/FAIL lines compare ratios of the
same run with the issue's targets.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import measure
from servers import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
STACK = os.path.join(ROOT, "tests", "lib", "stack")
POOL = 16

# key, label, how it is started
ROWS = [
    ("static", "nginx static (try_files over the store)"),
    ("fastpath", "nginx fast path (.pub, responder for the rest)"),
    ("x-accel", "nginx → avatar.fcgi x-accel"),
    ("bytes", "nginx → avatar.fcgi bytes"),
]
KINDS = [("ka", "keep-alive, wrk -c 100"), ("close", "new connection per request, wrk -c 100")]

LUA = r"""
-- Zipf(1.0) over M ranks: a cumulative table built once per thread, a
-- binary search per request. Rank r is /r.
local M = %(m)d
local cdf = {}
init = function(args)
  local s = 0
  for r = 1, M do s = s + 1 / r; cdf[r] = s end
  for r = 1, M do cdf[r] = cdf[r] / s end
  math.randomseed(%(seed)d + (args[1] and tonumber(args[1]) or 0) + os.time())
end
request = function()
  local u = math.random()
  local lo, hi = 1, M
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return wrk.format("GET", "/" .. lo, %(headers)s)
end
"""


def log(msg):
    print("[zipf] %s" % msg, file=sys.stderr, flush=True)


def make_pool(work, binary):
    """POOL distinct 400x400 JPEGs of about 37-50 kB, and their published
    copies (avatar.fcgi publish over the pool: checked once)."""
    pool = os.path.join(work, "pool")
    os.makedirs(pool)
    for i in range(POOL):
        subprocess.run(["convert", "-seed", str(100 + i), "-size", "400x400", "plasma:fractal",
                        "-blur", "0x1", "-strip", "-quality", "90",
                        "jpg:" + os.path.join(pool, "%d.jpg" % (i + 1))], check=True)
    shutil.copyfile(os.path.join(pool, "1.jpg"), os.path.join(pool, "-1.jpg"))
    subprocess.run([binary, "publish", "--dir", pool, "--sizes", "none", "--formats", "none"],
                   check=True, stdout=subprocess.DEVNULL)
    return pool


def make_store(work, pool, n):
    """DIR with ids 1..M (every 20th missing) linked from the pool, and
    DIR/.pub/full linked from the pool's published copies."""
    d = os.path.join(work, "store-%d" % n)
    full = os.path.join(d, ".pub", "full")
    os.makedirs(full)
    for sub in (d, os.path.join(d, ".pub"), full):
        os.chmod(sub, 0o755)
    m = n * 20 // 19
    for dest in (d, full):
        src = pool if dest == d else os.path.join(pool, ".pub", "full")
        os.link(os.path.join(src, "-1.jpg"), os.path.join(dest, "-1.jpg"))
    made = 0
    for r in range(1, m + 1):
        if r % 20 == 0:
            continue
        k = "%d.jpg" % (r % POOL + 1)
        os.link(os.path.join(pool, k), os.path.join(d, "%d.jpg" % r))
        os.link(os.path.join(pool, ".pub", "full", k), os.path.join(full, "%d.jpg" % r))
        made += 1
    return d, m, made


def static_conf(run, store, port, workers):
    """nginx static over the same store, as the fast path's location
    would be without a responder: try_files, the default avatar for a
    missing id, the cache and CORS headers added the same way."""
    os.makedirs(os.path.join(run, "tmp"), exist_ok=True)
    user = "user root root;" if os.getuid() == 0 else ""
    conf = os.path.join(run, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""daemon off;
worker_processes %(w)d;
%(user)s
pid %(run)s/nginx.pid;
error_log %(run)s/error.log warn;
worker_rlimit_nofile 10240;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path %(run)s/tmp/body;
    fastcgi_temp_path %(run)s/tmp/fastcgi;
    proxy_temp_path %(run)s/tmp/proxy;
    scgi_temp_path %(run)s/tmp/scgi;
    uwsgi_temp_path %(run)s/tmp/uwsgi;
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        server_tokens off;
        location ~ "^/(?<id>0|-?[1-9][0-9]{0,18})$" {
            root %(store)s;
            types { image/jpeg jpg; image/png png; }
            add_header Cache-Control "public, max-age=300, stale-while-revalidate=86400";
            add_header X-Content-Type-Options nosniff;
            add_header Access-Control-Allow-Origin *;
            try_files /$id.jpg /$id.png /-1.jpg =404;
        }
        location / { return 404; }
    }
}
""" % {"w": workers, "user": user, "run": run, "port": port, "store": store})
    return conf


class Row:
    def __init__(self, key, work, store, binary, workers, port):
        self.key, self.store, self.binary, self.workers, self.port = key, store, binary, workers, port
        self.run = tempfile.mkdtemp(prefix="z-%s." % key, dir=work)
        self.url = "http://127.0.0.1:%d" % port
        self.proc = None

    def start(self):
        if self.key == "static":
            conf = static_conf(self.run, self.store, self.port, self.workers)
            self.proc = subprocess.Popen(["nginx", "-p", self.run + "/", "-c", conf],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        else:
            mode = "bytes" if self.key == "bytes" else "x-accel"
            argv = [STACK, "start", "--server", "nginx", "--mode", mode, "--port", str(self.port),
                    "--run", self.run, "--avatars", self.store, "--workers", str(self.workers),
                    "--bin", self.binary]
            if self.key == "fastpath":
                argv += ["--fastpath", "--published"]
            argv += ["--", "--default-id", "-1", "--sizes", "none", "--formats", "none"]
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                      self.url + "/1"], capture_output=True, text=True, timeout=5)
                if out.stdout == "200":
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.1)
        raise RuntimeError("%s did not answer on %s" % (self.key, self.url))

    def roots(self):
        if self.key == "static":
            return [self.proc.pid]
        pids = []
        for f in ("front.pid", "avatar.pid"):
            try:
                with open(os.path.join(self.run, f)) as fh:
                    pids.append(int(fh.read().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
        return pids

    def stop(self):
        if self.key == "static":
            if self.proc and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        else:
            subprocess.run([STACK, "stop", "--run", self.run], stdout=subprocess.DEVNULL)


def rss_kb(row):
    """The responder's largest worker RSS in kB (its read workers are the
    supervisor's children named avatar.fcgi), or None."""
    if row.key == "static":
        return None
    best = None
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
            comm = st[st.index("(") + 1:st.rindex(")")]
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            if comm != "avatar.fcgi" or ppid not in row.roots():
                continue
            with open("/proc/%s/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        v = int(line.split()[1])
                        best = v if best is None or v > best else best
        except (OSError, ValueError):
            continue
    return best


def run_wrk(row, lua, seconds):
    argv = ["wrk", "-t", "2", "-c", "100", "-d", "%ds" % seconds, "--timeout", "10s",
            "--latency", "-s", lua, row.url]
    roots = row.roots()
    before = measure.cpu_snapshot(roots)
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        out = r.stdout
    except subprocess.TimeoutExpired:
        out = ""
    cpu = measure.cpu_delta(before, measure.cpu_snapshot(roots))
    try:
        res = measure.parse_wrk(out)
    except ValueError as e:
        return {"error": "%s: %s" % (e, out.strip()[-300:])}
    res["cpu_us"] = cpu * 1e6 / res["requests"] if res["requests"] else None
    return res


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def run(work, binary, workers, sizes, rounds, seconds, first_port):
    pool = make_pool(work, binary)
    results = {}
    port = first_port
    for n in sizes:
        t0 = time.monotonic()
        store, m, made = make_store(work, pool, n)
        log("N=%d: %d ids, %d with a file, store made in %.1f s" % (n, m, made, time.monotonic() - t0))
        luas = {}
        for kind, _ in KINDS:
            luas[kind] = os.path.join(work, "zipf-%d-%s.lua" % (n, kind))
            with open(luas[kind], "w") as f:
                f.write(LUA % {"m": m, "seed": 13,
                               "headers": "{[\"Connection\"] = \"close\"}" if kind == "close" else "nil"})
        rows = []
        try:
            for key, _ in ROWS:
                row = Row(key, work, store, binary, workers, port)
                port += 1
                row.start()
                rows.append(row)
            raw = {kind: {r.key: [] for r in rows} for kind, _ in KINDS}
            for rnd in range(rounds):
                order = rows[rnd % len(rows):] + rows[:rnd % len(rows)]
                for kind, _ in KINDS:
                    for r in order:
                        res = run_wrk(r, luas[kind], seconds)
                        raw[kind][r.key].append(res)
                        log("N=%d round %d %-6s %-9s %s" % (n, rnd + 1, kind, r.key,
                            res.get("error") or "%8.0f req/s p99 %.1f ms cpu %s µs/req" % (
                                res["rps"], res["p99"], "%.0f" % res["cpu_us"] if res["cpu_us"] else "-")))
                        time.sleep(0.2)
            rss = {r.key: rss_kb(r) for r in rows}
        finally:
            for r in rows:
                r.stop()
            shutil.rmtree(store, ignore_errors=True)
        results[n] = {"ids": m, "files": made, "raw": raw, "rss_kb": rss}
    return results


def summarize(results):
    s = {}
    for n, res in results.items():
        s[n] = {}
        for kind, _ in KINDS:
            s[n][kind] = {}
            for key, _ in ROWS:
                runs = [r for r in res["raw"][kind].get(key, []) if "error" not in r]
                s[n][kind][key] = {
                    f: median([r[f] for r in runs]) for f in ("rps", "p50", "p99", "max", "cpu_us")
                } if runs else None
                if runs:
                    s[n][kind][key]["failed"] = sum(r["failed"] for r in runs)
                    s[n][kind][key]["non2xx"] = sum(r["non2xx"] for r in runs)
    return s


def targets(s, sizes):
    out = []
    for n in sizes:
        if n < 100000:
            continue
        for kind, _ in KINDS:
            st, fp = s[n][kind].get("static"), s[n][kind].get("fastpath")
            if st and fp and st["rps"]:
                r = fp["rps"] / st["rps"]
                out.append((r >= 0.9, "fast path >= 0.9x nginx static req/s, Zipf N=%d, %s: %.2fx"
                            % (n, kind, r)))
                if st["cpu_us"] and fp["cpu_us"]:
                    c = fp["cpu_us"] / st["cpu_us"]
                    out.append((c <= 1.2, "fast path server CPU per request <= 1.2x static's, N=%d, %s: %.2fx"
                                % (n, kind, c)))
    for n in sizes:
        st, xa = s[n]["ka"].get("static"), s[n]["ka"].get("x-accel")
        if st and xa and st["rps"]:
            r = xa["rps"] / st["rps"]
            out.append((r >= 0.6, "x-accel >= 0.6x static req/s with keep-alive, Zipf N=%d: %.2fx" % (n, r)))
    for n in sizes:
        for kind, _ in KINDS:
            st = s[n][kind].get("static")
            for key in ("fastpath", "x-accel", "bytes"):
                r = s[n][kind].get(key)
                if st and r and st["p99"]:
                    out.append((r["p99"] <= 2 * st["p99"], "p99 of %s <= 2x static's, N=%d, %s: %.1f ms vs %.1f ms"
                                % (key, n, kind, r["p99"], st["p99"])))
                if r:
                    out.append((r["failed"] == 0 and r["non2xx"] == 0,
                                "%s, N=%d, %s: %d failed, %d non-2xx" % (key, n, kind, r["failed"], r["non2xx"])))
    return out


def markdown(s, results, sizes, verdicts):
    label = dict(ROWS)
    md = ["## Site-like workload: Zipf(1.0) over N avatars, 5 % missing ids", "",
          "wrk -t 2 -c 100 with a Lua script drawing each id (tests/bench/zipf.py); medians of the "
          "rounds; ratios to nginx static over the same store in the same round set. "
          "CPU: every process of the row (front server and responder), µs per request. "
          "RSS: the largest responder worker after the runs.", "", "```"]
    md += ["%s %s" % ("PASS" if ok else "FAIL", t) for ok, t in verdicts] + ["```", ""]
    for n in sizes:
        for kind, title in KINDS:
            md += ["### N = %d, %s" % (n, title), "",
                   "| row | req/s | × static | p50 ms | p99 ms | max ms | CPU µs/req | worker RSS kB |",
                   "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            st = s[n][kind].get("static")
            for key, _ in ROWS:
                r = s[n][kind].get(key)
                if not r:
                    md.append("| %s | no run | | | | | | |" % label[key])
                    continue
                md.append("| %s | %.0f | %s | %.2f | %.2f | %.0f | %s | %s |" % (
                    label[key], r["rps"], "%.2f" % (r["rps"] / st["rps"]) if st and st["rps"] else "-",
                    r["p50"], r["p99"], r["max"], "%.0f" % r["cpu_us"] if r["cpu_us"] else "-",
                    results[n]["rss_kb"].get(key) or "-"))
            md.append("")
    return "\n".join(md)


def main():
    import argparse
    ap = argparse.ArgumentParser(description="the Zipf workload of make bench")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", help="comma list of N (default 1000,100000; quick 1000)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "avatar.fcgi"))
    ap.add_argument("--port", type=int, default=18700)
    a = ap.parse_args()
    sizes = [int(x) for x in (a.sizes or ("1000" if a.quick else "1000,100000")).split(",")]
    rounds = a.rounds or (1 if a.quick else 3)
    seconds = a.seconds or (2 if a.quick else 4)
    workers = len(os.sched_getaffinity(0))
    work = tempfile.mkdtemp(prefix="avatar-zipf.")
    os.chmod(work, 0o755)
    t0 = time.monotonic()
    try:
        results = run(work, os.path.abspath(a.bin), workers, sizes, rounds, seconds, a.port)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s = summarize(results)
    verdicts = targets(s, sizes)
    md = markdown(s, results, sizes, verdicts)
    load = open("/proc/loadavg").read().split()[:3]
    md += "\nMade in %.0f s; load average at the end: %s.\n" % (time.monotonic() - t0, " ".join(load))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "zipf.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.out, "zipf.json"), "w") as f:
        json.dump({"sizes": sizes, "rounds": rounds, "seconds": seconds, "workers": workers,
                   "results": {str(k): v for k, v in results.items()}}, f, indent=1)
    print(md)
    return 1 if any(not ok for ok, _ in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())

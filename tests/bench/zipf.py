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
the rounds; a ratio is taken within each round, then the median of those.
A run that spans a stall of the machine itself is taken again (Retakes).
Nothing here is a test: PASS/FAIL lines compare ratios of the
same run with the issue's targets.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import measure
from report import median, pair_ratio, round_ratios
from servers import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
STACK = os.path.join(ROOT, "tests", "lib", "stack")
# Distinct images the store is linked from: ext4 allows 65,000 links to
# one file; a store of N ids links each pool image N / count times.
POOL_PER_IDS = 20000

# key, label, how it is started
ROWS = [
    ("static", "nginx static (try_files over the store)"),
    ("fastpath", "nginx fast path (.pub, responder for the rest)"),
    ("x-accel", "nginx → avatar.fcgi x-accel"),
    ("bytes", "nginx → avatar.fcgi bytes"),
    ("l-static", "lighttpd static (rewrite over the store)"),
    ("l-fastpath", "lighttpd fast path (.pub, responder for the rest)"),
    ("l-xsendfile", "lighttpd → avatar.fcgi x-sendfile"),
]
# Each row's static baseline: the same front server serving the same
# store by itself.
BASE = {"static": "static", "fastpath": "static", "x-accel": "static", "bytes": "static",
        "l-static": "l-static", "l-fastpath": "l-static", "l-xsendfile": "l-static"}
# The responder rows, which must answer every request (0 failed, 0 non-2xx,
# also at -c 1000). The static rows are the baselines.
RESPONDER_ROWS = ["fastpath", "x-accel", "bytes", "l-fastpath", "l-xsendfile"]
# Connections of the one burst run per row and N (keep-alive).
BURST_C = 1000
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


def pool_size(n):
    """Distinct images for stores of up to n ids."""
    return max(8, -(-n // POOL_PER_IDS))


def make_pool(work, binary, count):
    """count distinct 400x400 JPEGs of about 37-50 kB, and their published
    copies (avatar.fcgi publish over the pool: checked once)."""
    pool = os.path.join(work, "pool")
    os.makedirs(pool)
    for i in range(count):
        subprocess.run(["convert", "-seed", str(100 + i), "-size", "400x400", "plasma:fractal",
                        "-blur", "0x1", "-strip", "-quality", "90",
                        "jpg:" + os.path.join(pool, "%d.jpg" % (i + 1))], check=True)
    shutil.copyfile(os.path.join(pool, "1.jpg"), os.path.join(pool, "-1.jpg"))
    subprocess.run([binary, "publish", "--dir", pool, "--sizes", "none", "--formats", "none"],
                   check=True, stdout=subprocess.DEVNULL)
    return pool


def make_store(work, pool, n, count):
    """DIR with ids 1..M (every 20th missing) linked from the pool, and
    DIR/.pub/full linked from the pool's published copies (default.jpg
    too)."""
    d = os.path.join(work, "store-%d" % n)
    full = os.path.join(d, ".pub", "full")
    os.makedirs(full)
    for sub in (d, os.path.join(d, ".pub"), full):
        os.chmod(sub, 0o755)
    m = n * 20 // 19
    for dest in (d, full):
        src = pool if dest == d else os.path.join(pool, ".pub", "full")
        os.link(os.path.join(src, "-1.jpg"), os.path.join(dest, "-1.jpg"))
    # The default avatar's published name, which the fast paths send for
    # a missing id (publish.h).
    os.link(os.path.join(pool, ".pub", "full", "default.jpg"), os.path.join(full, "default.jpg"))
    made = 0
    for r in range(1, m + 1):
        if r % 20 == 0:
            continue
        k = "%d.jpg" % (r % count + 1)
        os.link(os.path.join(pool, k), os.path.join(d, "%d.jpg" % r))
        os.link(os.path.join(pool, ".pub", "full", k), os.path.join(full, "%d.jpg" % r))
        made += 1
    return d, m, made


def lighttpd_static_conf(run, store, port):
    """lighttpd static over the same store: /ID to ID.jpg when the file is
    there, else the default avatar through the 404 handler (lighttpd has
    no try_files; a static handler answers 200), the same headers added."""
    os.makedirs(os.path.join(run, "tmp"), exist_ok=True)
    conf = os.path.join(run, "lighttpd.conf")
    with open(conf, "w") as f:
        f.write("""server.modules = ( "mod_rewrite", "mod_setenv" )
server.bind = "127.0.0.1"
server.port = %(port)d
server.document-root = "%(store)s"
server.pid-file = "%(run)s/lighttpd.pid"
server.errorlog = "%(run)s/error.log"
server.upload-dirs = ( "%(run)s/tmp" )
server.tag = ""
# The descriptors of conf/lighttpd/avatar-fastpath.conf: lighttpd keeps one
# open per file sent in the last 2-3 s, and at its limit this config
# answers an existing id with the default avatar through the 404 handler
# (a failed open), which is cheaper than the right file and would flatter
# this baseline (docs/fastpath.md, "lighttpd at its descriptor limit").
server.max-fds = 65535
server.max-connections = 4096
# As the fast path runs (conf/lighttpd/avatar-fastpath.conf): no stat
# cache, as the nginx rows have no open_file_cache.
server.stat-cache-engine = "disable"
mimetype.assign = ( ".jpg" => "image/jpeg", ".png" => "image/png" )
url.rewrite-if-not-file = ( "^/(0|-?[1-9][0-9]{0,18})$" => "/$1.jpg" )
server.error-handler-404 = "/-1.jpg"
setenv.add-response-header = (
    "Cache-Control" => "public, max-age=300, stale-while-revalidate=86400",
    "X-Content-Type-Options" => "nosniff",
    "Access-Control-Allow-Origin" => "*" )
""" % {"run": run, "port": port, "store": store})
    return conf


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
        self.stopped = False

    def start(self):
        if self.key == "static":
            conf = static_conf(self.run, self.store, self.port, self.workers)
            self.proc = subprocess.Popen(["nginx", "-p", self.run + "/", "-c", conf],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        elif self.key == "l-static":
            conf = lighttpd_static_conf(self.run, self.store, self.port)
            self.proc = subprocess.Popen(["lighttpd", "-D", "-f", conf],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        else:
            server = "lighttpd" if self.key.startswith("l-") else "nginx"
            # The nginx fast path's responder runs in bytes mode
            # (conf/nginx/avatar-fastpath-locations.conf says why).
            mode = {"bytes": "bytes", "fastpath": "bytes", "l-fastpath": "x-sendfile",
                    "l-xsendfile": "x-sendfile"}.get(self.key, "x-accel")
            argv = [STACK, "start", "--server", server, "--mode", mode, "--port", str(self.port),
                    "--run", self.run, "--avatars", self.store, "--workers", str(self.workers),
                    "--bin", self.binary]
            if self.key.endswith("fastpath"):
                argv += ["--fastpath", "--published"]
            argv += ["--", "--default-id", "-1", "--sizes", "none", "--formats", "none"]
            r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                raise RuntimeError("%s: tests/lib/stack start exited %d: %s"
                                   % (self.key, r.returncode, r.stderr.strip()[-300:]))
        self.wait_ready()

    def wait_ready(self, curl=("-s",), fmt="%{http_code}", want="200"):
        """Asks for /1 every 0.1 s, at most 100 times, until curl's -w fmt
        prints want."""
        for _ in range(100):
            try:
                out = subprocess.run(["curl", *curl, "-o", "/dev/null", "-w", fmt, self.url + "/1"],
                                     capture_output=True, text=True, timeout=5)
                if out.stdout == want:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.1)
        raise RuntimeError("%s did not answer %s on %s" % (self.key, want, self.url))

    def roots(self):
        if self.key in ("static", "l-static"):
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
        # run() stops each row before the h2 rows start and again on the
        # way out: the second time is a no-op.
        if self.stopped:
            return
        self.stopped = True
        if self.key in ("static", "l-static"):
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
    if row.key in ("static", "l-static"):
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


def run_wrk(row, lua, seconds, conns=100):
    """One wrk run: its figures, the row's CPU per request, and stall_ms,
    the longest time a CPU of the machine ran nothing meanwhile
    (measure.StallProbe)."""
    argv = ["wrk", "-t", "2", "-c", str(conns), "-d", "%ds" % seconds, "--timeout", "10s",
            "--latency", "-s", lua, row.url]
    roots = row.roots()
    with measure.StallProbe() as probe:
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
    res["stall_ms"] = probe.worst_ms
    return res


class Retakes:
    """Runs that spanned a machine stall (a CPU ran nothing for stall_ms
    or more; measure.STALL_MS unless --stall-ms says otherwise) are taken
    again, at most RETRIES times each and LIMIT times in the whole
    run, so a bad host cannot stretch the bench past its time. What was set
    aside is kept (zipf.json "stalled", and a line in zipf.md per N)."""
    RETRIES = 2
    LIMIT = 12

    def __init__(self, stall_ms):
        self.stall_ms = stall_ms
        self.used = 0

    def run(self, row, lua, seconds, set_aside):
        res = run_wrk(row, lua, seconds)
        for _ in range(self.RETRIES):
            if res.get("stall_ms", 0) < self.stall_ms or self.used >= self.LIMIT:
                break
            self.used += 1
            set_aside.append(res)
            log("  %s: a CPU ran nothing for %.0f ms during the run (p99 %.1f ms); taken again"
                % (row.key, res["stall_ms"], res.get("p99") or 0))
            time.sleep(0.2)
            res = run_wrk(row, lua, seconds)
        return res


def run(work, binary, workers, sizes, rounds, seconds, burst_seconds, first_port, h2_n, stall_ms):
    count = pool_size(max(sizes))
    pool = make_pool(work, binary, count)
    results = {}
    port = first_port
    retakes = Retakes(stall_ms)
    for n in sizes:
        t0 = time.monotonic()
        store, m, made = make_store(work, pool, n, count)
        store_s = time.monotonic() - t0
        log("N=%d: %d ids, %d with a file, store made in %.1f s" % (n, m, made, store_s))
        luas = {}
        for kind, _ in KINDS:
            luas[kind] = os.path.join(work, "zipf-%d-%s.lua" % (n, kind))
            with open(luas[kind], "w") as f:
                f.write(LUA % {"m": m, "seed": 13,
                               "headers": "{[\"Connection\"] = \"close\"}" if kind == "close" else "nil"})
        rows, broken = [], {}
        try:
            for key, _ in ROWS:
                row = Row(key, work, store, binary, workers, port)
                port += 1
                try:
                    row.start()
                except RuntimeError as e:
                    # One row that cannot start leaves the others' figures.
                    log("N=%d: %s did not start: %s" % (n, key, e))
                    broken[key] = str(e)
                    row.stop()
                    continue
                rows.append(row)
            raw = {kind: {r.key: [] for r in rows} for kind, _ in KINDS}
            stalled = {kind: {r.key: [] for r in rows} for kind, _ in KINDS}
            for rnd in range(rounds):
                order = rows[rnd % len(rows):] + rows[:rnd % len(rows)]
                for kind, _ in KINDS:
                    for r in order:
                        res = retakes.run(r, luas[kind], seconds, stalled[kind][r.key])
                        raw[kind][r.key].append(res)
                        log("N=%d round %d %-6s %-9s %s" % (n, rnd + 1, kind, r.key,
                            res.get("error") or "%8.0f req/s p99 %.1f ms cpu %s µs/req" % (
                                res["rps"], res["p99"], "%.0f" % res["cpu_us"] if res["cpu_us"] else "-")))
                        time.sleep(0.2)
            # The burst: BURST_C keep-alive connections at once, once per
            # row (judged on failures and non-2xx only).
            burst = {}
            for r in rows:
                burst[r.key] = run_wrk(r, luas["ka"], burst_seconds, conns=BURST_C)
                res = burst[r.key]
                log("N=%d burst -c %d %-9s %s" % (n, BURST_C, r.key, res.get("error") or
                    "%8.0f req/s, %d failed, %d non-2xx" % (res["rps"], res["failed"], res["non2xx"])))
                time.sleep(0.2)
            rss = {r.key: rss_kb(r) for r in rows}
            for r in rows:
                r.stop()
            # HTTP/2 over TLS (h2.py) over the same store, at one N.
            h2res = None
            if n == h2_n:
                import h2  # h2 imports this module: imported once both exist
                h2res = h2.run_h2(work, store, m, binary, workers, rounds=rounds,
                                  seconds=seconds, first_port=port)
                port += len(h2.ROWS)
        finally:
            for r in rows:
                r.stop()
            shutil.rmtree(store, ignore_errors=True)
        results[n] = {"ids": m, "files": made, "raw": raw, "stalled": stalled, "rss_kb": rss,
                      "burst": burst,
                      "broken": broken, "store_s": store_s, "h2": h2res}
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


def ratio(results, n, kind, key, field="rps"):
    """key's figure over its static baseline's, same N and kind: the
    median over rounds of the two runs of the same round (as the
    single-avatar rows and h2.py take theirs), or None."""
    return pair_ratio(results[n]["raw"], kind, key, BASE[key], field)


def ratio_rounds(results, n, kind, key, field="rps"):
    """ratio()'s figure and " (rounds 0.91, 0.86, 0.97)", each round's
    ratio in round order, so a reader of a target line sees how far the
    rounds spread around the median (empty with fewer than two rounds)."""
    vals = round_ratios(results[n]["raw"], kind, key, BASE[key], field)
    note = " (rounds %s)" % ", ".join("%.2f" % v for v in vals) if len(vals) > 1 else ""
    return median(vals), note


def targets(s, results, sizes):
    """(ok, text) lines for issue 13's targets, ratios of the same run."""
    out = []

    def need(ok_if, text):
        out.append((ok_if, text))

    big = [n for n in sizes if n >= 100000]
    for key, name in (("fastpath", "nginx"), ("l-fastpath", "lighttpd")):
        for n in big:
            for kind, _ in KINDS:
                r, note = ratio_rounds(results, n, kind, key)
                if r is None:
                    need(False, "%s fast path, Zipf N=%d, %s: no figure" % (name, n, kind))
                    continue
                need(r >= 0.9, "%s fast path >= 0.9x %s static req/s, Zipf N=%d, %s: %.2fx%s"
                     % (name, name, n, kind, r, note))
                c, note = ratio_rounds(results, n, kind, key, "cpu_us")
                if key == "fastpath" and c is not None:
                    need(c <= 1.2, "nginx fast path server CPU per request <= 1.2x static's, "
                         "N=%d, %s: %.2fx%s" % (n, kind, c, note))
    for n in sizes:
        r, note = ratio_rounds(results, n, "ka", "x-accel")
        need(r is not None and r >= 0.6, "x-accel >= 0.6x static req/s with keep-alive, Zipf N=%d: %s"
             % (n, "%.2fx%s" % (r, note) if r is not None else "no figure"))
    for n in sizes:
        for kind, _ in KINDS:
            for key in RESPONDER_ROWS:
                r, b = s[n][kind].get(key), s[n][kind].get(BASE[key])
                if r and b and b["p99"]:
                    need(r["p99"] <= 2 * b["p99"], "p99 of %s <= 2x %s's, N=%d, %s: %.1f ms vs %.1f ms"
                         % (key, BASE[key], n, kind, r["p99"], b["p99"]))
                if r:
                    need(r["failed"] == 0 and r["non2xx"] == 0, "%s, N=%d, %s: %d failed, %d non-2xx"
                         % (key, n, kind, r["failed"], r["non2xx"]))
        for key in RESPONDER_ROWS:
            b = results[n]["burst"].get(key)
            if b is None:
                continue
            if "error" in b:
                need(False, "%s, N=%d, -c %d: no result (%s)" % (key, n, BURST_C, b["error"][:80]))
            else:
                need(b["failed"] == 0 and b["non2xx"] == 0, "%s, N=%d, -c %d: %d failed, %d non-2xx"
                     % (key, n, BURST_C, b["failed"], b["non2xx"]))
        for key, why in results[n]["broken"].items():
            need(False, "%s, N=%d: did not start (%s)" % (key, n, why[:120]))
    return out


def stall_line(res, stall_ms):
    """What a machine stall made the run set aside at one N, and any kept
    run that spanned one (once Retakes ran out)."""
    aside, kept = [], []
    for kind, _ in KINDS:
        for key, _ in ROWS:
            aside += ["%s %s (%.0f ms, p99 %.1f ms)" % (key, kind, r["stall_ms"], r["p99"])
                      for r in res.get("stalled", {}).get(kind, {}).get(key, [])]
            kept += ["%s %s (%.0f ms)" % (key, kind, r["stall_ms"])
                     for r in res["raw"][kind].get(key, [])
                     if r.get("stall_ms", 0) >= stall_ms]
    line = "Machine stalls: " + ("runs taken again: " + "; ".join(aside) if aside else
                                 "no run taken again")
    if kept:
        line += "; kept with a stall, the limit reached: " + "; ".join(kept)
    return line + "."


def markdown(s, results, sizes, verdicts, stall_ms):
    label = dict(ROWS)
    md = ["## Site-like workload: Zipf(1.0) over N avatars, 5 % missing ids", "",
          "wrk -t 2 -c 100 with a Lua script drawing each id (tests/bench/zipf.py); medians of the "
          "rounds; a ratio is to the same front server's static row over the same store, "
          "taken in each round and the median of those (nginx rows to nginx static, lighttpd "
          "rows to lighttpd static); a ratio target's line lists each round's, in round order. "
          "CPU: every process of the row (front server and responder), µs per request. "
          "RSS: the largest responder worker after the runs. Each row also takes one run of "
          "wrk -c %d (keep-alive), judged on failures only. Every row answers a missing id "
          "with the default avatar and 200 (lighttpd static through its 404 handler). "
          "A run during which a CPU of the machine ran nothing for %d ms or more (the virtual "
          "machine's host, seen by a pinned probe: measure.StallProbe) is taken again, at most "
          "%d times a run and %d in all; what was set aside is listed under each N."
          % (BURST_C, stall_ms, Retakes.RETRIES, Retakes.LIMIT), "", "```"]
    md += ["%s %s" % ("PASS" if ok else "FAIL", t) for ok, t in verdicts] + ["```", ""]
    # How each row changes as N grows: req/s and CPU per request.
    md += ["### As N grows (keep-alive; req/s, × static, CPU µs/req)", "",
           "| row | " + " | ".join("N = %d" % n for n in sizes) + " |",
           "| --- |" + " ---: |" * len(sizes)]
    for key, _ in ROWS:
        cells = []
        for n in sizes:
            r, x = s[n]["ka"].get(key), ratio(results, n, "ka", key)
            cells.append("%.0f, %s, %s" % (r["rps"], "%.2f×" % x if x is not None else "-",
                                           "%.0f" % r["cpu_us"] if r["cpu_us"] else "-")
                         if r else "no run")
        md.append("| %s | %s |" % (label[key], " | ".join(cells)))
    md += ["", "Store made (2 hard links per id): " + ", ".join(
        "N = %d in %.1f s" % (n, results[n]["store_s"]) for n in sizes) + ".", ""]
    for n in sizes:
        for kind, title in KINDS:
            md += ["### N = %d, %s" % (n, title), "",
                   "| row | req/s | × static | p50 ms | p99 ms | max ms | CPU µs/req | worker RSS kB |",
                   "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for key, _ in ROWS:
                r = s[n][kind].get(key)
                if not r:
                    md.append("| %s | no run | | | | | | |" % label[key])
                    continue
                x = ratio(results, n, kind, key)
                md.append("| %s | %.0f | %s | %.2f | %.2f | %.0f | %s | %s |" % (
                    label[key], r["rps"], "%.2f" % x if x is not None else "-",
                    r["p50"], r["p99"], r["max"], "%.0f" % r["cpu_us"] if r["cpu_us"] else "-",
                    results[n]["rss_kb"].get(key) or "-"))
            md.append("")
        md += [stall_line(results[n], stall_ms), ""]
        md += ["-c %d (keep-alive, one run per row): " % BURST_C + "; ".join(
            "%s %s" % (k, "%.0f req/s, %d failed, %d non-2xx" % (b["rps"], b["failed"], b["non2xx"])
                       if "error" not in b else "no result")
            for k, b in results[n]["burst"].items()) + ".", ""]
    return "\n".join(md)


def main():
    import argparse
    ap = argparse.ArgumentParser(description="the Zipf workload of make bench")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", help="comma list of N (default 1000,100000,1000000; quick 1000)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "avatar.fcgi"))
    ap.add_argument("--port", type=int, default=18700)
    ap.add_argument("--stall-ms", type=float, default=measure.STALL_MS,
                    help="take a run again when a CPU ran nothing this long (default %(default)s; "
                    "0 takes every run again, up to the limit: tests/t/42-bench-zipf.t)")
    a = ap.parse_args()
    sizes = [int(x) for x in (a.sizes or ("1000" if a.quick else "1000,100000,1000000")).split(",")]
    if a.quick:
        # QUICK=1 (under two minutes with the single-avatar part): the
        # static rows and the fast paths, x-accel for its target.
        ROWS[:] = [r for r in ROWS if r[0] not in ("bytes", "l-xsendfile")]
    rounds = a.rounds or (1 if a.quick else 3)
    seconds = a.seconds or (1 if a.quick else 3)
    burst_seconds = 1 if a.quick else 2
    # wrk -c BURST_C holds a descriptor per connection.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4 * BURST_C:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536) if hard != resource.RLIM_INFINITY
                                                    else 65536, hard))
    workers = len(os.sched_getaffinity(0))
    work = tempfile.mkdtemp(prefix="avatar-zipf.")
    os.chmod(work, 0o755)
    t0 = time.monotonic()
    try:
        h2_n = 100000 if 100000 in sizes else sizes[0]
        results = run(work, os.path.abspath(a.bin), workers, sizes, rounds, seconds, burst_seconds,
                      a.port, h2_n, a.stall_ms)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s = summarize(results)
    verdicts = targets(s, results, sizes)
    h2res = [results[n]["h2"] for n in sizes if results[n].get("h2")]
    if h2res:
        import h2
        verdicts += h2.verdicts(h2res[0])
    md = markdown(s, results, sizes, verdicts, a.stall_ms)
    if h2res:
        md += "\n" + h2.markdown(h2res[0]) + "\n"
    load = open("/proc/loadavg").read().split()[:3]
    md += "\nMade in %.0f s; load average at the end: %s.\n" % (time.monotonic() - t0, " ".join(load))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "zipf.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.out, "zipf.json"), "w") as f:
        json.dump({"sizes": sizes, "rounds": rounds, "seconds": seconds, "workers": workers,
                   "stall_ms": a.stall_ms,
                   "results": {str(k): v for k, v in results.items()}}, f, indent=1)
    print(md)
    return 1 if any(not ok for ok, _ in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())

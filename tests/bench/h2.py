"""The client browsers are (issue 13, section 3): HTTP/2 over TLS, many
requests in flight on a few connections, over the Zipf store of zipf.py.

Rows, each over TLS and HTTP/2 with the project's TLS settings
(conf/nginx/avatar-tls-params.conf, the same certificate for every row):
  static    nginx static over the store: zipf.py's static_conf (try_files,
            the default avatar for a missing id, the same headers), its
            listen line made `ssl http2` and the TLS snippet included;
  fastpath  the project's config, conf/nginx/avatar-fastpath-tls.conf,
            started by tests/lib/stack --tls --fastpath --published;
  ktls      the same with `ssl_conf_command Options KTLS;`, only where the
            kernel offers TLS (ktls_status() says why not otherwise).
The client is h2load -c 10 -m 32 over a file of Zipf(1.0)-drawn URLs
(fixed seed; every h2load client walks the same list from its start).
Rows alternate within each round, medians of the rounds; the ratios are
per round against static. Nothing here is a test: PASS/FAIL lines compare
ratios of one run with the issue's target.

For zipf.py: run_h2(work, store, m, binary, workers, ...) over a store
zipf.make_store made, then markdown(res) and verdicts(res). Standalone:
python3 tests/bench/h2.py --n 100000 builds its own store and prints the
table.
"""
import bisect
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import measure
import zipf
from report import median
from servers import ROOT, _children

HERE = os.path.dirname(os.path.abspath(__file__))
STACK = os.path.join(ROOT, "tests", "lib", "stack")
NGINX_CONF = os.path.join(ROOT, "conf", "nginx")
CONNECTIONS, STREAMS = 10, 32
TARGET = 0.9  # fast path req/s at least this x static's, same run

# key, label
ROWS = [
    ("static", "nginx static, TLS + HTTP/2"),
    ("fastpath", "nginx fast path, TLS + HTTP/2 (avatar-fastpath-tls.conf)"),
    ("ktls", "nginx fast path, TLS + HTTP/2, kernel TLS"),
]
LABEL = dict(ROWS)


def log(msg):
    print("[h2] %s" % msg, file=sys.stderr, flush=True)


# ---- kernel TLS ------------------------------------------------------------------

TCP_ULP = 31  # <netinet/tcp.h>; Python's socket module does not name it


def ktls_status():
    """(available, why): whether this kernel takes the "tls" upper layer
    on a TCP socket, which OpenSSL needs to hand a connection's keys to
    the kernel. Tried on a loopback connection made here."""
    import socket
    srv = socket.socket()
    cli = socket.socket()
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        cli.connect(srv.getsockname())
        cli.setsockopt(socket.SOL_TCP, TCP_ULP, b"tls")
        return True, "the kernel takes TCP_ULP \"tls\""
    except OSError as e:
        why = "setsockopt(TCP_ULP, \"tls\"): %s" % e.strerror
        try:
            with open("/proc/config.gz", "rb") as f:
                import gzip
                if b"# CONFIG_TLS is not set" in gzip.decompress(f.read()):
                    why += "; the kernel is built without CONFIG_TLS (/proc/config.gz)"
        except OSError:
            pass
        return False, why
    finally:
        cli.close()
        srv.close()


def tls_stat():
    """/proc/net/tls_stat as {name: count}, or None without kernel TLS."""
    try:
        with open("/proc/net/tls_stat") as f:
            return {k: int(v) for k, v in (line.split() for line in f if line.strip())}
    except (OSError, ValueError):
        return None


# ---- configs -------------------------------------------------------------------------

def tls_params(tls_dir, dest):
    """conf/nginx/avatar-tls-params.conf with the certificate of tls_dir."""
    with open(os.path.join(NGINX_CONF, "avatar-tls-params.conf")) as f:
        text = f.read().replace("/etc/ssl/avatar/", tls_dir + "/")
    if "/etc/ssl/" in text:
        raise RuntimeError("avatar-tls-params.conf: a certificate path was not rendered")
    with open(dest, "w") as f:
        f.write(text)
    return dest


def keepalive_lines():
    """The keep-alive lines of the project's TLS server, for the static row."""
    with open(os.path.join(NGINX_CONF, "avatar-fastpath-tls.conf")) as f:
        lines = re.findall(r"^\s*(keepalive_\w+\s+[^;]+;)", f.read(), re.M)
    if not lines:
        raise RuntimeError("avatar-fastpath-tls.conf: no keepalive_* lines")
    return lines


def static_tls_conf(run, store, port, workers, tls_dir):
    """zipf.py's static_conf, served over TLS and HTTP/2 with the
    project's TLS settings and keep-alive limits."""
    conf = zipf.static_conf(run, store, port, workers)
    with open(conf) as f:
        text = f.read()
    listen = re.compile(r"^(\s*)listen 127\.0\.0\.1:%d( [^;]*)?;$" % port, re.M)
    if len(listen.findall(text)) != 1:
        raise RuntimeError("zipf.static_conf: not one listen 127.0.0.1:%d line" % port)
    params = tls_params(tls_dir, os.path.join(run, "avatar-tls-params.conf"))
    text = listen.sub(lambda m: "%slisten 127.0.0.1:%d ssl http2%s;\n%sinclude %s;\n%s" % (
        m.group(1), port, m.group(2) or "", m.group(1), params,
        "".join("%s%s\n" % (m.group(1), k) for k in keepalive_lines()).rstrip("\n")), text)
    with open(conf, "w") as f:
        f.write(text)
    return conf


def make_cert(work):
    d = os.path.join(work, "h2-tls")
    if not os.path.exists(os.path.join(d, "avatar.crt")):
        subprocess.run([os.path.join(NGINX_CONF, "make-cert.sh"), d], check=True,
                       stdout=subprocess.DEVNULL)
    return d


# ---- rows ------------------------------------------------------------------------------

class H2Row(zipf.Row):
    """A zipf.Row over TLS and HTTP/2 (same process bookkeeping)."""

    def __init__(self, key, work, store, binary, workers, port, tls_dir):
        super().__init__("static" if key == "static" else "fastpath", work, store, binary,
                         workers, port)
        self.h2key, self.tls_dir = key, tls_dir
        self.url = "https://127.0.0.1:%d" % port

    def start(self):
        if self.h2key == "static":
            conf = static_tls_conf(self.run, self.store, self.port, self.workers, self.tls_dir)
            argv = ["nginx", "-p", self.run + "/", "-c", conf, "-e",
                    os.path.join(self.run, "error.log")]
            subprocess.run(argv + ["-t", "-q"], check=True, stdin=subprocess.DEVNULL)
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            # The same certificate as the static row: the stack makes one
            # only when RUN/tls has none.
            shutil.copytree(self.tls_dir, os.path.join(self.run, "tls"))
            argv = [STACK, "start", "--server", "nginx", "--mode", "bytes", "--tls",
                    "--fastpath", "--published", "--port", str(self.port), "--run", self.run,
                    "--avatars", self.store, "--workers", str(self.workers), "--bin",
                    self.binary, "--", "--default-id", "-1", "--sizes", "none",
                    "--formats", "none"]
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=120)
            if r.returncode != 0:
                raise RuntimeError("stack start (%s) exited %d: %s" % (
                    self.h2key, r.returncode, (r.stderr + r.stdout).strip()[-500:]))
            if self.h2key == "ktls":
                self._ktls_on()
        self.wait_ready(("-sk", "--http2"), "%{http_version} %{http_code}", "2 200")

    def _ktls_on(self):
        """Adds `ssl_conf_command Options KTLS;` to the rendered TLS
        settings and reloads nginx, waiting for the new workers."""
        nginx = os.path.join(self.run, "nginx")
        params = os.path.join(nginx, "snippets", "avatar-tls-params.conf")
        with open(params, "a") as f:
            f.write("ssl_conf_command Options KTLS;\n")
        with open(os.path.join(self.run, "front.pid")) as f:
            master = int(f.read().split()[0])
        old = set(_children(master))
        subprocess.run(["nginx", "-p", nginx + "/", "-c", os.path.join(nginx, "nginx.conf"),
                        "-e", os.path.join(nginx, "error.log"), "-s", "reload"],
                       check=True, capture_output=True, timeout=30)
        for _ in range(100):
            kids = set(_children(master))
            if kids and not kids & old:
                return
            time.sleep(0.1)
        raise RuntimeError("ktls: nginx did not reload")


# ---- the client --------------------------------------------------------------------------

def zipf_paths(m, lines, seed):
    """lines paths /ID, ids 1..m drawn from Zipf(1.0) (rank r is id r)."""
    cdf, s = [], 0.0
    for r in range(1, m + 1):
        s += 1.0 / r
        cdf.append(s)
    rnd = random.Random(seed)
    return ["/%d" % (bisect.bisect_left(cdf, rnd.random() * s) + 1) for _ in range(lines)]


def write_uris(path, url, paths):
    """h2load -i: the first line names scheme, host and port for all."""
    with open(path, "w") as f:
        for p in paths:
            f.write(url + p + "\n")
    return path


def parse_h2load(text):
    """h2load's summary -> dict; raises ValueError when it is not one."""
    fin = re.search(r"^finished in ([\d.]+)s, ([\d.]+) req/s", text, re.M)
    req = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    lat = re.search(r"^time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+"
                    r"([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", text, re.M)
    if not (fin and req and codes and lat):
        raise ValueError("not an h2load report")
    done = int(req.group(3))
    return {
        "seconds": float(fin.group(1)), "rps": float(fin.group(2)),
        "requests": done, "succeeded": int(req.group(4)),
        "failed": int(req.group(5)), "errored": int(req.group(6)), "timeout": int(req.group(7)),
        "non2xx": sum(int(codes.group(i)) for i in (2, 3, 4)),
        "min": measure._ms(lat.group(1), lat.group(2)), "max": measure._ms(lat.group(3), lat.group(4)),
        "mean": measure._ms(lat.group(5), lat.group(6)), "sd": measure._ms(lat.group(7), lat.group(8)),
    }


def log_percentiles(path):
    """p50 and p99 (ms) of h2load --log-file's third column (µs)."""
    times = []
    with open(path) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3:
                times.append(int(parts[2]))
    if not times:
        return None, None
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] / 1000.0
    return pick(0.50), pick(0.99)


def run_h2load(row, uris, seconds, work):
    logf = os.path.join(work, "h2load-%s.log" % row.h2key)
    argv = ["h2load", "-c", str(CONNECTIONS), "-m", str(STREAMS), "-i", uris,
            "-D", str(seconds), "--log-file", logf]
    roots = row.roots()
    before = measure.cpu_snapshot(roots)
    stat0 = tls_stat()
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=seconds + 60)
        out = r.stdout + r.stderr
    except subprocess.TimeoutExpired:
        out = ""
    cpu = measure.cpu_delta(before, measure.cpu_snapshot(roots))
    stat1 = tls_stat()
    try:
        res = parse_h2load(out)
    except ValueError as e:
        return {"error": "%s: %s" % (e, out.strip()[-300:])}
    res["p50"], res["p99"] = log_percentiles(logf)
    os.unlink(logf)
    res["cpu_us"] = cpu * 1e6 / res["requests"] if res["requests"] else None
    if stat0 is not None and stat1 is not None:
        res["tls_stat"] = {k: stat1[k] - stat0.get(k, 0) for k in stat1 if stat1[k] != stat0.get(k, 0)}
    return res


def run_h2(work, store, m, binary, workers, rounds=3, seconds=4, first_port=18800,
           lines=50000, seed=13, ktls=None):
    """The h2 rows over one store (zipf.make_store's DIR, ids 1..m).
    ktls: None to add the kernel TLS row where the kernel offers it, True
    to add it anyway (nginx then falls back to TLS in user space), False
    never. Returns the results dict markdown() and verdicts() read."""
    t0 = time.monotonic()
    tls_dir = make_cert(work)
    avail, why = ktls_status()
    keys = ["static", "fastpath"] + (["ktls"] if (avail if ktls is None else ktls) else [])
    paths = zipf_paths(m, lines, seed)
    rows, raw, uris = [], {k: [] for k in keys}, {}
    try:
        for i, key in enumerate(keys):
            row = H2Row(key, work, store, binary, workers, first_port + i, tls_dir)
            rows.append(row)
            row.start()
        uris = {r.h2key: write_uris(os.path.join(work, "h2-uris-%s" % r.h2key), r.url, paths)
                for r in rows}
        setup = time.monotonic() - t0
        for rnd in range(rounds):
            order = rows[rnd % len(rows):] + rows[:rnd % len(rows)]
            for r in order:
                res = run_h2load(r, uris[r.h2key], seconds, work)
                raw[r.h2key].append(res)
                log("ids=%d round %d %-8s %s" % (m, rnd + 1, r.h2key, res.get("error") or
                    "%8.0f req/s p50 %.2f p99 %.2f ms cpu %s µs/req, %d failed, %d non-2xx" % (
                        res["rps"], res["p50"] or 0, res["p99"] or 0,
                        "%.0f" % res["cpu_us"] if res["cpu_us"] else "-",
                        res["failed"], res["non2xx"])))
                time.sleep(0.2)
        ktls_log = None
        for r in rows:
            if r.h2key == "ktls":
                try:
                    with open(os.path.join(r.run, "nginx", "error.log")) as f:
                        ktls_log = f.read()[-2000:]
                except OSError:
                    pass
    finally:
        for r in rows:
            r.stop()
        for path in uris.values():
            try:
                os.unlink(path)
            except OSError:
                pass
    return {"m": m, "lines": lines, "seed": seed, "rounds": rounds, "seconds_each": seconds,
            "client": "h2load -c %d -m %d -i FILE -D %d" % (CONNECTIONS, STREAMS, seconds),
            "rows": keys, "raw": raw, "summary": summarize(raw, keys),
            "ktls": {"available": avail, "why": why, "row": "ktls" in keys, "error_log": ktls_log},
            "setup_s": setup, "total_s": time.monotonic() - t0}


def summarize(raw, keys):
    """Medians of the rounds per row, sums of failures, and the per-round
    ratios to static (req/s and CPU per request)."""
    s = {}
    base = raw.get("static", [])
    for key in keys:
        runs = raw[key]
        ok = [r for r in runs if "error" not in r]
        ratios, cpu_ratios = [], []
        for i, r in enumerate(runs):
            b = base[i] if i < len(base) else None
            if "error" in r or not b or "error" in b or not b["rps"]:
                continue
            ratios.append(r["rps"] / b["rps"])
            if r["cpu_us"] and b["cpu_us"]:
                cpu_ratios.append(r["cpu_us"] / b["cpu_us"])
        s[key] = {
            "runs": len(runs), "errors": [r["error"] for r in runs if "error" in r],
            "rps": median([r["rps"] for r in ok]), "p50": median([r["p50"] for r in ok]),
            "p99": median([r["p99"] for r in ok]), "mean": median([r["mean"] for r in ok]),
            "max": max([r["max"] for r in ok], default=None),
            "cpu_us": median([r["cpu_us"] for r in ok]),
            "failed": sum(r["failed"] + r["errored"] + r["timeout"] for r in ok),
            "non2xx": sum(r["non2xx"] for r in ok),
            "ratio": median(ratios), "cpu_ratio": median(cpu_ratios),
            "tls_stat": [r.get("tls_stat") for r in ok],
        }
    return s


def verdicts(res):
    """(ok, text) lines: the issue's target, and clean runs."""
    s, n = res["summary"], res["m"]
    out = []
    fp = s.get("fastpath")
    if not fp or fp["ratio"] is None:
        out.append((False, "HTTP/2 TLS fast path: no req/s figure against static (%s)"
                    % "; ".join((fp or {}).get("errors", [])[:1] or ["no run"])))
    else:
        out.append((fp["ratio"] >= TARGET, "HTTP/2 TLS fast path >= %.1fx nginx static over the same "
                    "HTTP/2 TLS, Zipf %d ids: %.2fx" % (TARGET, n, fp["ratio"])))
    for key in res["rows"]:
        r = s[key]
        if key != "static":
            out.append((r["failed"] == 0 and r["non2xx"] == 0 and not r["errors"],
                        "%s: %d failed, %d non-2xx, %d client errors" % (
                            LABEL[key], r["failed"], r["non2xx"], len(r["errors"]))))
    return out


def markdown(res):
    s = res["summary"]
    k = res["ktls"]
    md = ["## HTTP/2 over TLS: Zipf(1.0) over %d ids, 5 %% missing" % res["m"], "",
          "`%s` over %d Zipf-drawn URLs (tests/bench/h2.py), every row with the TLS settings of "
          "conf/nginx/avatar-tls-params.conf and one certificate; medians of %d rounds of %d s, "
          "ratios to static from the same round. CPU: every process of the row, µs per request. "
          "p50/p99 from h2load's per-request log." % (
              res["client"], res["lines"], res["rounds"], res["seconds_each"]), "", "```"]
    md += ["%s %s" % ("PASS" if ok else "FAIL", t) for ok, t in verdicts(res)] + ["```", ""]
    md += ["| row | req/s | × static | p50 ms | p99 ms | max ms | CPU µs/req | × static CPU | failed | non-2xx |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    f = lambda v, p: ("%." + str(p) + "f") % v if v is not None else "-"
    for key in res["rows"]:
        r = s[key]
        if r["rps"] is None:
            md.append("| %s | no run | | | | | | | | |" % LABEL[key])
            continue
        md.append("| %s | %.0f | %s | %s | %s | %s | %s | %s | %d | %d |" % (
            LABEL[key], r["rps"], f(r["ratio"], 2) if key != "static" else "1.00",
            f(r["p50"], 2), f(r["p99"], 2), f(r["max"], 0), f(r["cpu_us"], 0),
            f(r["cpu_ratio"], 2) if key != "static" else "1.00", r["failed"], r["non2xx"]))
    md += ["", "Kernel TLS: %s." % (
        "row measured" if k["row"] else "no row, %s" % k["why"]), ""]
    return "\n".join(md)


def main():
    import argparse
    ap = argparse.ArgumentParser(description="HTTP/2 over TLS rows over a Zipf store")
    ap.add_argument("--n", type=int, default=100000, help="avatars with a file (default 100000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--lines", type=int, default=50000, help="Zipf-drawn URLs in h2load's file")
    ap.add_argument("--ktls", choices=("auto", "on", "off"), default="auto",
                    help="the kernel TLS row: where the kernel offers it, always, never")
    ap.add_argument("--bin", default=os.path.join(ROOT, "avatar.fcgi"))
    ap.add_argument("--port", type=int, default=18800)
    ap.add_argument("--json", help="also write the results dict here")
    a = ap.parse_args()
    # SIGTERM (timeout, a CI runner) unwinds like an exception, so the
    # finally blocks stop every server started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    workers = len(os.sched_getaffinity(0))
    work = tempfile.mkdtemp(prefix="avatar-h2.")
    os.chmod(work, 0o755)
    t0 = time.monotonic()
    try:
        count = zipf.pool_size(a.n)
        pool = zipf.make_pool(work, os.path.abspath(a.bin), count)
        store, m, made = zipf.make_store(work, pool, a.n, count)
        log("N=%d: %d ids, %d with a file, store made in %.1f s" % (a.n, m, made, time.monotonic() - t0))
        res = run_h2(work, store, m, os.path.abspath(a.bin), workers, a.rounds, a.seconds,
                     a.port, a.lines, ktls={"auto": None, "on": True, "off": False}[a.ktls])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    print(markdown(res))
    print("h2 part: %.0f s (setup %.0f s); whole run %.0f s." % (
        res["total_s"], res["setup_s"], time.monotonic() - t0))
    return 1 if any(not ok for ok, _ in verdicts(res)) else 0


if __name__ == "__main__":
    sys.exit(main())

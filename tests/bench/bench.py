"""`make bench`: every row side by side on this machine, in interleaved rounds.

Makes the avatar, starts every row's server at once (each on its own
loopback port), warms them up, then runs the rounds: for each kind of run,
every row in turn, the order rotated each round, so all rows share the
machine's noise. Each round ends with the upload runs: signed PUTs of a
2 MB JPEG through nginx alone (uploads per second, CPU per upload), then
the GET run of the avatar.fcgi nginx rows twice, without and with uploads
in flight, and the GET run of one row per mode at /1000?s=64 and at
/1000 (issue 12's variants, made by the batch command before the servers
start). Medians, ratios to nginx static of the same round, the
targets' PASS/FAIL lines, a markdown report, a chart and the machine
description follow. Started by tests/bench/run, which installs what is
missing and raises the descriptor limit.
"""
import argparse
import datetime
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import measure
import report
import uploads
import variants
from servers import HERE, ROOT, ROWS, LABEL, UPLOAD_ROWS, Server, tools_missing

# Sizes of each profile. orig_t and c1000_t only bound a run that would
# otherwise take too long (a slow row); they do not shape a fast one.
# upload_t: seconds of the uploads-only run; the GET runs without and with
# uploads are the "long" kind (long_t seconds each).
# The smoke's timed runs are bounded by their counts, their times only a
# safety net: ab's first TLS handshakes move in step (100 at -c 100, 1000
# at -c 1000), so no request ends before nearly all of them are done, and
# on a busy 2-core machine that took longer than the 1 s and 2 s once
# allowed here: 0 requests, no report, a failed smoke test.
PLANS = {
    "full": dict(rounds=3, orig_n=4000, orig_c=100, orig_t=30, long_n=5000000, long_t=3,
                 ka_t=3, c1000_n=10000, c1000_t=3, warm_n=1000, upload_t=8),
    "quick": dict(rounds=1, orig_n=4000, orig_c=100, orig_t=8, long_n=5000000, long_t=1,
                  ka_t=1, c1000_n=4000, c1000_t=2, warm_n=300, upload_t=2),
    "smoke": dict(rounds=1, orig_n=200, orig_c=20, orig_t=5, long_n=500, long_t=10,
                  ka_t=2, c1000_n=1000, c1000_t=20, warm_n=50, upload_t=2),
}
# Rows QUICK=1 leaves out unless --rows names them.
QUICK_SKIPS = ("flask", "starlette", "tls-orig", "tls-project")
TARGET_SIZE = 36934  # bytes of the original measurement's avatar
# The upload: a 3000x2000 JPEG of about 2 MB, what a phone photo weighs.
UPLOAD_W, UPLOAD_H, UPLOAD_SIZE = 3000, 2000, 2000000
# Uploads kept in flight per upload process: one being worked on, one
# waiting, so the upload processes never idle between two PUTs.
UPLOADS_PER_PROCESS = 2
# Seconds the uploads run before the GET client starts, so bodies are
# already streaming through nginx when the first GET is timed.
UPLOAD_SETTLE = 1.0


T0 = time.monotonic()


def log(msg):
    print("[%4.0fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def make_avatar(dest_dir):
    """A 400x400 JPEG of about 37 kB, drawn from a fixed seed, stored as
    -1.png and 1000.png. The quality is searched so that the size is close
    to the original's whatever ImageMagick version draws it."""
    best = None
    for q in range(80, 97):
        path = os.path.join(dest_dir, "q%d.jpg" % q)
        subprocess.run(["convert", "-seed", "7", "-size", "400x400", "plasma:fractal",
                        "-blur", "0x1", "-strip", "-sampling-factor", "4:4:4",
                        "-quality", str(q), "jpg:" + path], check=True)
        size = os.path.getsize(path)
        if best is None or abs(size - TARGET_SIZE) < abs(best[1] - TARGET_SIZE):
            best = (path, size)
        if size > TARGET_SIZE:
            break
    with open(best[0], "rb") as f:
        data = f.read()
    for name in ("-1.png", "1000.png"):
        with open(os.path.join(dest_dir, name), "wb") as f:
            f.write(data)
    for q in range(80, 97):
        try:
            os.unlink(os.path.join(dest_dir, "q%d.jpg" % q))
        except FileNotFoundError:
            pass
    return data


def make_upload(work):
    """The upload body: a 3000x2000 JPEG near 2 MB, drawn from a fixed seed:
    a plasma fractal (drawn at a fifth of the size, which is 10 times
    quicker, and scaled up) with Gaussian noise, so it compresses like a
    photo. The quality is searched from 91 (where Debian 12's ImageMagick
    lands) for the size closest to UPLOAD_SIZE, whatever version encodes it."""
    base = os.path.join(work, "upload.ppm")
    subprocess.run(["convert", "-seed", "7", "-size", "%dx%d" % (UPLOAD_W // 5, UPLOAD_H // 5),
                    "plasma:fractal", "-resize", "%dx%d!" % (UPLOAD_W, UPLOAD_H),
                    "-attenuate", "0.5", "+noise", "Gaussian", "ppm:" + base], check=True)
    sizes = {}

    def encode(q):
        path = os.path.join(work, "upload-q%d.jpg" % q)
        subprocess.run(["convert", base, "-sampling-factor", "4:2:0", "-quality", str(q),
                        "jpg:" + path], check=True)
        sizes[q] = path, os.path.getsize(path)
        return sizes[q][1]

    q = 91
    step = 1 if encode(q) < UPLOAD_SIZE else -1
    while 50 < q + step < 100:
        q += step
        if (encode(q) < UPLOAD_SIZE) != (step > 0):
            break  # crossed the target
    best = min(sizes.values(), key=lambda p: abs(p[1] - UPLOAD_SIZE))
    with open(best[0], "rb") as f:
        data = f.read()
    for path, _ in sizes.values():
        os.unlink(path)
    os.unlink(base)
    return data


def upload_key(work, binary):
    """A fresh signing key for the upload rows, and None; or None and why
    uploads cannot be measured with this binary."""
    key = os.path.join(work, "upload.key")
    with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    try:
        uploads.sign(binary, key, [1])
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return None, "cannot sign a link (%s)" % e
    return key, None


def upload_round(rnd, servers, img, plan, up):
    """One round of the upload runs: the upload row through the first of
    UPLOAD_ROWS alone, then each upload row's GET run without and with
    uploads in flight (which goes first alternates by round)."""
    by_key = {s.key: s for s in servers}
    rows = [k for k in up["rows"] if k in by_key]
    slots = up["slots"]
    ids = range(uploads.FIRST_ID, uploads.FIRST_ID + slots)
    if rows:
        s = by_key[rows[0]]
        res = uploads.run_alone(s.port, s.root_pids(), img,
                                uploads.sign(s.binary, up["key"], ids), plan["upload_t"])
        up["alone"].append(res)
        log("bench: round %d upload %-20s %6.2f uploads/s  %d stored of %d  errors %d  "
            "p50 %5.0f ms  cpu %s ms/upload in the upload processes"
            % (rnd + 1, s.key, res["rate"] or 0, res["stored"], res["uploads"], res["errors"],
               res["p50"] or 0, "%.0f" % res["cpu_ms"] if res["cpu_ms"] else "-"))
    for key in rows:
        s = by_key[key]
        links = uploads.sign(s.binary, up["key"], ids)
        pair = {}
        for phase in (("without", "with") if rnd % 2 == 0 else ("with", "without")):
            if phase == "without":
                pair["without"] = measure.run_one(report.TARGET_KIND, s.url, s.root_pids(), plan)
            else:
                pair["with"], pair["uploads"] = uploads.run_with_gets(
                    report.TARGET_KIND, s.url, s.port, s.root_pids(), img, links, plan,
                    UPLOAD_SETTLE)
            time.sleep(0.2)
        up["get"][key].append(pair)
        a, b, u = pair["without"], pair["with"], pair["uploads"]
        if "error" in a or "error" in b:
            log("bench: round %d get+up %-20s ERROR %s" % (rnd + 1, key, a.get("error") or b["error"]))
            continue
        log("bench: round %d get+up %-20s %8.0f req/s with uploads, %8.0f without (%.2f x)  "
            "max %5.0f ms (%5.0f without)  %d uploads during the GETs, %d stored of %d"
            % (rnd + 1, key, b["rps"], a["rps"], b["rps"] / a["rps"] if a["rps"] else 0,
               b["max"], a["max"], u["during_get"], u["stored"], u["uploads"]))


def raise_limits():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    if hard != resource.RLIM_INFINITY and hard < want:
        want = hard
    if soft == resource.RLIM_INFINITY or soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def stop_all(servers):
    """Stops every server at once: each stop may wait for a graceful exit."""
    def stop(s):
        try:
            s.stop()
        except Exception as e:  # keep stopping the others
            log("bench: stopping %s: %s" % (s.key, e))
    threads = [threading.Thread(target=stop, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log("bench: stopped every server")


def keep_logs(servers, raw, up, out_dir):
    """Copies the logs of every row that had a failed, non-2xx or broken run
    to OUT/logs/ROW/, so a rare failure can be explained after the work
    directory is gone. Old logs are removed first."""
    logs = os.path.join(out_dir, "logs")
    shutil.rmtree(logs, ignore_errors=True)
    for s in servers:
        runs = [r for kind in raw.values() for r in kind.get(s.key, [])]
        runs += [r for p in up["get"].get(s.key, []) for r in p.values()]
        if up["rows"][:1] == [s.key]:
            runs += up["alone"]
        if not any(r.get("error") or r.get("failed") or r.get("non2xx") or r.get("errors")
                   or r.get("uploads", 0) != r.get("stored", 0) for r in runs):
            continue
        for top, _dirs, files in os.walk(s.run):
            for name in files:
                if name.endswith(".log"):
                    rel = os.path.relpath(os.path.join(top, name), s.run)
                    dest = os.path.join(logs, s.key, rel)
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    shutil.copyfile(os.path.join(top, name), dest)


def count_procs(server):
    return len(measure.cpu_snapshot(server.root_pids()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one short round (make bench QUICK=1)")
    ap.add_argument("--smoke", action="store_true", help="one tiny round, for tests/t/40-bench-smoke.t")
    ap.add_argument("--rounds", type=int, help="number of interleaved rounds")
    ap.add_argument("--rows", help="comma list of rows to run (default: all): "
                    + ",".join(k for k, _, _ in ROWS))
    ap.add_argument("--out", help="results directory (default tests/bench/results, "
                    "or tests/bench/results/quick with --quick)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--bin", default=os.path.join(ROOT, "avatar.fcgi"),
                    help="the avatar.fcgi the project's rows run (default: the one built here)")
    args = ap.parse_args()

    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    plan = dict(PLANS[profile])
    if args.rounds:
        if not 1 <= args.rounds <= 50:
            ap.error("--rounds: %d is not within 1..50" % args.rounds)
        plan["rounds"] = args.rounds
    rows = [k for k, _, _ in ROWS]
    if profile == "quick" and not args.rows:
        # QUICK=1 stays under two minutes with the Zipf part: the static
        # and project rows only; the Python servers and the TLS rows
        # (ab's handshakes set their pace) are in the full run.
        rows = [k for k in rows if k not in QUICK_SKIPS]
    if args.rows:
        want = args.rows.split(",")
        bad = [w for w in want if w not in rows]
        if bad:
            ap.error("--rows: unknown row %s" % ",".join(bad))
        # nginx static is every ratio's denominator: always measured.
        rows = [k for k in rows if k in want or k == "nginx-static"]
    out_dir = args.out or os.path.join(HERE, "results", "quick" if profile == "quick" else "")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    missing = tools_missing()
    if missing:
        log("bench: missing programs: %s (tests/lib/ensure-deps bench installs them)"
            % " ".join(missing))
        return 2
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        log("bench: %s is not built (make)" % binary)
        return 2
    nofile = raise_limits()
    if nofile < 4096:
        log("bench: the descriptor limit is %d; -c 1000 needs about 4096" % nofile)
    workers = len(os.sched_getaffinity(0))

    # SIGTERM (make interrupted, a timeout) ends the bench through finally.
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="avatar-bench.")
    os.chmod(work, 0o755)  # nginx/lighttpd workers may run as another user
    servers = []
    not_started = {}
    raw = {}
    # The upload runs: what they measure, and why they did not run if not.
    up = {"rows": [k for k in UPLOAD_ROWS if k in rows], "slots": UPLOADS_PER_PROCESS * workers,
          "upload_workers": workers, "settle": UPLOAD_SETTLE, "image": None, "skipped": None,
          "alone": [],
          "get": {k: [] for k in UPLOAD_ROWS if k in rows}}
    # The variant runs: the rows asked for, those measured, and why not.
    asked = [k for k in variants.VARIANT_ROWS if k in rows]
    vr = {"asked": asked, "rows": list(asked), "pairs": {k: [] for k in asked},
          "not_measured": {}, "skipped": None, "bytes": None, "batch_s": None, "size": variants.SIZE}
    try:
        avatars = os.path.join(work, "avatars")
        os.makedirs(avatars)
        os.chmod(avatars, 0o755)
        avatar = make_avatar(avatars)
        log("bench: %s profile, %d round(s), %d rows, %d workers per server, avatar %d bytes, "
            "work dir %s" % (profile, plan["rounds"], len(rows), workers, len(avatar), work))
        img = None
        if up["rows"]:
            up["key"], up["skipped"] = upload_key(work, binary)
            if up["skipped"]:
                log("bench: no upload runs: %s" % up["skipped"])
                up["rows"] = []
            else:
                img = make_upload(work)
                up["image"] = {"bytes": len(img), "width": UPLOAD_W, "height": UPLOAD_H}
                log("bench: upload body: %dx%d JPEG, %d bytes, %d in flight, "
                    "--upload-workers %d" % (UPLOAD_W, UPLOAD_H, len(img), up["slots"], workers))
        if vr["asked"]:
            vr["skipped"], vr["batch_s"] = variants.make(binary, avatars)
            if vr["skipped"]:
                log("bench: no variant runs: %s" % vr["skipped"])
                vr["rows"] = []
            else:
                vr["bytes"] = variants.bytes_table(avatars)
                log("bench: variants of the avatars made by the batch command in %.1f s"
                    % vr["batch_s"])
        for key in rows:
            # The upload rows' responders accept signed writes, with as many
            # upload processes as read workers.
            extra = ["--key-file", up["key"], "--upload-workers", str(workers)] \
                if key in up["rows"] else []
            s = Server(key, work, avatars, avatar, workers, binary, extra)
            log("bench: starting %-20s %s" % (key, s.url))
            try:
                s.start()
                servers.append(s)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                # One broken row must not hide the others: it is reported
                # and every target that needs it fails.
                log("bench: %s did not start: %s" % (key, e))
                not_started[key] = str(e)
                s.stop()
        if "nginx-static" in not_started:
            log("bench: nginx static is every ratio's reference; stopping")
            return 2
        rows = [s.key for s in servers]
        # Warm-up: imports, caches and worker spawning happen before round 1.
        warm = dict(plan, orig_n=plan["warm_n"], orig_c=10, orig_t=10)
        for s in servers:
            measure.run_one("orig", s.url, s.root_pids(), warm)
        # One upload per slot through each upload row: libvips starts, and
        # a broken write path shows before the rounds.
        up["rows"] = [k for k in up["rows"] if k not in not_started]
        for s in servers:
            if s.key in up["rows"]:
                ids = range(uploads.FIRST_ID, uploads.FIRST_ID + up["slots"])
                w = uploads.run_alone(s.port, s.root_pids(), img,
                                      uploads.sign(binary, up["key"], ids), 0)
                if w["stored"] != w["uploads"] or w["errors"]:
                    log("bench: %s: warm-up uploads: %s, errors %s"
                        % (s.key, w["statuses"], w["error_samples"]))
        vr["rows"] = [k for k in vr["rows"] if k not in not_started]
        variants.check(servers, avatars, vr)
        for key, why in vr["not_measured"].items():
            log("bench: %s: /1000?s=%d not measured: %s" % (key, variants.SIZE, why))
        procs = {s.key: count_procs(s) for s in servers}
        log("bench: all rows up and warm")

        raw = {k: {s.key: [] for s in servers} for k in report.KINDS}
        for rnd in range(plan["rounds"]):
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            for kind in report.KINDS:
                for s in order:
                    res = measure.run_one(kind, s.url, s.root_pids(), plan)
                    raw[kind][s.key].append(res)
                    if "error" in res:
                        log("bench: round %d %-6s %-20s ERROR %s"
                            % (rnd + 1, kind, s.key, res["error"]))
                    else:
                        log("bench: round %d %-6s %-20s %8.0f req/s  p99 %6.1f ms  max %6.0f ms  "
                            "failed %d  non-2xx %d  cpu %s µs/req"
                            % (rnd + 1, kind, s.key, res["rps"], res["p99"], res["max"],
                               res["failed"], res["non2xx"],
                               "%.0f" % res["cpu_us"] if res["cpu_us"] else "-"))
                    time.sleep(0.2)
            upload_round(rnd, servers, img, plan, up)
            variants.run_round(rnd, servers, plan, vr, log)
        # A pool that respawned or grew during the runs shows both counts.
        for s in servers:
            after = count_procs(s)
            procs[s.key] = str(procs[s.key]) if after == procs[s.key] \
                else "%d, %d after the runs" % (procs[s.key], after)
    finally:
        stop_all(servers)
        keep_logs(servers, raw, up, out_dir)
        if args.keep:
            log("bench: work dir kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - started
    sums = report.summarize(raw, rows)
    verdicts = report.targets(raw, sums, rows, not_started)
    up.pop("key", None)  # a path in the deleted work directory
    usums = report.upload_summary(up)
    verdicts += report.upload_targets(up, usums, not_started)
    vsums = variants.summary(vr)
    verdicts += variants.targets(vr, vsums, not_started)
    png = report.chart(sums, rows, out_dir)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = {"full": "make bench", "quick": "make bench QUICK=1",
           "smoke": "tests/bench/run --smoke"}[profile]

    verdict_lines = []
    for ok, text in verdicts:
        verdict_lines.append("%s %s" % ("INFO" if ok is None else "PASS" if ok else "FAIL", text))
    md = ["# Benchmark results", "",
          "Made by `%s` on %s in %.0f s: %d interleaved round(s), median reported. "
          "Every row serves the same %d-byte 400x400 JPEG as `/1000` from 127.0.0.1. "
          "Every server has %d workers (nproc): nginx `worker_processes %d`, avatar.fcgi "
          "`--workers %d`, gunicorn `-w %d`, uvicorn `--workers %d`; lighttpd runs as one "
          "process, as conf/lighttpd ships it. The *processes* column counts the server's "
          "processes (front server master and workers, responder supervisor and workers; "
          "in the rows that take uploads, %s, also the upload manager and `--upload-workers "
          "%d` upload processes) whose CPU time is measured. Ratios compare with nginx "
          "static in the same round."
          % (cmd, now, elapsed, plan["rounds"], len(avatar), workers, workers, workers,
             workers, workers, " and ".join(LABEL[k] for k in up["get"]) or "none", workers),
          "",
          "## Targets (judged on the %s)" % report.KIND_SHORT[report.TARGET_KIND], "",
          "```"] + verdict_lines + ["```", ""]
    md += ["## Requests per second, all runs", "", report.overview(sums, rows), ""]
    if png:
        md += ["![requests per second](%s)" % png, ""]
    for kind in report.KINDS:
        md += ["## %s" % report.KIND_TITLE[kind], "", report.table(sums, kind, rows, procs), ""]
    md += report.upload_tables(up, usums)
    if vr["asked"]:
        md += variants.tables(vr, vsums)
    if not_started:
        md += ["## Rows that did not start", ""] + \
            ["- %s: %s" % (LABEL[k], e) for k, e in not_started.items()] + [""]
    notes = ["- %s: %s" % (s.label, n) for s in servers for n in s.notes]
    if notes:
        md += ["## What the bench changed in the project's rendered configs", ""] + notes + [""]
    errs = [(k, r, e) for k in report.KINDS for r in rows for e in sums[k][r]["errors"]]
    if errs:
        md += ["## Client errors", ""] + ["- %s, %s: %s" % (LABEL[r], k, e) for k, r, e in errs] + [""]
    md += ["## Machine", "", report.machine(ROOT, binary), ""]
    text = "\n".join(md)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "raw.json"), "w") as f:
        json.dump({"profile": profile, "plan": plan, "workers": workers, "date": now,
                   "elapsed_s": elapsed, "avatar_bytes": len(avatar), "processes": procs,
                   "not_started": not_started,
                   "changed": {s.key: s.notes for s in servers if s.notes}, "raw": raw,
                   "uploads": up, "variants": vr},
                  f, indent=1, ensure_ascii=False)
    print(text)
    print("bench: results in %s (%.0f s)" % (out_dir, elapsed))
    failed = any(ok is False for ok, _ in verdicts)
    # The smoke run only proves the driver works; its sizes are too small
    # for the targets to mean anything.
    return 1 if failed and profile != "smoke" else 0


if __name__ == "__main__":
    sys.exit(main())

"""Turns the rounds' raw results into medians, target verdicts, a markdown
report, a gnuplot chart and a machine description. Pure bookkeeping: this
file never runs a load client and never touches a server.
"""
import os
import platform
import re
import statistics
import subprocess

from servers import LABEL, GROUP

KINDS = ["orig", "long", "ka", "c1000"]
KIND_TITLE = {
    "orig": "original command: `ab -n 4000 -c 100` (new connection per request)",
    "long": "longer run: `ab -c 100` for a fixed time (new connection per request)",
    "ka": "keep-alive: `wrk -t 1 -c 100` for a fixed time",
    "c1000": "1000 concurrent: `ab -c 1000` (new connection per request)",
}
KIND_SHORT = {"orig": "ab -n 4000 -c 100", "long": "ab -c 100 (timed)",
              "ka": "wrk keep-alive -c 100", "c1000": "ab -c 1000"}
# The kind the ratio targets are judged on: the original client, run long
# enough for stable figures.
TARGET_KIND = "long"
STATIC = {"nginx": "nginx-static", "lighttpd": "lighttpd-static"}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(raw, rows):
    """raw[kind][row] is a list of per-round results (dicts). Returns
    sums[kind][row] with medians, worst cases and per-round ratios to
    nginx static of the same round and kind."""
    sums = {}
    for kind in KINDS:
        sums[kind] = {}
        static = raw[kind].get("nginx-static", [])
        for row in rows:
            runs = raw[kind].get(row, [])
            ok = [r for r in runs if "error" not in r]
            ratios, cpu_ratios = [], []
            for i, r in enumerate(runs):
                s = static[i] if i < len(static) else None
                if "error" in r or not s or "error" in s:
                    continue
                ratios.append(r["rps"] / s["rps"] if s["rps"] else None)
                if r.get("cpu_us") and s.get("cpu_us"):
                    cpu_ratios.append(r["cpu_us"] / s["cpu_us"])
            sums[kind][row] = {
                "runs": len(runs),
                "errors": [r["error"] for r in runs if "error" in r],
                "rps": median([r["rps"] for r in ok]),
                "ratio": median(ratios),
                "p50": median([r["p50"] for r in ok]),
                "p99": median([r["p99"] for r in ok]),
                "max": max([r["max"] for r in ok], default=None),
                "failed": sum(r["failed"] for r in ok),
                "failed_detail": {w: sum(r.get("failed_detail", {}).get(w, 0) for r in ok)
                                  for w in ("connect", "receive", "length", "exceptions")},
                "non2xx": sum(r["non2xx"] for r in ok),
                "cpu_us": median([r.get("cpu_us") for r in ok]),
                # Front server and responder apart, for the rows that have both.
                "cpu_parts": [median([r["cpu_parts_us"][i] for r in ok])
                              for i in range(min((len(r["cpu_parts_us"]) for r in ok), default=0))],
                "cpu_ratio": median(cpu_ratios),
            }
    return sums


def round_ratios(raw, kind, a, b, field="rps"):
    """a/b for one field in each round (same round, same kind), in round
    order; rounds where either has no figure are left out."""
    ra, rb = raw[kind].get(a, []), raw[kind].get(b, [])
    vals = []
    for x, y in zip(ra, rb):
        if "error" in x or "error" in y or not x.get(field) or not y.get(field):
            continue
        vals.append(x[field] / y[field])
    return vals


def pair_ratio(raw, kind, a, b, field="rps"):
    """Median over rounds of a/b for one field, same round, same kind."""
    return median(round_ratios(raw, kind, a, b, field))


def targets(raw, sums, rows, not_started):
    """The issue's targets as (ok, text) lines; ok is None for INFO lines.
    A target whose row did not start fails; one whose row was not asked
    for (--rows) is left out."""
    out = []
    k = TARGET_KIND

    def ratio_line(row, base, field, op, limit, what, kind=None):
        kind = kind or k
        gone = [r for r in (row, base) if r in not_started]
        if gone:
            out.append((False, "%s: %s against %s not measured, %s did not start"
                        % (LABEL[row], what, LABEL[base],
                           " and ".join(LABEL[r] for r in gone))))
            return
        if row not in rows or base not in rows:
            return
        v = pair_ratio(raw, kind, row, base, field)
        if v is None:
            out.append((False, "%s: no %s figure against %s" % (LABEL[row], what, LABEL[base])))
            return
        ok = v >= limit if op == ">=" else v <= limit
        out.append((ok, "%s: %.2f × %s %s (target %s %.2f%s)"
                    % (LABEL[row], v, LABEL[base], what, "≥" if op == ">=" else "≤", limit,
                       "" if kind == k else ", judged on " + KIND_SHORT[kind])))

    ratio_line("nginx-xaccel", "nginx-static", "rps", ">=", 0.8, "req/s")
    ratio_line("nginx-xaccel", "nginx-static", "cpu_us", "<=", 1.5, "server CPU/request")
    ratio_line("nginx-bytes", "nginx-static", "rps", ">=", 0.6, "req/s")
    ratio_line("lighttpd-xsendfile", "lighttpd-static", "rps", ">=", 0.8, "req/s")
    for row in ("nginx-xaccel", "nginx-bytes", "lighttpd-xsendfile", "lighttpd-bytes"):
        ratio_line(row, "starlette", "rps", ">=", 3.0, "req/s")
    # No TLS target here: the two TLS rows stay in the tables for comparison
    # with the original figures, but a keep-alive client against an
    # original that refused keep-alive measured the setups, not the
    # servers. The TLS target (issue 13) is HTTP/2 over TLS with the same
    # client and settings for both rows: tests/bench/h2.py.

    # Where the CPU of a proxied row goes: front server and responder apart.
    for row, base in (("nginx-xaccel", "nginx-static"), ("nginx-bytes", "nginx-static"),
                      ("lighttpd-xsendfile", "lighttpd-static"),
                      ("lighttpd-bytes", "lighttpd-static")):
        if row not in rows or base not in rows:
            continue
        parts, ref = sums[k][row]["cpu_parts"], sums[k][base]["cpu_us"]
        if len(parts) == 2 and None not in parts and ref:
            out.append((None, "%s: server CPU %.0f µs/request = front server %.0f (%.2f × %s's "
                        "%.0f) + responder %.0f" % (LABEL[row], parts[0] + parts[1], parts[0],
                                                    parts[0] / ref, LABEL[base], ref, parts[1])))
    if "tls-project" in rows and "tls-orig" in rows:
        v = pair_ratio(raw, k, "tls-project", "tls-orig", "cpu_us")
        if v is not None:
            out.append((None, "%s: %.2f × %s server CPU/request (ab makes a full handshake per "
                        "request, so the client sets the pace)"
                        % (LABEL["tls-project"], v, LABEL["tls-orig"])))

    # Clean runs: every kind, every round, including -c 1000.
    for row in not_started:
        out.append((False if GROUP[row] == "project" else None,
                    "%s: did not start" % LABEL[row]))
    for row in rows:
        failed = sum(sums[kd][row]["failed"] for kd in KINDS)
        non2xx = sum(sums[kd][row]["non2xx"] for kd in KINDS)
        errors = sum(len(sums[kd][row]["errors"]) for kd in KINDS)
        worst = max((sums[kd][row]["max"] or 0) for kd in KINDS)
        worst_kind = max(KINDS, key=lambda kd: sums[kd][row]["max"] or 0)
        runs = sum(sums[kd][row]["runs"] for kd in KINDS)
        ok = failed == 0 and non2xx == 0 and errors == 0 and worst < 1000
        why = ""
        if failed:  # ab's own breakdown, and in which runs
            why = " (%s)" % ", ".join(
                "%s %d in %s" % (w, sums[kd][row]["failed_detail"][w], KIND_SHORT[kd])
                for kd in KINDS for w in ("connect", "receive", "length", "exceptions")
                if sums[kd][row]["failed_detail"][w])
        text = ("%s: %d failed%s, %d non-2xx, %d client errors, slowest request %.0f ms (%s) "
                "over %d runs (target 0, 0, 0, < 1000 ms)"
                % (LABEL[row], failed, why, non2xx, errors, worst, KIND_SHORT[worst_kind], runs))
        # The targets bind the project's rows; the comparison rows are
        # reported the same way so their limits are visible.
        out.append((ok if GROUP[row] == "project" else None, text))
    return out


# ---- the upload runs ------------------------------------------------------------
# raw.json's "uploads": the upload row (uploads only, through the first of
# its rows) and, per row, pairs of GET runs without and with uploads in
# flight, from the same round. Runs made before the write path have none.
UPLOAD_RATIO = 0.6     # GET req/s with uploads, at least this × without
UPLOAD_MAX_MS = 1000   # and no GET slower than this meanwhile


def upload_summary(up):
    """Medians of the upload runs: {"alone": {...}, "get": {row: {...}}}."""
    alone = up.get("alone", [])
    parts = [r["cpu_parts_ms"] for r in alone if r.get("cpu_parts_ms")]
    statuses = {}
    for r in alone:
        for code, n in r["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    out = {"alone": {
        "runs": len(alone),
        "rate": median([r["rate"] for r in alone]),
        "cpu_ms": median([r["cpu_ms"] for r in alone]),
        "cpu_parts_ms": [median([p[i] for p in parts]) for i in range(3)] if parts else None,
        "p50": median([r["p50"] for r in alone]),
        "max": max([r["max"] for r in alone if r["max"] is not None], default=None),
        "uploads": sum(r["uploads"] for r in alone),
        "stored": sum(r["stored"] for r in alone),
        "errors": sum(r["errors"] for r in alone),
        "statuses": statuses,
    }, "get": {}}
    for row, pairs in up.get("get", {}).items():
        ok = [p for p in pairs if "error" not in p["without"] and "error" not in p["with"]]
        ratios = [p["with"]["rps"] / p["without"]["rps"] for p in ok if p["without"]["rps"]]
        ups = [p["uploads"] for p in pairs]
        out["get"][row] = {
            "runs": len(pairs),
            "errors": [p[w]["error"] for p in pairs for w in ("without", "with")
                       if "error" in p[w]],
            "without": median([p["without"]["rps"] for p in ok]),
            "with": median([p["with"]["rps"] for p in ok]),
            "ratio": median(ratios),
            "p99_without": median([p["without"]["p99"] for p in ok]),
            "p99_with": median([p["with"]["p99"] for p in ok]),
            "max_without": max([p["without"]["max"] for p in ok], default=None),
            "max_with": max([p["with"]["max"] for p in ok], default=None),
            "failed_with": sum(p["with"]["failed"] + p["with"]["non2xx"] for p in ok),
            "up_rate": median([u["rate_during_get"] for u in ups]),
            "up_during": sum(u["during_get"] for u in ups),
            "uploads": sum(u["uploads"] for u in ups),
            "stored": sum(u["stored"] for u in ups),
            "up_errors": sum(u["errors"] for u in ups),
        }
    return out


def upload_targets(up, usums, not_started):
    """The write path's targets as (ok, text) lines, like targets(). Rows
    not asked for (--rows) are left out; asked for but not measured fails."""
    out = []
    if up.get("skipped"):
        return [(False, "uploads: not measured, %s" % up["skipped"])]
    rows = list(up.get("get", {}))
    for row in rows:
        if row in not_started:
            out.append((False, "%s: GETs while uploading not measured, the row did not start"
                        % LABEL[row]))
    rows = [r for r in rows if r not in not_started]
    if not rows:
        return out
    a = usums["alone"]
    slots = up.get("slots", 0)
    what = "%d uploads in flight" % slots
    if a["runs"]:
        out.append((a["stored"] == a["uploads"] > 0 and a["errors"] == 0,
                    "uploads through %s: %d of %d stored (answers %s), %d client errors "
                    "(target: every one stored)"
                    % (LABEL[rows[0]], a["stored"], a["uploads"],
                       ", ".join("%s × %s" % (n, c) for c, n in sorted(a["statuses"].items()))
                       or "none", a["errors"])))
    for row in rows:
        g = usums["get"][row]
        if g["ratio"] is None:
            out.append((False, "%s: no GET figure while uploading%s"
                        % (LABEL[row], " (%s)" % g["errors"][0][:200] if g["errors"] else "")))
            continue
        out.append((g["ratio"] >= UPLOAD_RATIO,
                    "%s: %.2f × its own req/s with %s (%s, same round; target ≥ %.2f)"
                    % (LABEL[row], g["ratio"], what, KIND_SHORT[TARGET_KIND], UPLOAD_RATIO)))
        out.append((g["max_with"] < UPLOAD_MAX_MS and g["failed_with"] == 0
                    and g["stored"] == g["uploads"] and g["up_errors"] == 0,
                    "%s: slowest GET %.0f ms with %s (%.0f ms without), %d failed or non-2xx, "
                    "uploads %d of %d stored (target < %d ms, 0, every one)"
                    % (LABEL[row], g["max_with"], what, g["max_without"], g["failed_with"],
                       g["stored"], g["uploads"], UPLOAD_MAX_MS)))
    if a["runs"] and a["rate"]:
        parts = a["cpu_parts_ms"]
        out.append((None, "uploads through %s alone: %.2f/s with %s, server CPU %s ms per upload "
                    "in the upload processes%s"
                    % (LABEL[rows[0]], a["rate"], what, _f(a["cpu_ms"], "%.0f"),
                       " (and %.1f in the front server, %.1f in the rest of the responder)"
                       % (parts[0], parts[1]) if parts and None not in parts else "")))
    for row in rows:
        g = usums["get"][row]
        if g["up_rate"] is not None:
            out.append((None, "%s: %.2f uploads/s while the GET client ran (%d stored), "
                        "the upload processes at nice +10" % (LABEL[row], g["up_rate"],
                                                              g["up_during"])))
    return out


def upload_tables(up, usums):
    """The markdown of the upload runs, or [] when there were none."""
    if not up.get("alone") and not any(up.get("get", {}).values()):
        return []
    img, slots, a = up.get("image") or {}, up.get("slots"), usums["alone"]
    parts = a["cpu_parts_ms"] or [None, None, None]
    md = ["## Uploads: signed `PUT` of a %s-byte %s×%s JPEG, %s in flight"
          % (img.get("bytes"), img.get("width"), img.get("height"), slots), "",
          "Python's http.client keeps %s uploads in flight (one keep-alive connection and one "
          "avatar id each), links signed by `avatar.fcgi sign` with a key made for the run; "
          "the responder runs `--upload-workers %s`. Uploads per second count the uploads "
          "stored (200 or 201) from the first `PUT` to the last answer; CPU is utime + stime "
          "of the upload processes (the responder's processes at nice +10) over those uploads."
          % (slots, up.get("upload_workers")), "",
          "| row | runs | uploads/s | stored / answered | client errors | p50 ms | max ms "
          "| CPU ms/upload, upload processes | front server | rest of the responder |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    if a["runs"]:
        md.append("| %s | %d | %s | %d / %d | %d | %s | %s | %s | %s | %s |" % (
            LABEL[up["rows"][0]] if up.get("rows") else "?", a["runs"], _f(a["rate"], "%.2f"),
            a["stored"], a["uploads"], a["errors"], _f(a["p50"], "%.0f"), _f(a["max"], "%.0f"),
            _f(a["cpu_ms"], "%.0f"), _f(parts[0], "%.1f"), _f(parts[1], "%.1f")))
    md += ["", "## GET while uploading: `%s`, without and with %s uploads in flight"
           % (KIND_SHORT[TARGET_KIND], slots), "",
           "Each round runs the GET client twice on the row, alone and with the uploads going "
           "through the same stack (started %.0f s before it), in alternating order; the ratio "
           "is the median of the rounds' ratios." % up.get("settle", 1), "",
           "| row | req/s without | req/s with uploads | × without | p99 ms without / with "
           "| max ms without / with | failed + non-2xx with | uploads/s meanwhile |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row, g in usums["get"].items():
        md.append("| %s%s | %s | %s | %s | %s / %s | %s / %s | %d | %s |" % (
            LABEL[row], " (error)" if g["errors"] else "", _f(g["without"], "%.0f"),
            _f(g["with"], "%.0f"), _f(g["ratio"], "%.2f"), _f(g["p99_without"], "%.1f"),
            _f(g["p99_with"], "%.1f"), _f(g["max_without"], "%.0f"), _f(g["max_with"], "%.0f"),
            g["failed_with"], _f(g["up_rate"], "%.2f")))
    return md + [""]


def _f(v, fmt):
    return "–" if v is None else fmt % v


def _cpu(s):
    text = _f(s["cpu_us"], "%.0f")
    if len(s["cpu_parts"]) > 1 and None not in s["cpu_parts"]:
        text += " (%s)" % " + ".join("%.0f" % p for p in s["cpu_parts"])
    return text


def table(sums, kind, rows, procs):
    lines = ["| row | processes | req/s | × nginx static | p50 ms | p99 ms | max ms "
             "| failed | non-2xx | server CPU µs/req (front + responder) | CPU × nginx static |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        s = sums[kind][row]
        name = LABEL[row] + (" (error)" if s["errors"] else "")
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %d | %d | %s | %s |" % (
            name, procs.get(row, "?"), _f(s["rps"], "%.0f"), _f(s["ratio"], "%.2f"),
            _f(s["p50"], "%.1f"), _f(s["p99"], "%.1f"), _f(s["max"], "%.0f"),
            s["failed"], s["non2xx"], _cpu(s), _f(s["cpu_ratio"], "%.2f")))
    return "\n".join(lines)


def overview(sums, rows):
    lines = ["| row | " + " | ".join(KIND_SHORT[k] + " req/s (× static)" for k in KINDS) + " |",
             "| --- |" + " ---: |" * len(KINDS)]
    for row in rows:
        cells = []
        for k in KINDS:
            s = sums[k][row]
            cells.append("%s (%s)" % (_f(s["rps"], "%.0f"), _f(s["ratio"], "%.2f")))
        lines.append("| %s | %s |" % (LABEL[row], " | ".join(cells)))
    return "\n".join(lines)


def _cmd(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"


def machine(root, binary=None):
    """A markdown description of the machine and the software versions;
    binary: the avatar.fcgi measured (default: the one built in root)."""
    binary = binary or os.path.join(root, "avatar.fcgi")
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1) if m else cpu
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"^MemTotal:\s+(\d+) kB", f.read(), re.M)
            mem = "%.1f GiB" % (int(m.group(1)) / 1048576) if m else mem
    except OSError:
        pass
    pkgs = ["nginx-light", "nginx-common", "lighttpd", "libfcgi0ldbl", "spawn-fcgi",
            "apache2-utils", "wrk", "openssl", "python3", "python3-flask", "gunicorn",
            "python3-starlette", "python3-uvicorn", "imagemagick", "gnuplot-nox", "libvips42"]
    vers = []
    for p in pkgs:
        v = _cmd(["dpkg-query", "-W", "-f=${Version}", p])
        vers.append("| %s | %s |" % (p, v if v and "no packages" not in v else "not installed"))
    rev = _cmd(["git", "-C", root, "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "fcgi"])
    where = " (fcgi/ modified)" if dirty else ""
    if binary != os.path.join(root, "avatar.fcgi"):
        where = " (the binary measured: %s)" % binary
    lines = [
        "| item | value |", "| --- | --- |",
        "| CPU | %s |" % cpu,
        "| cores (nproc) | %d |" % len(os.sched_getaffinity(0)),
        "| memory | %s |" % mem,
        "| kernel | %s %s |" % (platform.system(), platform.release()),
        "| nginx | %s |" % _cmd(["nginx", "-v"]).replace("nginx version: ", ""),
        "| lighttpd | %s |" % _cmd(["lighttpd", "-v"]).split(" - ")[0],
        "| avatar.fcgi | %s, git %s%s |" % (_cmd([binary, "--version"]), rev, where),
    ] + vers
    return "\n".join(lines)


def chart(sums, rows, out_dir):
    """Writes chart.dat and chart.png (a clustered bar chart of req/s);
    returns the PNG's name, or None when gnuplot failed."""
    dat = os.path.join(out_dir, "chart.dat")
    with open(dat, "w") as f:
        f.write("# row " + " ".join(KINDS) + "\n")
        for row in rows:
            vals = [sums[k][row]["rps"] or 0 for k in KINDS]
            f.write('"%s" %s\n' % (LABEL[row].replace("→", "->"),
                                   " ".join("%.0f" % v for v in vals)))
    png = os.path.join(out_dir, "chart.png")
    script = """
set terminal pngcairo size 1400,700 font ",10" noenhanced
set output '%s'
set title "Avatar servers on one machine: requests per second (median of the rounds)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel "requests / second"
set yrange [0:*]
set grid ytics
set xtics rotate by -30 left
set key top left
set bmargin 9
plot '%s' using 2:xtic(1) title "%s", '' using 3 title "%s", '' using 4 title "%s", '' using 5 title "%s"
""" % (png, dat, KIND_SHORT["orig"], KIND_SHORT["long"], KIND_SHORT["ka"], KIND_SHORT["c1000"])
    r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return None
    return "chart.png"


# ---- README's headline table ----------------------------------------------------
# README.md holds one table generated from the latest committed run, between
# the two markers below; tests/t/65-readme.t fails when it differs from what
# this function makes of tests/bench/results/raw.json, so the front page
# cannot drift from the committed results.
README_BEGIN = ("<!-- bench-table: made by tests/bench/report.py --readme from "
                "tests/bench/results/raw.json; do not edit by hand -->")
README_END = "<!-- end bench-table -->"


def readme_table(results_dir, link_dir):
    """The README block for the run in results_dir; links point into
    link_dir (relative to the README)."""
    import json
    with open(os.path.join(results_dir, "raw.json")) as f:
        run = json.load(f)
    raw = run["raw"]
    rows = [r for r in LABEL if any(raw[k].get(r) for k in KINDS)]
    sums = summarize(raw, rows)
    cmd = {"full": "make bench", "quick": "make bench QUICK=1"}.get(run["profile"], run["profile"])
    lines = [
        README_BEGIN,
        "Latest committed run: `%s` on %s, %d rounds (medians), %d workers per server, "
        "one %d-byte avatar over 127.0.0.1. Full tables, targets and machine: "
        "[results.md](%s/results.md); how it is measured: [docs/benchmark.md](docs/benchmark.md)."
        % (cmd, run["date"], run["plan"]["rounds"], run["workers"], run["avatar_bytes"], link_dir),
        "",
        "| row | req/s, %s | × nginx static | p99 ms | req/s, %s | server CPU µs/req |"
        % (KIND_SHORT[TARGET_KIND], KIND_SHORT["ka"]),
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        s, ka = sums[TARGET_KIND][row], sums["ka"][row]
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            LABEL[row], _f(s["rps"], "%.0f"), _f(s["ratio"], "%.2f"), _f(s["p99"], "%.1f"),
            _f(ka["rps"], "%.0f"), _f(s["cpu_us"], "%.0f")))
    up = run.get("uploads") or {}
    usums = upload_summary(up)
    a, gets = usums["alone"], [(r, g) for r, g in usums["get"].items() if g["ratio"]]
    if a["rate"] and gets:
        # One sentence: the front page stays short; results.md has the tables.
        lines += ["", "Uploads: %.2f/s of a %.1f MB %s×%s JPEG (%s in flight, through %s), %s ms "
                  "of CPU each; meanwhile GETs keep %s their req/s, slowest %.0f ms." % (
                      a["rate"], up["image"]["bytes"] / 1e6, up["image"]["width"],
                      up["image"]["height"], up["slots"],
                      LABEL[up["rows"][0]].replace(" → avatar.fcgi", ""),
                      _f(a["cpu_ms"], "%.0f"),
                      " and ".join("%.2f × (%s)" % (g["ratio"], LABEL[r].split(" ")[-1])
                                   for r, g in gets),
                      max(g["max_with"] for _, g in gets))]
    lines.append(README_END)
    return "\n".join(lines)


def readme_rewrite(text, block):
    """text with the block between the markers replaced; None when the
    markers are missing."""
    b, e = text.find(README_BEGIN), text.find(README_END)
    if b < 0 or e < b:
        return None
    return text[:b] + block + text[e + len(README_END):]


def main(argv):
    import argparse
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description="README's benchmark table from the committed results")
    ap.add_argument("--readme", action="store_true", help="rewrite README.md's table")
    ap.add_argument("--check", action="store_true",
                    help="with --readme: change nothing, exit 1 when README.md differs")
    ap.add_argument("--results", default=os.path.join(here, "results"))
    ap.add_argument("--file", default=os.path.join(root, "README.md"))
    args = ap.parse_args(argv)
    if not args.readme:
        ap.error("nothing to do (use --readme)")
    link = os.path.relpath(args.results, os.path.dirname(os.path.abspath(args.file)))
    block = readme_table(args.results, link)
    with open(args.file) as f:
        text = f.read()
    new = readme_rewrite(text, block)
    if new is None:
        print("report.py: %s has no %s ... %s block" % (args.file, README_BEGIN, README_END))
        return 1
    if args.check:
        if new != text:
            print("report.py: the benchmark table in %s differs from %s; "
                  "run tests/bench/report.py --readme" % (args.file, args.results))
            print(block)
            return 1
        return 0
    if new != text:
        with open(args.file, "w") as f:
            f.write(new)
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv[1:]))

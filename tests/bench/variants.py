"""Sizes and formats (issue 12): what a variant costs to serve, and what it saves.

Three parts, each used by bench.py:
  - make(): the batch command `avatar.fcgi variants --dir DIR --formats
    webp,avif` over the bench's avatars before any server starts, so /1000
    and the default avatar have every size in JPEG (the stored type), WebP
    and AVIF;
  - run_round(): for each mode of VARIANT_ROWS, the target kind of run
    against /1000?s=64 and against /1000 back to back on the same stack,
    the order alternating by round; a variant is a file like any avatar, so
    the target is s=64 at >= TARGET x the original's req/s (median of the
    rounds' ratios);
  - bytes_table(): the size of every variant file of the bench avatar, by
    size and format, and what a page of avatars saves with them.
The report's lines and tables are made here too (pure bookkeeping).
This file never starts or stops a server.
"""
import os
import subprocess
import time
import urllib.request

import measure
import report
from servers import LABEL

# The rows whose stacks are measured at /1000?s=64: one per mode.
VARIANT_ROWS = ["nginx-xaccel", "nginx-bytes", "lighttpd-xsendfile"]
SIZE = 64               # the size measured
TARGET = 0.95           # s=64 req/s at least this x /1000's, same stack, same round
SIZES = [32, 64, 128, 256, 512]   # the responder's default --sizes
FORMATS = [("jpg", "JPEG"), ("webp", "WebP"), ("avif", "AVIF")]
AVATAR_ID = 1000
PAGE = 50               # avatars on the page of the savings line
SHOWN = 64              # CSS px they are shown at; 2x screens take the 2*SHOWN file


def tag(path):
    """A variant's tag: the original's size and mtime in ns, in hex (the
    same two numbers as its ETag)."""
    st = os.stat(path)
    return "%x-%x" % (st.st_size, st.st_mtime_ns)


def variant_path(avatars, size, ext, avatar_id=AVATAR_ID, stored="1000.png"):
    """The file of one variant of the bench avatar ("full": its own size)."""
    t = tag(os.path.join(avatars, stored))
    return os.path.join(avatars, ".v", str(size), "%d.%s.%s" % (avatar_id, t, ext))


def make(binary, avatars):
    """Runs the batch command; returns (None or why the variants are
    missing, seconds it took)."""
    t0 = time.monotonic()
    try:
        r = subprocess.run([binary, "variants", "--dir", avatars, "--formats", "webp,avif"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        return "avatar.fcgi variants: %s" % e, time.monotonic() - t0
    took = time.monotonic() - t0
    if r.returncode != 0:
        return "avatar.fcgi variants exited %d: %s" % (r.returncode,
                                                       (r.stderr + r.stdout).strip()[-300:]), took
    if not os.path.isfile(variant_path(avatars, SIZE, "jpg")):
        return "avatar.fcgi variants made no %s" % os.path.relpath(
            variant_path(avatars, SIZE, "jpg"), avatars), took
    return None, took


def bytes_table(avatars, stored="1000.png"):
    """{"original": bytes, "sizes": {size or "full": {ext: bytes or None}}}.
    Full size in the stored type is the original itself."""
    orig = os.path.getsize(os.path.join(avatars, stored))
    out = {"original": orig, "sizes": {}}
    for size in SIZES + ["full"]:
        row = {}
        for ext, _ in FORMATS:
            if size == "full" and ext == "jpg":
                row[ext] = orig
                continue
            p = variant_path(avatars, size, ext, stored=stored)
            row[ext] = os.path.getsize(p) if os.path.isfile(p) else None
        out["sizes"][str(size)] = row
    return out


def served(url, want_file):
    """None when GET url answers 200 with the bytes of want_file, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body, status = r.read(), r.status
    except OSError as e:
        return "GET %s: %s" % (url, e)
    try:
        with open(want_file, "rb") as f:
            want = f.read()
    except OSError as e:
        return "%s: %s" % (want_file, e)
    if status != 200 or body != want:
        return "GET %s: %d, %d bytes, not the %d bytes of %s" % (
            url, status, len(body), len(want), os.path.basename(want_file))
    return None


def check(servers, avatars, vr):
    """Before the rounds: each variant row answers /1000?s=64 with the
    variant file itself (not the original as a fallback), or is dropped
    with the reason."""
    want = variant_path(avatars, SIZE, "jpg")
    for s in servers:
        if s.key not in vr["rows"]:
            continue
        why = served("%s?s=%d" % (s.url, SIZE), want)
        if why:
            vr["not_measured"][s.key] = why
    vr["rows"] = [k for k in vr["rows"] if k not in vr["not_measured"]]


def run_round(rnd, servers, plan, vr, log):
    """One round: each variant row's target run at /1000 and /1000?s=64."""
    by_key = {s.key: s for s in servers}
    for key in vr["rows"]:
        s = by_key[key]
        pair = {}
        for which in (("orig", "s64") if rnd % 2 == 0 else ("s64", "orig")):
            url = s.url if which == "orig" else "%s?s=%d" % (s.url, SIZE)
            pair[which] = measure.run_one(report.TARGET_KIND, url, s.root_pids(), plan)
            time.sleep(0.2)
        vr["pairs"][key].append(pair)
        a, b = pair["orig"], pair["s64"]
        if "error" in a or "error" in b:
            log("bench: round %d s=%d  %-20s ERROR %s" % (rnd + 1, SIZE, key,
                                                          a.get("error") or b["error"]))
            continue
        log("bench: round %d s=%d  %-20s %8.0f req/s at ?s=%d, %8.0f at /1000 (%.2f x)  "
            "non-2xx %d"
            % (rnd + 1, SIZE, key, b["rps"], SIZE, a["rps"], b["rps"] / a["rps"] if a["rps"] else 0,
               b["non2xx"] + a["non2xx"]))


def summary(vr):
    """{row: {"orig", "s64", "ratio", "p99_orig", "p99_s64", "bad", "runs"}}."""
    out = {}
    for row, pairs in vr.get("pairs", {}).items():
        ok = [p for p in pairs if "error" not in p["orig"] and "error" not in p["s64"]]
        out[row] = {
            "runs": len(pairs),
            "errors": len(pairs) - len(ok),
            "orig": report.median([p["orig"]["rps"] for p in ok]),
            "s64": report.median([p["s64"]["rps"] for p in ok]),
            "ratio": report.median([p["s64"]["rps"] / p["orig"]["rps"] for p in ok
                                    if p["orig"]["rps"]]),
            "p99_orig": report.median([p["orig"]["p99"] for p in ok]),
            "p99_s64": report.median([p["s64"]["p99"] for p in ok]),
            "bad": sum(p[w]["failed"] + p[w]["non2xx"] for p in ok for w in ("orig", "s64")),
        }
    return out


def targets(vr, vsums, not_started):
    """(ok, text) lines, like report.targets()."""
    out = []
    if vr.get("skipped"):
        return [(False, "/1000?s=%d: not measured, %s" % (SIZE, vr["skipped"]))]
    for row in vr.get("asked", []):
        if row in not_started:
            out.append((False, "%s: /1000?s=%d not measured, the row did not start"
                        % (LABEL[row], SIZE)))
        elif row in vr.get("not_measured", {}):
            out.append((False, "%s: /1000?s=%d not measured, %s"
                        % (LABEL[row], SIZE, vr["not_measured"][row])))
    for row, v in vsums.items():
        if v["ratio"] is None:
            out.append((False, "%s: no /1000?s=%d figure" % (LABEL[row], SIZE)))
            continue
        out.append((v["ratio"] >= TARGET and v["bad"] == 0,
                    "%s: /1000?s=%d at %.2f × /1000's req/s, %d failed or non-2xx (%s, same "
                    "stack and round; target ≥ %.2f, 0)"
                    % (LABEL[row], SIZE, v["ratio"], v["bad"], report.KIND_SHORT[report.TARGET_KIND],
                       TARGET)))
    b = vr.get("bytes")
    if b:
        for line in savings(b):
            out.append((None, line))
    return out


def savings(b):
    """The page lines: PAGE avatars shown at SHOWN px, the SHOWN px files at
    1x and the 2*SHOWN px files at 2x, against the original each time."""
    orig = b["original"]
    lines = []
    for density, size in (("1x", SHOWN), ("2x", 2 * SHOWN)):
        row = b["sizes"].get(str(size), {})
        parts = []
        for ext, name in FORMATS:
            if row.get(ext):
                parts.append("%.0f KB in %s" % (PAGE * (orig - row[ext]) / 1000, name))
        if parts:
            lines.append("a page of %d avatars shown at %d px (%d px files for %s) saves %s, "
                         "of the %.0f KB the %d originals weigh"
                         % (PAGE, SHOWN, size, density, ", ".join(parts),
                            PAGE * orig / 1000, PAGE))
    return lines


def tables(vr, vsums):
    """The markdown: req/s at /1000?s=64 against /1000, bytes per size and format."""
    if vr.get("skipped"):
        return ["## Sizes and formats", "", "Not measured: %s." % vr["skipped"], ""]
    md = ["## Sizes: `/1000?s=%d` against `/1000`, `%s`" % (SIZE, report.KIND_SHORT[report.TARGET_KIND]),
          "",
          "Each round runs the client on the row at `/1000` and at `/1000?s=%d` back to back "
          "(alternating which goes first); the ratio is the median of the rounds' ratios. "
          "The variants were made by `avatar.fcgi variants --dir DIR --formats webp,avif` "
          "before the servers started; each row was checked to answer `?s=%d` with the "
          "variant file's bytes." % (SIZE, SIZE), "",
          "| row | runs | req/s `/1000` | req/s `/1000?s=%d` | × `/1000` | p99 ms `/1000` / `?s=%d` "
          "| failed + non-2xx |" % (SIZE, SIZE),
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row, v in vsums.items():
        md.append("| %s | %d | %s | %s | %s | %s / %s | %d |" % (
            LABEL[row], v["runs"], report._f(v["orig"], "%.0f"), report._f(v["s64"], "%.0f"),
            report._f(v["ratio"], "%.2f"), report._f(v["p99_orig"], "%.1f"),
            report._f(v["p99_s64"], "%.1f"), v["bad"]))
    b = vr.get("bytes")
    if b:
        md += ["", "## Bytes per size and format of the bench avatar", "",
               "The %d-byte 400×400 JPEG and its variants, as the batch command made them "
               "(libvips, the responder's --quality). A size above 400 px is the full-size "
               "file (no upscaling)." % b["original"], "",
               "| size | " + " | ".join("%s bytes" % n for _, n in FORMATS) + " |",
               "| --- |" + " ---: |" * len(FORMATS)]
        for size in [str(s) for s in SIZES] + ["full"]:
            row = b["sizes"].get(size, {})
            md.append("| %s | %s |" % (size if size == "full" else "%s px" % size,
                                       " | ".join(report._f(row.get(e), "%d") for e, _ in FORMATS)))
        md += [""] + ["- %s%s." % (line[0].upper(), line[1:]) for line in savings(b)]
    return md + [""]

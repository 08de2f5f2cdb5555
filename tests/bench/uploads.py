"""The upload load: signed PUTs of one large JPEG, a fixed number in flight.

The client is Python's own http.client (no PyPI): one thread per slot, each
with its own keep-alive connection and its own avatar id, sending the next
PUT as soon as the last one is answered, so exactly `slots` uploads are in
flight until it is told to stop. Links are signed with the responder's own
`avatar.fcgi sign`, so the bench exercises the documented signing path.
Server CPU comes from /proc like the GET runs (measure.py); the upload
processes are told apart from the rest of the responder by their nice value
(upload.c lowers their priority so reads come first). This file never starts
or stops a server.
"""
import http.client
import subprocess
import threading
import time

import measure

# Ids the uploads replace; far from /1000 and /-1, which the GET rows read.
FIRST_ID = 900001
# A link is signed for this long; the bench's longest profile takes about
# 15 minutes and a link is signed for each run, so this is ample and stays
# under the responder's default --max-ttl (3600).
SIGN_TTL = 1800
# One upload of 2 MB takes well under a second alone; this bounds one that
# hangs (a broken server), not a slow one.
REQUEST_TIMEOUT = 60


def sign(binary, key_file, ids):
    """{id: query string} from `avatar.fcgi sign --key-file KEY PUT ID TTL`;
    raises RuntimeError when the binary cannot sign (built without the
    write path)."""
    out = {}
    for i in ids:
        r = subprocess.run([binary, "sign", "--key-file", key_file, "PUT", str(i),
                            str(SIGN_TTL)], capture_output=True, text=True, timeout=30)
        q = r.stdout.strip()
        if r.returncode != 0 or not q.startswith("expires="):
            raise RuntimeError("%s sign exited %d: %s" % (binary, r.returncode,
                                                          (r.stderr + r.stdout).strip()[-300:]))
        out[i] = q
    return out


class Client:
    """`slots` threads, each PUTting body to its own id until stop()."""

    def __init__(self, port, body, links):
        self.port = port
        self.body = body
        self.links = links       # {id: signed query string}
        self.done = []           # (end time, seconds, status) per answered upload
        self.errors = []         # client-side failures (connection refused, timeout)
        self.statuses = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._slot, args=(i,), daemon=True)
                        for i in links]
        self.t0 = None

    def start(self):
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()

    def stop(self):
        """Starts no new upload, waits for those in flight; returns the time
        the last one ended."""
        self.stopping.set()
        for t in self.threads:
            t.join(REQUEST_TIMEOUT + 10)
        with self.lock:
            return max([d[0] for d in self.done], default=time.monotonic())

    def _slot(self, avatar_id):
        path = "/%d?%s" % (avatar_id, self.links[avatar_id])
        conn = None
        while True:  # at least one upload per slot, however soon stop() comes
            t = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                      timeout=REQUEST_TIMEOUT)
                conn.request("PUT", path, body=self.body,
                             headers={"Content-Type": "image/jpeg"})
                r = conn.getresponse()
                r.read()
                end = time.monotonic()
                with self.lock:
                    self.done.append((end, end - t, r.status))
                    self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.errors.append("%s: %s" % (type(e).__name__, e))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.2)  # a refused connection must not spin
            if self.stopping.is_set():
                break
        if conn is not None:
            conn.close()

    def between(self, a, b):
        """Uploads answered between monotonic times a and b."""
        with self.lock:
            return sum(1 for end, _, _ in self.done if a <= end <= b)

    def summary(self, wall):
        with self.lock:
            lat = sorted(d[1] * 1000 for d in self.done)
            ok = sum(n for s, n in self.statuses.items() if s in (200, 201))
            return {
                "uploads": len(self.done), "stored": ok,
                "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
                "errors": len(self.errors), "error_samples": self.errors[:5],
                "wall": wall, "rate": ok / wall if wall > 0 else None,
                "p50": lat[len(lat) // 2] if lat else None,
                "max": lat[-1] if lat else None,
            }


def _cpu(roots):
    """(per-root snapshots, snapshot of the upload processes)."""
    return ([measure.cpu_snapshot([r]) for r in roots],
            measure.cpu_snapshot(roots[-1:], niced=True))


def _cpu_result(before, after, n):
    """CPU seconds, total and per stored upload: front server, the rest of
    the responder (read workers, supervisor), upload processes."""
    parts = [measure.cpu_delta(b, a) for b, a in zip(before[0], after[0])]
    up = measure.cpu_delta(before[1], after[1])
    res = {"cpu_s": sum(parts), "cpu_upload_s": up, "upload_procs": len(after[1])}
    if n:
        res["cpu_ms"] = up * 1000 / n
        res["cpu_parts_ms"] = [p * 1000 / n for p in parts[:-1]] + [(parts[-1] - up) * 1000 / n, up * 1000 / n]
    else:
        res["cpu_ms"] = None
        res["cpu_parts_ms"] = None
    return res


def run_alone(port, roots, body, links, seconds):
    """Uploads only, for `seconds`, then the last in flight are awaited:
    the rate is stored uploads over the time from the first PUT to the
    last answer, and the CPU counts exactly those uploads."""
    before = _cpu(roots)
    c = Client(port, body, links)
    c.start()
    time.sleep(seconds)
    end = c.stop()
    after = _cpu(roots)
    res = c.summary(end - c.t0)
    res.update(_cpu_result(before, after, res["stored"]))
    res["slots"] = len(links)
    return res


def run_with_gets(kind, url, port, roots, body, links, plan, settle):
    """The GET run of `kind` while `len(links)` uploads are kept in flight;
    returns (GET result, upload result). The uploads start `settle` seconds
    before the GET client, so the first bodies are already on their way,
    and stop only after it ends."""
    c = Client(port, body, links)
    c.start()
    time.sleep(settle)
    up_before = _cpu(roots)
    a = time.monotonic()
    get = measure.run_one(kind, url, roots, plan)
    b = time.monotonic()
    up_after = _cpu(roots)
    c.stop()
    up = c.summary(b - a)
    # The rate counts the GET run only: what the uploads got while reads
    # ran. The other counts cover every upload of the run, so an upload
    # refused before or after the GETs still shows.
    up["during_get"] = c.between(a, b)
    up["rate"] = up["rate_during_get"] = up["during_get"] / (b - a) if b > a else None
    cpu = _cpu_result(up_before, up_after, up["during_get"])
    up["cpu_upload_s_during_get"] = cpu["cpu_upload_s"]
    up["slots"] = len(links)
    return get, up

"""The benchmark's rows: how each server is started, found and stopped.

Every server listens on 127.0.0.1 on a port picked here, keeps its files in
a private run directory, and is stopped by the pid it was started with (or
by tests/lib/stack stop for the project's stacks). This file never measures.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
STACK = os.path.join(ROOT, "tests", "lib", "stack")
PYTHON = "/usr/bin/python3"  # Debian's, where python3-flask & co. live
# nginx worker_connections for every nginx row. A proxied request holds two
# connections (client and upstream) and accept() does not share 1000 new
# clients evenly between two workers, so 1024 runs out at ab -c 1000.
NGINX_CONNECTIONS = 4096
# Listen backlog for every server. ab -c 1000 opens 1000 connections at once;
# nginx's default backlog of 511 drops the SYNs beyond it, and the client's
# retransmission one second later shows up as a request slower than 1 s.
BACKLOG = 4096

# (key, label, group). Group "base" rows are the comparison points, "project"
# rows run the project's own configs through tests/lib/stack.
ROWS = [
    ("flask", "flask + gunicorn", "base"),
    ("starlette", "starlette + uvicorn", "base"),
    ("nginx-static", "nginx static (try_files)", "base"),
    ("lighttpd-static", "lighttpd static", "base"),
    ("nginx-xaccel", "nginx → avatar.fcgi x-accel", "project"),
    ("nginx-bytes", "nginx → avatar.fcgi bytes", "project"),
    ("lighttpd-xsendfile", "lighttpd → avatar.fcgi x-sendfile", "project"),
    ("lighttpd-bytes", "lighttpd → avatar.fcgi bytes", "project"),
    ("tls-orig", "nginx TLS, as originally measured", "base"),
    ("tls-project", "nginx TLS, project config", "project"),
]
LABEL = {k: l for k, l, _ in ROWS}
# The rows whose GET runs are measured again while uploads run through the
# same stack; the first is also the one the upload row itself goes through.
UPLOAD_ROWS = ["nginx-xaccel", "nginx-bytes"]
GROUP = {k: g for k, _, g in ROWS}


def free_port():
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(template, dest, values):
    with open(os.path.join(HERE, "conf", template)) as f:
        text = f.read()
    for name, value in values.items():
        text = text.replace("@%s@" % name, str(value))
    if "@" in text.replace("@NAMES@", ""):
        raise RuntimeError("%s: unreplaced @NAME@ left in %s" % (template, dest))
    with open(dest, "w") as f:
        f.write(text)


def fetch(url, timeout=2.0):
    """(status, body) of GET url; TLS certificates are self-signed here."""
    ctx = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (OSError, ValueError):
        return None, b""


class Server:
    """One row's server. start() returns once GET /1000 answers the avatar."""

    def __init__(self, key, work, avatars, avatar_bytes, workers, binary, extra=()):
        self.key = key
        self.binary = binary  # avatar.fcgi, for the project's rows
        self.extra = list(extra)  # more avatar.fcgi options (the upload rows' key)
        self.label = LABEL[key]
        self.group = GROUP[key]
        self.run = os.path.join(work, key)
        self.avatars = avatars
        self.avatar_bytes = avatar_bytes
        self.workers = workers
        self.port = free_port()
        self.scheme = "https" if key.startswith("tls-") else "http"
        self.url = "%s://127.0.0.1:%d/1000" % (self.scheme, self.port)
        self.proc = None      # a Popen we own, for the rows we start ourselves
        self.stacked = False  # started by tests/lib/stack
        self.notes = []       # what the bench changed in a rendered config
        os.makedirs(os.path.join(self.run, "tmp"), exist_ok=True)

    # -- starting -------------------------------------------------------------

    def _spawn(self, argv, env=None):
        log = open(os.path.join(self.run, "server.log"), "ab")
        # A session of its own, so stop() can end the whole group by its id.
        # cwd: the run directory names every process of the row (leak checks).
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=env, cwd=self.run,
                                     start_new_session=True)
        log.close()

    def _nginx_values(self):
        return {"WORKERS": self.workers, "RUN": self.run, "PORT": self.port,
                "AVATARS": self.avatars, "LISTEN_OPTS": "backlog=%d" % BACKLOG,
                "CONNECTIONS": NGINX_CONNECTIONS,
                "USER": "user root root;" if os.getuid() == 0 else ""}

    def start(self):
        k = self.key
        env = dict(os.environ, AVATAR_DIR=self.avatars)
        if k == "flask":
            self._spawn(["gunicorn", "--workers", str(self.workers), "--bind",
                         "127.0.0.1:%d" % self.port, "--backlog", str(BACKLOG),
                         "--chdir", os.path.join(HERE, "apps"), "flask_app:app"], env)
        elif k == "starlette":
            self._spawn([PYTHON, "-m", "uvicorn", "--workers", str(self.workers),
                         "--host", "127.0.0.1", "--port", str(self.port),
                         "--backlog", str(BACKLOG), "--no-access-log", "--log-level", "warning",
                         "--app-dir", os.path.join(HERE, "apps"), "starlette_app:app"], env)
        elif k in ("nginx-static", "tls-orig"):
            if k == "tls-orig":
                subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                "-sha256", "-days", "30", "-subj", "/CN=localhost",
                                "-keyout", os.path.join(self.run, "rsa.key"),
                                "-out", os.path.join(self.run, "rsa.crt")],
                               check=True, capture_output=True)
            conf = os.path.join(self.run, "nginx.conf")
            render("nginx-static.conf" if k == "nginx-static" else "nginx-tls-orig.conf",
                   conf, self._nginx_values())
            argv = ["nginx", "-p", self.run + "/", "-c", conf, "-e",
                    os.path.join(self.run, "error.log")]
            subprocess.run(argv + ["-t", "-q"], check=True)
            self._spawn(argv)
        elif k == "lighttpd-static":
            conf = os.path.join(self.run, "lighttpd.conf")
            render("lighttpd-static.conf", conf, {
                "PORT": self.port, "RUN": self.run, "AVATARS": self.avatars,
                "LIGHTTPD_OPTS": ""})  # lighttpd's default backlog is 1024, as for the stack
            subprocess.run(["lighttpd", "-tt", "-f", conf], check=True, capture_output=True)
            self._spawn(["lighttpd", "-D", "-f", conf])
        else:
            server, mode = {
                "nginx-xaccel": ("nginx", "x-accel"),
                "nginx-bytes": ("nginx", "bytes"),
                "lighttpd-xsendfile": ("lighttpd", "x-sendfile"),
                "lighttpd-bytes": ("lighttpd", "bytes"),
                "tls-project": ("nginx", "x-accel"),
            }[k]
            argv = [STACK, "start", "--server", server, "--mode", mode,
                    "--port", str(self.port), "--run", self.run,
                    "--avatars", self.avatars, "--workers", str(self.workers),
                    "--bin", self.binary]
            if k == "tls-project":
                argv.append("--tls")
            if self.extra:
                argv += ["--"] + self.extra
            self.stacked = True
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError("tests/lib/stack start exited %d: %s"
                                   % (r.returncode, (r.stderr + r.stdout).strip()[-500:]))
            if server == "nginx":
                self._tune_nginx()
        self._wait_ready()

    def _tune_nginx(self):
        """Gives the stack's rendered nginx configs the worker_connections and
        listen backlog every nginx row has (NGINX_CONNECTIONS, BACKLOG) and
        reloads nginx, when the stack rendered less. Each change is listed in
        the report; a no-op once the stack renders them itself."""
        conf = os.path.join(self.run, "nginx", "nginx.conf")
        changed = []
        with open(conf) as f:
            text = f.read()
        m = re.search(r"worker_connections\s+(\d+);", text)
        if m and int(m.group(1)) < NGINX_CONNECTIONS:
            text = text[:m.start(1)] + str(NGINX_CONNECTIONS) + text[m.end(1):]
            changed.append("worker_connections %s -> %d in nginx.conf"
                           % (m.group(1), NGINX_CONNECTIONS))
            with open(conf, "w") as f:
                f.write(text)
        sites = os.path.join(self.run, "nginx", "sites")
        for name in sorted(os.listdir(sites)):
            path = os.path.join(sites, name)
            with open(path) as f:
                site = f.read()
            new = re.sub(r"^(\s*listen\s+127\.0\.0\.1:%d\b(?:(?!backlog=)[^;])*);" % self.port,
                         r"\1 backlog=%d;" % BACKLOG, site, flags=re.M)
            if new != site:
                changed.append("listen ... backlog=%d in sites/%s" % (BACKLOG, name))
                with open(path, "w") as f:
                    f.write(new)
        if not changed:
            return
        master = self.root_pids()[0]
        old = set(_children(master))
        subprocess.run(["nginx", "-p", os.path.join(self.run, "nginx") + "/", "-c", conf,
                        "-e", os.path.join(self.run, "nginx", "error.log"), "-s", "reload"],
                       check=True, capture_output=True, timeout=30)
        for _ in range(100):  # the old workers leave once idle: 10 s at most
            kids = set(_children(master))
            if kids and not kids & old:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("%s: nginx did not reload %s" % (self.key, conf))
        self.notes.extend(changed)

    def _wait_ready(self):
        last = None
        for _ in range(300):  # 30 s at most: uvicorn's spawned workers are slow
            if self.proc is not None and self.proc.poll() is not None:
                break
            last, body = fetch(self.url)
            if last == 200:
                if body != self.avatar_bytes:
                    raise RuntimeError("%s: %s answered 200 with %d bytes, not the %d-byte avatar"
                                       % (self.key, self.url, len(body), len(self.avatar_bytes)))
                return
            time.sleep(0.1)
        raise RuntimeError("%s: %s did not answer 200 (last status %s); see %s"
                           % (self.key, self.url, last, self.run))

    # -- processes, for CPU accounting -----------------------------------------

    def root_pids(self):
        """The pids whose process trees are this row's server."""
        if self.proc is not None:
            return [self.proc.pid]
        pids = []
        for name in ("front.pid", "avatar.pid"):
            try:
                with open(os.path.join(self.run, name)) as f:
                    pids.append(int(f.read().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
        return pids

    # -- stopping -------------------------------------------------------------

    def stop(self):
        if self.stacked:
            # Whatever the stack started, with start times against pid reuse,
            # so nothing outlives the bench even if `stack stop` fails.
            procs = _started(_tree(self.root_pids()))
            try:
                subprocess.run([STACK, "stop", "--run", self.run], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=60)
            except subprocess.TimeoutExpired:
                pass
            self.stacked = False
            for sig in (signal.SIGTERM, signal.SIGKILL):
                left = [p for p, st in procs.items() if _started([p]).get(p) == st]
                for p in left:
                    try:
                        os.kill(p, sig)
                    except ProcessLookupError:
                        pass
                for _ in range(50):
                    if not any(_started([p]).get(p) == procs[p] for p in left):
                        break
                    time.sleep(0.1)
        if self.proc is not None and self.proc.poll() is None:
            pgid = self.proc.pid  # its own session: group id == pid
            os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                self.proc.wait(5)
            # Workers may outlive a master that died first; end the group.
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


def _started(pids):
    """{pid: start time} of those pids that are alive."""
    out = {}
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
        except OSError:
            continue
        out[pid] = stat[stat.rindex(")") + 2:].split()[19]
    return out


def _tree(roots):
    """The roots and all their descendants that are alive."""
    seen, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen and os.path.exists("/proc/%d" % pid):
            seen.append(pid)
            todo.extend(_children(pid))
    return seen


def _children(pid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(name))
    return out


def tools_missing():
    """Names of the programs the bench runs that are not on PATH."""
    need = ["ab", "wrk", "nginx", "lighttpd", "spawn-fcgi", "gunicorn", "convert",
            "gnuplot", "openssl", "curl"]
    return [n for n in need if shutil.which(n) is None]

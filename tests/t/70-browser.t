#!/usr/bin/perl
# 70-browser: a real browser (Debian's headless Chromium) on a page from
# another site shows the avatars the way a site embedding them needs, through
# the real stack: nginx in x-accel mode and lighttpd in x-sendfile mode, and
# the fast path of each (the front server serves DIR/.pub itself and passes
# the rest on), all with the shipped configs (tests/lib/stack); and nginx's
# fast path over TLS, where every avatar must come over HTTP/2, as browsers
# fetch a page's avatars.
#
# The page comes from http://localhost:PAGEPORT (a small Python server), the
# avatars from http://127.0.0.1:PORT: another origin and another site, so
# nothing passes by being same-site. Chromium loads the page with
# --dump-dom; the page's script runs the checks and writes its findings as
# JSON into the DOM, which the test reads. Every run of a stack shares one
# browser profile, so the second run finds what the first left in the
# browser's disk cache. The checks, in the order a site meets them:
#   - <img> of every avatar (and of a missing id: the default) shows;
#   - <img crossorigin> loads, and a canvas it was drawn on reads back
#     (getImageData, toDataURL): needs Access-Control-Allow-Origin;
#   - fetch() of an avatar succeeds: the same header;
#   - Resource Timing sees the transfer (transferSize > 0 on the first
#     load): needs Timing-Allow-Origin, without which every size reads 0;
#   - a page sent with Cross-Origin-Embedder-Policy: require-corp shows the
#     avatars: needs Cross-Origin-Resource-Policy: cross-origin;
#   - a second visit takes every avatar from the browser's cache
#     (transferSize 0) or revalidates it (a 304), never downloads it again;
#   - after an avatar's file is replaced, a new versioned URL (?v=2) shows the
#     new picture at once, while the old one (?v=1) may stay cached;
#   - sizes and formats (issue 12): <img srcset="/ID?s=32 1x, /ID?s=64 2x"
#     width=32> picks the 32 px file at device scale factor 1 and the 64 px
#     one at 2 (currentSrc, and the chosen file's own pixels), the same with
#     .webp and .avif, and every one decodes. The stack runs with --formats
#     webp,avif; the variants come from the batch command.
#
# The browser must not talk to anything but this machine: every host name
# except localhost resolves to nothing, and any other request goes to a
# proxy on a closed loopback port; background services are off.
use strict;
use warnings;
use FindBin;
use Test::More;
use JSON::PP;
use IO::Select;
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
BEGIN { require "$FindBin::Bin/../lib/e2e.pl" }
our ($ROOT, $BIN);

need_tools(qw(chromium python3 curl spawn-fcgi nginx lighttpd convert openssl));

# The ids the pages ask for: every sample avatar, and one with no file (the
# default avatar answers for it).
my @ids = qw(1000 1001 1002 -1 999);
my $tmp = tempdir('browser-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# ---- the page and its server -------------------------------------------------

my $page = <<'EOT';
<!doctype html>
<html><head><meta charset="utf-8"><title>avatars</title></head>
<body><pre id="result">pending</pre><script>
"use strict";
const q = new URLSearchParams(location.search);
const origin = q.get("origin"), ids = q.get("ids").split(","), v = q.get("v");
const checks = (q.get("checks") || "plain").split(",");
const url = id => origin + "/" + id + (v ? "?v=" + encodeURIComponent(v) : "");
const load = (u, cors) => new Promise(done => {
  const img = new Image();
  if (cors) img.crossOrigin = "anonymous";
  img.onload = img.onerror = () => done(img);
  img.src = u;
  document.body.appendChild(img);
});
async function main() {
  const out = { isolated: self.crossOriginIsolated, plain: {}, cors: {}, canvas: {},
                fetch: {}, timing: {} };
  for (const id of ids) {
    const u = url(id);
    if (checks.includes("plain")) out.plain[id] = (await load(u, false)).naturalWidth;
    if (checks.includes("cors")) {
      const img = await load(u, true);
      out.cors[id] = img.naturalWidth;
      try {
        const c = document.createElement("canvas");
        c.width = c.height = 8;
        const g = c.getContext("2d");
        g.drawImage(img, 0, 0);
        g.getImageData(0, 0, 1, 1);
        c.toDataURL();
        out.canvas[id] = "ok";
      } catch (e) { out.canvas[id] = e.name; }
    }
    if (checks.includes("fetch")) {
      try {
        const r = await fetch(u);
        out.fetch[id] = r.status + " " + (await r.arrayBuffer()).byteLength;
      } catch (e) { out.fetch[id] = e.name; }
    }
  }
  for (const id of ids)
    out.timing[id] = performance.getEntriesByName(url(id))
      .map(e => ({ transfer: e.transferSize, body: e.encodedBodySize, status: e.responseStatus,
                   proto: e.nextHopProtocol }));
  document.getElementById("result").textContent = JSON.stringify(out);
}
main().catch(e => { document.getElementById("result").textContent = "error " + e; });
</script></body></html>
EOT

# Sizes and formats: each <img> shown at 32 CSS px, its candidates by
# density; for each, which file the browser picked (currentSrc), the
# density-corrected naturalWidth, and the picked file's own pixels (loaded
# again as a plain image) and whether they decode.
my $srcset_page = <<'EOT';
<!doctype html>
<html><head><meta charset="utf-8"><title>sizes</title></head>
<body><pre id="result">pending</pre><script>
"use strict";
const q = new URLSearchParams(location.search);
const origin = q.get("origin"), id = q.get("id");
const u = (ext, s) => origin + "/" + id + ext + "?s=" + s;
const specs = {
  png: { srcset: u("", 32) + " 1x, " + u("", 64) + " 2x" },
  webp: { srcset: u(".webp", 32) + " 1x, " + u(".webp", 64) + " 2x" },
  avif: { srcset: u(".avif", 32) + " 1x, " + u(".avif", 64) + " 2x" },
  webp64: { src: u(".webp", 64) },
  avif64: { src: u(".avif", 64) },
};
const settle = img => new Promise(done => {
  if (img.complete) return done();
  img.onload = img.onerror = () => done();
});
// Every pixel decoded: drawn on a canvas (a synchronous decode) and read
// back (the avatars carry Access-Control-Allow-Origin), the centre opaque.
// img.decode() is not used: its decode runs off the page's thread, which
// the browser's virtual time does not wait for.
function pixels(img) {
  try {
    const c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    return g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data[3] > 0;
  } catch (e) { return false; }
}
async function file(src) {
  const img = new Image();
  img.crossOrigin = "anonymous";
  img.src = src;
  await settle(img);
  return { w: img.naturalWidth, h: img.naturalHeight, decoded: pixels(img) };
}
async function main() {
  const out = { dpr: devicePixelRatio, img: {} }, imgs = {};
  for (const [k, a] of Object.entries(specs)) {
    const img = document.createElement("img");
    img.width = img.height = 32;
    if (a.srcset) img.srcset = a.srcset; else img.src = a.src;
    document.body.appendChild(img);
    imgs[k] = img;
  }
  for (const [k, img] of Object.entries(imgs)) {
    await settle(img);
    out.img[k] = { src: img.currentSrc, complete: img.complete, natural: img.naturalWidth,
                   file: await file(img.currentSrc) };
  }
  document.getElementById("result").textContent = JSON.stringify(out);
}
main().catch(e => { document.getElementById("result").textContent = "error " + e; });
</script></body></html>
EOT

# Serves the page directory; /coep/... with COEP require-corp. Pages are
# never cached, so each visit runs the script again.
my $server = <<'EOT';
import http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        if self.path.startswith("/coep/"):
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        super().end_headers()
    def translate_path(self, path):
        return super().translate_path(path.replace("/coep/", "/", 1))
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])),
    lambda *a: H(*a, directory=sys.argv[2]))
print("ready", flush=True)
s.serve_forever()
EOT

mkdir "$tmp/pages" or die;
spew("$tmp/pages/check.html", $page);
spew("$tmp/pages/srcset.html", $srcset_page);
spew("$tmp/page-server.py", $server);

# Its stdout stays open in $page_out, which the END block names so that it
# lives until then: closing a piped open waits for the child, so it may be
# closed only after the server was told to stop.
my ($page_pid, $page_port, $page_out);
END {
    my $rc = $?;
    if ($page_pid) { kill 'TERM', $page_pid; waitpid $page_pid, 0; }
    close $page_out if $page_out;
    $? = $rc;
}
for my $try (1 .. 3) {
    $page_port = free_port();
    $page_pid = open($page_out, '-|', '/usr/bin/python3', "$tmp/page-server.py", $page_port,
        "$tmp/pages") or die "python3: $!";
    my $line = <$page_out> // '';
    last if $line =~ /^ready/;
    waitpid $page_pid, 0;
    undef $page_pid;
}
$page_pid or BAIL_OUT('cannot start the page server');

# ---- the browser ------------------------------------------------------------

my @chromium = ('chromium', '--headless', '--disable-gpu', '--no-first-run',
    '--no-default-browser-check', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-default-apps',
    '--disable-extensions', '--disable-breakpad', '--disable-domain-reliability',
    '--disable-client-side-phishing-detection', '--no-pings', '--metrics-recording-only',
    '--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
    '--proxy-server=http://127.0.0.1:9', '--virtual-time-budget=20000',
    ($> == 0 ? ('--no-sandbox') : ()));
# More flags for one visit (local @EXTRA = ...): the device scale factor.
our @EXTRA;

# Loads one page in a browser with the given profile and returns the page's
# findings (a hash), or a hash with an error. Chromium runs in a process
# group of its own: once the DOM is out it gets 30 s to exit by itself
# (writing its cache to the profile), then the whole group is killed, so no
# helper process it left behind can hold the test.
sub visit {
    my ($profile, $path, %q) = @_;
    my $query = join '&', map { "$_=$q{$_}" } sort keys %q;
    my $u = "http://localhost:$page_port/$path?$query";
    my $t0 = time;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        setpgrp(0, 0);
        open STDERR, '>>', "$tmp/chromium.log";
        exec @chromium, @EXTRA, "--user-data-dir=$profile", '--dump-dom', $u;
        die "chromium: $!";
    }
    my ($dom, $sel, $deadline) = ('', IO::Select->new($out), time + 120);
    while (time < $deadline && $dom !~ m{</html>\s*$}) {
        next unless $sel->can_read(1);
        last unless sysread($out, $dom, 65536, length $dom);
    }
    for (1 .. 300) {
        last if waitpid($pid, WNOHANG) == $pid;
        select(undef, undef, undef, 0.1);
    }
    kill 'KILL', -$pid;
    waitpid($pid, 0);
    close $out;
    note sprintf '%s: %d s', $u, time - $t0;
    my ($json) = $dom =~ m{<pre id="result">(.*?)</pre>}s;
    return { error => "no result in the page: " . substr($dom, 0, 300) }
        unless defined $json && $json =~ /^\{/;
    $json =~ s/&quot;/"/g;
    $json =~ s/&amp;/&/g;
    return decode_json($json);
}

# ---- the checks -----------------------------------------------------------------

# The base64 SHA-256 of a certificate's public key (what Chromium's
# --ignore-certificate-errors-spki-list takes).
sub spki {
    my ($crt) = @_;
    my $h = qx(openssl x509 -in '$crt' -noout -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64);
    chomp $h;
    $h =~ m{^[A-Za-z0-9+/]{43}=$} or die "spki of $crt: '$h'";
    return $h;
}

sub browse {
    my (%o) = @_;
    my $av = make_avatars(tempdir('av-XXXXXX', DIR => $tmp));
    # 1010: a 256 px avatar whose variants the batch command makes.
    system('convert', '-size', '256x256', 'gradient:teal-gold', "$av/1010.png") == 0 or die "convert: $?";
    my $batch = qx('$BIN' variants --dir '$av' --formats webp,avif 2>&1);
    is $?, 0, 'avatar.fcgi variants --dir DIR --formats webp,avif exits 0' or diag $batch;
    my $st = start_stack(%o, avatars => $av, args => ['--formats', 'webp,avif']);
    # Over TLS the browser trusts the stack's self-signed certificate by its
    # key (the SPKI hash), which it takes as valid, cache and all.
    local @EXTRA = $o{tls} ? ('--ignore-certificate-errors-spki-list=' . spki("$st->{run}/tls/avatar.crt")) : ();
    # What the batch did not make, a first request has made lazily.
    my $last = "$av/.v/512/1010." . (etag_of("$av/1010.png") =~ s/"//gr) . '.avif';
    http($st->{port}, GET => '/1010?s=32') unless -s $last;
    ok Util::wait_for(sub { -s $last }, 30), 'every variant of 1010 is there';
    my $profile = tempdir('profile-XXXXXX', DIR => $tmp);
    my %q = (origin => $st->{url}, ids => join(',', @ids));
    my $label = "$o{server} $o{mode}" . ($o{fastpath} ? ' fast path' : '') . ($o{tls} ? ' TLS' : '');
    note "$label on $st->{url}, pages on http://localhost:$page_port";

    my $r = visit($profile, 'check.html', %q, checks => 'plain,cors,fetch');
    subtest "$label: a page from another site" => sub {
        ok !$r->{error}, 'the page ran' or diag $r->{error};
        for my $id (@ids) {
            cmp_ok $r->{plain}{$id} // 0, '>', 0, "<img> of $id shows";
            cmp_ok $r->{cors}{$id} // 0, '>', 0, "<img crossorigin> of $id loads";
            is $r->{canvas}{$id}, 'ok', "a canvas with $id drawn on it reads back";
            like $r->{fetch}{$id} // '', qr/^200 [1-9]/, "fetch() of $id";
            my @t = @{ $r->{timing}{$id} || [] };
            ok((grep { $_->{transfer} > 0 } @t),
                "Resource Timing sees the first download of $id (Timing-Allow-Origin)")
                or diag explain \@t;
            # What a browser speaks to a TLS server that offers it: HTTP/2.
            ok @t && !(grep { $_->{proto} ne 'h2' } @t), "$id came over HTTP/2"
                or diag explain \@t if $o{tls};
        }
    };

    my $c = visit($profile, 'coep/check.html', %q, checks => 'plain');
    subtest "$label: a page with Cross-Origin-Embedder-Policy: require-corp" => sub {
        ok !$c->{error}, 'the page ran' or diag $c->{error};
        ok $c->{isolated}, 'the page is cross-origin isolated (so COEP applies)';
        cmp_ok $c->{plain}{$_} // 0, '>', 0, "<img> of $_ shows" for @ids;
    };

    my $again = visit($profile, 'check.html', %q, checks => 'plain,cors,fetch');
    subtest "$label: a second visit" => sub {
        ok !$again->{error}, 'the page ran' or diag $again->{error};
        for my $id (@ids) {
            my @t = @{ $again->{timing}{$id} || [] };
            # A cache hit reads transferSize 0 with the body's size known
            # (the size shows Timing-Allow-Origin applies, so the 0 means
            # something); a revalidation reads status 304.
            ok @t && !(grep { !($_->{transfer} == 0 && $_->{body} > 0) && ($_->{status} // 0) != 304 } @t),
                "$id comes from the browser cache (transferSize 0) or a 304"
                or diag explain \@t;
        }
    };

    # A new picture for 1000: 1002.gif (48 px wide) over 1000.png (64 px),
    # by rename as an upload would.
    my $v1 = visit($profile, 'check.html', %q, ids => '1000', v => 1);
    spew("$av/1000.png.new", slurp("$av/1002.gif"));
    rename "$av/1000.png.new", "$av/1000.png" or die "rename: $!";
    # On the fast path the front server serves the published copy until
    # the watcher (avatar-publish) has republished the file it was changed
    # behind its back (docs/fastpath.md measures that); wait for it.
    if ($o{fastpath}) {
        my $t0 = Time::HiRes::time();
        ok Util::wait_for(sub { -e "$av/.pub/full/1000.gif" && !-e "$av/.pub/full/1000.png" }, 20),
            'the watcher republished 1000 as a GIF';
        note sprintf 'republished after %.3f s', Time::HiRes::time() - $t0;
    }
    my $v2 = visit($profile, 'check.html', %q, ids => '1000', v => 2);
    subtest "$label: after 1000's file is replaced" => sub {
        ok !$v1->{error} && !$v2->{error}, 'the pages ran'
            or diag $v1->{error} // $v2->{error};
        is $v1->{plain}{1000}, 64, '/1000?v=1 showed the old picture (64 px) before';
        is $v2->{plain}{1000}, 48, '/1000?v=2 shows the new picture (48 px) at once';
    };

    # srcset at device scale factor 1 and 2, each in a fresh profile (a
    # browser may take a cached larger candidate instead of the right one).
    # kind    device scale  the size picked
    my @dpr = ([1, 32], [2, 64]);
    for my $d (@dpr) {
        my ($dpr, $size) = @$d;
        local @EXTRA = (@EXTRA, "--force-device-scale-factor=$dpr");
        my $s = visit(tempdir('profile-XXXXXX', DIR => $tmp), 'srcset.html', origin => $st->{url}, id => 1010);
        subtest "$label: srcset at device scale factor $dpr picks the $size px files" => sub {
            ok !$s->{error}, 'the page ran' or return diag $s->{error};
            is $s->{dpr}, $dpr, "devicePixelRatio $dpr";
            for my $k (qw(png webp avif)) {
                my $i = $s->{img}{$k} // {};
                like $i->{src} // '', qr/\?s=$size$/, "$k: currentSrc is the s=$size candidate";
                ok $i->{complete} && $i->{file}{decoded}, "$k: complete, and its file decodes";
                is $i->{natural}, 32, "$k: naturalWidth 32 (the density-corrected width)";
                is "$i->{file}{w}x$i->{file}{h}", "${size}x$size", "$k: the picked file is ${size}x$size";
            }
            for my $k (qw(webp64 avif64)) {
                my $i = $s->{img}{$k} // {};
                ok $i->{complete} && $i->{file}{decoded}, "$k: complete, and its file decodes";
                is $i->{natural}, 64, "$k: naturalWidth 64";
            }
        };
    }
    stop_stack($st);
}

browse(server => 'nginx', mode => 'x-accel');
browse(server => 'lighttpd', mode => 'x-sendfile');
browse(server => 'nginx', mode => 'bytes', fastpath => 1);
browse(server => 'lighttpd', mode => 'x-sendfile', fastpath => 1);
browse(server => 'nginx', mode => 'bytes', fastpath => 1, tls => 1);

done_testing();

#!/usr/bin/perl
# 40-bench-smoke: the benchmark driver (tests/bench/run, `make bench`) still
# works end to end, so it cannot rot between benchmark runs. One tiny round
# (--smoke) of every row and every kind of run, into a temporary results
# directory; then, one case a line: each row was started and measured by each
# client (a rate above zero, no client error, server CPU read), the upload runs
# stored every signed PUT of the 2 MB JPEG (their CPU found in the upload
# processes) and measured each upload row's GETs without and with uploads in
# flight, and the report has the targets, the tables, the chart and the
# machine description.
# No thresholds: the smoke sizes are far too small for the targets to mean
# anything, and speed belongs in `make bench` itself.
use strict;
use warnings;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Util qw(slurp);

my $root = $0 =~ m{^(.*)/tests/t/} ? $1 : '.';
chdir $root or die "chdir $root: $!";
-x 'avatar.fcgi' or plan skip_all => 'avatar.fcgi is not built (make)';

my $out = tempdir('bench-smoke.XXXXXX', TMPDIR => 1, CLEANUP => 1);
# timeout bounds the run (a hang, not a speed: a busy machine takes minutes);
# the driver stops its servers on SIGTERM.
my $log = `timeout -k 10 360 tests/bench/run --smoke --out $out 2>&1`;
my $status = $? >> 8;
if ($log =~ /ensure-deps: missing Debian packages/) {
    plan skip_all => 'the benchmark packages are missing and cannot be installed here '
        . '(tests/lib/ensure-deps bench)';
}
is $status, 0, 'tests/bench/run --smoke exits 0' or diag $log;

my $raw = eval { decode_json(-r "$out/raw.json" ? slurp("$out/raw.json") : die "$out/raw.json: $!\n") } || {};
ok $raw->{raw}, 'raw.json holds the runs' or diag $@;

# row              kinds measured by ab/wrk
my @rows = qw(
    flask
    starlette
    nginx-static
    lighttpd-static
    nginx-xaccel
    nginx-bytes
    lighttpd-xsendfile
    lighttpd-bytes
    tls-orig
    tls-project
);
for my $row (@rows) {
    for my $kind (qw(orig long ka c1000)) {
        my $r = $raw->{raw}{$kind}{$row}[0] // {};
        ok !$r->{error} && ($r->{rps} // 0) > 0 && ($r->{requests} // 0) > 0
            && defined $r->{cpu_s},
            "$row, $kind: measured"
            or diag explain $r;
    }
}

# The upload runs: the upload row alone, then each upload row's GET run
# without and with uploads in flight.
my $up = $raw->{uploads} // {};
is $up->{skipped}, undef, 'the upload runs were not skipped' or diag $up->{skipped};
ok +($up->{image}{bytes} // 0) > 1_000_000, 'the upload body is a JPEG of megabytes'
    or diag explain $up->{image};
my $alone = $up->{alone}[0] // {};
ok $alone->{stored} && $alone->{stored} == $alone->{uploads} && !$alone->{errors},
    'upload row: every upload stored (200 or 201)' or diag explain $alone;
ok +($alone->{upload_procs} // 0) > 0 && ($alone->{cpu_upload_s} // 0) > 0,
    'upload row: the CPU of the upload processes was read' or diag explain $alone;
# row              GET run without and with uploads, and the uploads meanwhile
for my $row (qw(nginx-xaccel nginx-bytes)) {
    my $p = $up->{get}{$row}[0] // {};
    for my $phase (qw(without with)) {
        my $r = $p->{$phase} // {};
        ok !$r->{error} && ($r->{rps} // 0) > 0 && ($r->{requests} // 0) > 0,
            "$row, GET $phase uploads: measured" or diag explain $r;
    }
    my $u = $p->{uploads} // {};
    ok $u->{stored} && $u->{stored} == $u->{uploads} && !$u->{errors},
        "$row: the uploads during its GET run were stored" or diag explain $u;
}

# Sizes (issue 12): one row per mode measured at /1000 and at /1000?s=64.
my $var = $raw->{variants} // {};
is $var->{skipped}, undef, 'the variant runs were not skipped' or diag $var->{skipped};
is_deeply $var->{not_measured} // {}, {}, 'every variant row answered ?s=64 with the variant file'
    or diag explain $var->{not_measured};
# row                 GET run at /1000 and at /1000?s=64
for my $row (qw(nginx-xaccel nginx-bytes lighttpd-xsendfile)) {
    my $p = $var->{pairs}{$row}[0] // {};
    for my $which (qw(orig s64)) {
        my $r = $p->{$which} // {};
        ok !$r->{error} && ($r->{rps} // 0) > 0 && !$r->{non2xx}, "$row, GET $which: measured"
            or diag explain $r;
    }
}
ok +($var->{bytes}{sizes}{64}{avif} // 0) > 0, 'the bytes table has the 64 px AVIF' or diag explain $var->{bytes};

my $md = slurp("$out/results.md");
# what the report must show                        pattern
my @report = (
    ['the x-accel rate target',                    qr/^(PASS|FAIL) nginx → avatar\.fcgi x-accel: [\d.]+ × nginx static .* req\/s \(target ≥ 0\.80\)$/m],
    ['the x-accel CPU target',                     qr/^(PASS|FAIL) nginx → avatar\.fcgi x-accel: [\d.]+ × .*CPU\/request \(target ≤ 1\.50\)$/m],
    ['the bytes target',                           qr/^(PASS|FAIL) nginx → avatar\.fcgi bytes: [\d.]+ × nginx static/m],
    ['the lighttpd target',                        qr/^(PASS|FAIL) lighttpd → avatar\.fcgi x-sendfile: [\d.]+ × lighttpd static/m],
    ['the starlette target',                       qr/^(PASS|FAIL) lighttpd → avatar\.fcgi bytes: [\d.]+ × starlette/m],
    ['the TLS rows compared (CPU, no target)',     qr/^INFO nginx TLS, project config: [\d.]+ × nginx TLS, as originally measured server CPU/m],
    ['the clean-run target',                       qr/^(PASS|FAIL) nginx TLS, project config: \d+ failed, \d+ non-2xx/m],
    ['every upload stored',                        qr/^PASS uploads through nginx → avatar\.fcgi x-accel: \d+ of \d+ stored/m],
    ['the GET-while-uploading target',             qr/^(PASS|FAIL) nginx → avatar\.fcgi x-accel: [\d.]+ × its own req\/s with \d+ uploads in flight .*target ≥ 0\.60\)$/m],
    ['the slowest-GET-while-uploading target',     qr/^(PASS|FAIL) nginx → avatar\.fcgi bytes: slowest GET \d+ ms with \d+ uploads in flight .*target < 1000 ms/m],
    ['uploads per second and CPU per upload',      qr/^INFO uploads through nginx → avatar\.fcgi x-accel alone: [\d.]+\/s .*CPU \d+ ms per upload/m],
    ['the upload table',                           qr/^## Uploads: signed `PUT` of a \d+-byte 3000×2000 JPEG/m],
    ['the GET-while-uploading table',              qr/^## GET while uploading/m],
    ['the x-accel variant target',                 qr/^(PASS|FAIL) nginx → avatar\.fcgi x-accel: \/1000\?s=64 at [\d.]+ × \/1000's req\/s.*target ≥ 0\.95, 0\)$/m],
    ['the bytes-mode variant target',              qr/^(PASS|FAIL) nginx → avatar\.fcgi bytes: \/1000\?s=64 at [\d.]+ ×/m],
    ['the lighttpd variant target',                qr/^(PASS|FAIL) lighttpd → avatar\.fcgi x-sendfile: \/1000\?s=64 at [\d.]+ ×/m],
    ['what a page of 50 avatars saves at 2x',      qr/^INFO a page of 50 avatars shown at 64 px \(128 px files for 2x\) saves \d+ KB in JPEG, \d+ KB in WebP, \d+ KB in AVIF/m],
    ['the variant table',                          qr/^## Sizes: `\/1000\?s=64` against `\/1000`/m],
    ['the bytes table',                            qr/^\| 128 px \| \d+ \| \d+ \| \d+ \|$/m],
    ['the -c 1000 table',                          qr/^## 1000 concurrent/m],
    ['the keep-alive table',                       qr/^## keep-alive/m],
    ['the machine description',                    qr/^\| libfcgi0ldbl \| \S+/m],
    ['the worker count',                           qr/2 workers \(nproc\)|\d+ workers \(nproc\)/],
    ['the chart',                                  qr/^!\[requests per second\]\(chart\.png\)$/m],
);
like $md, $_->[1], "report shows $_->[0]" for @report;
# The TLS target is HTTP/2 over TLS, in tests/bench/h2.py (41-bench-h2.t).
unlike $md, qr/^(PASS|FAIL) nginx TLS, project config: [\d.]+ ×/m, 'no TLS ratio target in the single-avatar report';
ok -s "$out/chart.png", 'chart.png was drawn';

# Nothing of the run is left behind: every process whose command line or
# working directory is in the run's work directory is gone.
my ($work) = $log =~ /work dir (\S+)/;
ok $work, 'the driver names its work directory' or diag $log;
my @left;
for my $proc (glob '/proc/[0-9]*') {
    my $cmd = slurp("$proc/cmdline");
    my $cwd = readlink("$proc/cwd") // '';
    push @left, "$proc: $cmd" if $work && index("$cmd $cwd", $work) >= 0;
}
is scalar(@left), 0, 'no process of the run is left' or diag join "\n", @left;

done_testing;

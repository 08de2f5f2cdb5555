#!/usr/bin/perl
# 42-bench-zipf: the site-like workload of the benchmark (tests/bench/zipf.py)
# still works end to end, and a run that spans a stall of the machine is
# taken again.
#
# First the stall probe (measure.StallProbe) on its own: one of its pinned
# processes is stopped for 200 ms, which is what a CPU that runs nothing
# looks like from inside. It then wakes at least 190 ms late (200 less its
# 10 ms nap at most), and the probe must report 150 ms or more, on that
# CPU. Then one tiny round of every row over a store of 300 ids with
# --stall-ms 0, so that every run counts as stalled: the driver must take
# runs again up to its limit, keep what it set aside, and say so in the
# report; and each row must still have been measured.
# No thresholds on speed: that belongs in `make bench` itself.
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

# The probe: stop one of its processes for 200 ms, 100 ms in.
my $probe = <<'PY';
import json, os, signal, sys, time
sys.path.insert(0, "tests/bench")
import measure
t0 = time.monotonic()
with measure.StallProbe() as p:
    time.sleep(0.1)
    cpu, proc = p.procs[-1]
    os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGCONT)
    time.sleep(0.05)
print(json.dumps({"worst_ms": p.worst_ms, "cpu": p.cpu, "stopped": cpu,
                  "elapsed_ms": (time.monotonic() - t0) * 1000}))
PY
my $pj = `timeout -k 5 60 /usr/bin/python3 -B -c '$probe' 2>&1`;
my $p = eval { decode_json($pj) } || {};
ok +($p->{worst_ms} // 0) >= 150, 'the probe saw its stopped process wake at least 150 ms late'
    or diag $pj;
is $p->{cpu}, $p->{stopped}, 'on the CPU that process is pinned to' or diag $pj;
ok defined $p->{worst_ms} && $p->{worst_ms} <= $p->{elapsed_ms},
    'and no later than the probe ran' or diag $pj;

my $out = tempdir('bench-zipf.XXXXXX', TMPDIR => 1, CLEANUP => 1);
# timeout bounds a hang, not a speed; zipf.py stops its rows on exit.
system("timeout -k 10 400 /usr/bin/python3 -B tests/bench/zipf.py --sizes 300 --rounds 1 "
    . "--seconds 1 --stall-ms 0 --port 18900 --out $out >$out/log 2>&1");
my $status = $? >> 8;
ok $status == 0 || $status == 1, "zipf.py ran to the end (exit $status: 0 or 1, a target may fail)"
    or diag slurp("$out/log");
my $res = eval { decode_json(slurp("$out/zipf.json"))->{results}{300} } || {};

# Every row and kind measured once, with the stall figure read.
for my $kind (qw(ka close)) {
    for my $row (qw(static fastpath x-accel bytes l-static l-fastpath l-xsendfile)) {
        my $r = $res->{raw}{$kind}{$row}[0] // {};
        ok !$r->{error} && ($r->{rps} // 0) > 0 && defined $r->{stall_ms},
            "$row, $kind: measured, with the probe's figure" or diag explain $r;
    }
}

# With every run stalled, the driver takes runs again up to its limit (12)
# and keeps the runs it set aside.
my $aside = 0;
for my $kind (keys %{ $res->{stalled} // {} }) {
    $aside += @{ $res->{stalled}{$kind}{$_} } for keys %{ $res->{stalled}{$kind} };
}
is $aside, 12, 'runs taken again, up to the limit of 12, the ones set aside kept';
my $md = -r "$out/zipf.md" ? slurp("$out/zipf.md") : '';
my ($line) = $md =~ /^(Machine stalls: .*)$/m;
ok defined $line, 'the report has the machine stall line' or diag $md;
my $listed = () = ($line // '') =~ /\(\d+ ms, p99 [\d.]+ ms\)/g;
is $listed, 12, 'it lists the 12 runs taken again' or diag $line;
like $line // '', qr/kept with a stall, the limit reached: /, 'and the runs kept once the limit was reached';

done_testing;

#!/usr/bin/perl
# 41-bench-h2: the HTTP/2 over TLS rows of the benchmark (tests/bench/h2.py)
# still work end to end: a tiny Zipf store, one short round, then, one case
# a line, each row was started and measured by h2load over HTTP/2 (a rate
# above zero, every request answered 2xx, latency percentiles and server CPU
# read), and the report has the target's verdict line and the table.
# No thresholds: speed belongs in `make bench` itself.
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

my $out = tempdir('bench-h2.XXXXXX', TMPDIR => 1, CLEANUP => 1);
# timeout bounds a hang, not a speed; h2.py stops its servers on SIGTERM.
my $md = `timeout -k 10 300 /usr/bin/python3 -B tests/bench/h2.py --n 200 --rounds 1 --seconds 1 --lines 2000 --ktls off --json $out/h2.json 2>$out/log`;
my $status = $? >> 8;
ok $status == 0 || $status == 1, "h2.py ran to the end (exit $status: 0 or 1, a target may fail)"
    or diag slurp("$out/log");
my $res = eval { decode_json(slurp("$out/h2.json")) } || {};

# row        what must hold of its one run
for my $row (qw(static fastpath)) {
    my $r = $res->{raw}{$row}[0] // {};
    subtest "$row: measured over HTTP/2 TLS" => sub {
        ok !$r->{error}, 'no client error' or diag $r->{error};
        ok +($r->{rps} // 0) > 0 && ($r->{requests} // 0) > 0, 'a rate and a request count';
        is $r->{succeeded}, $r->{requests}, 'every request succeeded';
        is $r->{failed}, 0, '0 failed';
        is $r->{non2xx}, 0, '0 non-2xx (missing ids get the default avatar)';
        ok defined $r->{p50} && defined $r->{p99} && $r->{p50} <= $r->{p99}, 'p50 and p99 from the per-request log';
        ok defined $r->{cpu_us}, 'server CPU per request read';
    } or diag explain $r;
}
like $md, qr/^(PASS|FAIL) HTTP\/2 TLS fast path >= 0\.9x nginx static over the same HTTP\/2 TLS/m, 'the target verdict';
like $md, qr/^\| nginx fast path, TLS \+ HTTP\/2 .*\| \d+ \| \d+\.\d\d \|/m, 'the table row of the fast path';
done_testing();

#!/usr/bin/perl
# kill -9 of a worker under load (issue 5, item 1). ab -c 100 fetches /1000
# through each front server with its shipped config and a pool of 2
# workers, while a worker is killed every 2 s. The pool must replace every
# killed worker (the replacement delay is reported), and with nginx's
# shipped fastcgi_next_upstream the client must see no failed and no
# non-2xx request. lighttpd has no such retry: the requests the killed
# worker held may fail; they are counted and reported, and must stay
# within the requests in flight at the moments of the kills (100 each).
# STRESS_SECONDS (default 20) bounds each run.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use Reliability qw(ROOT slurp ab_parse make_site start_stack stop_stack pool_pids ab_run wait_until avatar_log);

my $secs = $ENV{STRESS_SECONDS} // 20;
$secs =~ /^\d+$/ && $secs >= 4 or BAIL_OUT("STRESS_SECONDS=$secs: want a whole number >= 4");
for my $t (qw(ab nginx lighttpd spawn-fcgi)) {
    plan skip_all => "$t is not installed" unless grep { -x "$_/$t" } split /:/, "$ENV{PATH}:/usr/sbin";
}
my $base = tempdir('rel-kill-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($dir) = make_site($base);

for my $stack ([ 'nginx', 'x-accel', 1 ], [ 'lighttpd', 'x-sendfile', 0 ]) {
    my ($server, $mode, $must_be_clean) = @$stack;
    my $s = start_stack(server => $server, mode => $mode, avatars => $dir, workers => 2);
    my $pool = pool_pids($s);
    my $ab = "$base/ab-$server.out";
    my $pid = fork // die;
    if ($pid == 0) {
        exec "ab -r -c 100 -t $secs -n 100000000 $s->{url}/1000 >$ab 2>&1" or exit 127;
    }
    my ($kills, $replaced, $worst) = (0, 0, 0);
    my $end = time + $secs - 2;
    sleep 1;
    while (time < $end) {
        my @w = split ' ', pool_pids($s);
        my $victim = $w[ $kills % @w ] or last;
        kill 'KILL', $victim;
        $kills++;
        my $t0 = time;
        if (wait_until(sub { my $p = pool_pids($s); $p !~ /\b$victim\b/ && (() = $p =~ /\d+/g) == 2 }, 10)) {
            $replaced++;
            $worst = time - $t0 if time - $t0 > $worst;
        }
        sleep 2;
    }
    waitpid $pid, 0;
    my $r = ab_parse(slurp($ab));
    ok($kills >= 1, "$server: $kills workers killed");
    is($replaced, $kills, "$server: every killed worker replaced (slowest after " . sprintf('%.2f', $worst) . ' s)');
    ok($r->{complete} > 0, "$server: ab completed $r->{complete} requests");
    if ($must_be_clean) {
        is($r->{failed}, 0, "$server: 0 failed requests while workers were killed");
        is($r->{non2xx}, 0, "$server: 0 non-2xx responses");
    } else {
        cmp_ok($r->{failed} + $r->{non2xx}, '<=', 100 * $kills,
            "$server: $r->{failed} failed, $r->{non2xx} non-2xx, at most the requests in flight at each kill");
    }
    my $restarts = () = avatar_log($s) =~ /killed by signal 9; restarting/g;
    is($restarts, $kills, "$server: $restarts restarts logged");
    diag(sprintf '%s: %d requests, %d failed, %d non-2xx, %d kills, %d restarts, max %d ms, worst replacement %.2f s',
        $server, $r->{complete}, $r->{failed}, $r->{non2xx}, $kills, $restarts, $r->{max_ms}, $worst);
    if ($r->{complete} == 0 || ($must_be_clean && ($r->{failed} || $r->{non2xx}))) {
        my $elog = slurp("$s->{run}/" . ($server eq 'nginx' ? 'nginx' : 'lighttpd') . '/error.log');
        diag(join "\n", grep { !/\[notice\]/ } split /\n/, $elog);
    }
    stop_stack($s);
}
done_testing();

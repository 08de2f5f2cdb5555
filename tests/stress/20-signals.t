#!/usr/bin/perl
# Graceful shutdown and reload under load (issue 5, item 2).
#  - SIGTERM to an idle responder, single-process and pooled: exit 0.
#  - SIGTERM to a pooled responder while ab -c 50 runs through nginx: exit 0,
#    and no request the responder had accepted is cut off (nginx's error
#    log has no "prematurely closed" or "reset by peer": the only failures
#    allowed are connections refused after the socket closed).
#  - SIGHUP to the pool three times while ab -c 100 runs through nginx:
#    0 failed, 0 non-2xx, and every worker replaced by a new one.
#  - nginx -s reload three times while ab -c 100 runs: 0 failed, 0 non-2xx.
#  - Repeated SIGHUP under ab -c 100 (issue 9, defect 1): bursts of ten
#    SIGHUPs in a second with two workers killed in each (16 workers), and
#    pairs of SIGHUPs 0.1 s apart with 256 workers: 0 failed, 0 non-2xx,
#    and afterwards exactly --workers workers, all started after the last
#    SIGHUP, as /status says too.
# Every wait is bounded (30 s for an exit); the times taken are reported.
# STRESS_SECONDS (default 20) bounds each ab run.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use JSON::PP;
use List::Util qw(shuffle);
use Reliability qw(ROOT slurp make_site start_stack stop_stack pool_pids responder_pid ab_parse
    wait_for wait_exit avatar_log http_get);

my $secs = $ENV{STRESS_SECONDS} // 20;
$secs =~ /^\d+$/ && $secs >= 6 or BAIL_OUT("STRESS_SECONDS=$secs: want a whole number >= 6");
for my $t (qw(ab nginx spawn-fcgi)) {
    plan skip_all => "$t is not installed" unless grep { -x "$_/$t" } split /:/, "$ENV{PATH}:/usr/sbin";
}
my $bin = ROOT . '/avatar.fcgi';
my $base = tempdir('rel-sig-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($dir) = make_site($base);

# Waits (at most 30 s) for a child to exit; returns (status, seconds).
sub reap {
    my ($pid) = @_;
    my $t0 = time;
    my $st = wait_exit($pid, 30);
    kill 'KILL', $pid if $st == -1;
    return ($st, time - $t0);
}

# Idle: single process and pool.
for my $workers (0, 2) {
    my $sock = "$base/idle-$workers.sock";
    my $pid = fork // die;
    if ($pid == 0) {
        open STDERR, '>', "$base/idle-$workers.log";
        exec $bin, '--socket', $sock, '--dir', $dir, '--workers', $workers or exit 127;
    }
    wait_for(sub { -S $sock }, 10);
    if ($workers) { wait_for(sub { (() = Reliability::workers_of($pid) =~ /\d+/g) == $workers }, 10) }
    kill 'TERM', $pid;
    my ($st, $took) = reap($pid);
    is($st, 0, "idle, --workers $workers: SIGTERM, exit status 0");
    diag(sprintf 'idle --workers %d exited after %.2f s', $workers, $took);
}

# Runs ab in the background; returns its pid and output file.
sub ab_bg {
    my ($url, $c, $t, $name) = @_;
    my $out = "$base/ab-$name.out";
    my $pid = fork // die;
    if ($pid == 0) { exec "ab -r -c $c -t $t -n 100000000 $url/1000 >$out 2>&1" or exit 127 }
    return ($pid, $out);
}

# SIGTERM under load, in x-accel mode: nginx opens a new FastCGI connection
# per request there, so a reset in its log can only mean a request the
# responder had accepted (or the kernel had queued) was cut off. With kept
# connections (bytes mode) nginx may also write a request into a kept
# connection just as the stopping worker closes it at the end of its grace
# period; nginx logs that reset and retries the request on a new
# connection, so the log is no measure of cut-off requests there.
{
    my $s = start_stack(server => 'nginx', mode => 'x-accel', avatars => $dir, workers => 2);
    my $rpid = responder_pid($s);
    my ($ab, $out) = ab_bg($s->{url}, 50, 6, 'term');
    sleep 3;
    my $t0 = time;
    kill 'TERM', $rpid;
    ok(wait_for(sub { !kill 0, $rpid }, 30), 'busy pool: SIGTERM, the responder exits');
    my $took = time - $t0;
    waitpid $ab, 0;
    my $log = avatar_log($s);
    unlike($log, qr/killed by signal|exited with status [1-9]/, 'busy pool: no worker killed or failing on the way out');
    my $elog = slurp("$s->{run}/nginx/error.log");
    my @cut = grep { /prematurely closed|reset by peer|upstream timed out/ } split /\n/, $elog;
    is(scalar @cut, 0, 'busy pool: no accepted request was cut off (nginx saw no truncated answer)')
        or diag join "\n", @cut[0 .. ($#cut < 4 ? $#cut : 4)];
    my $r = ab_parse(slurp($out));
    my $refused = () = $elog =~ /connect\(\) to unix:\S+ failed/g;
    diag(sprintf 'SIGTERM under ab -c 50: exit after %.2f s; %d requests, %d non-2xx after the socket closed (%d refused connects in nginx log)',
        $took, $r->{complete}, $r->{non2xx}, $refused);
    # The responder was not our child (spawn-fcgi exec'd it): its exit status
    # is read from the log line the supervisor writes, when it writes one.
    stop_stack($s);
}

# SIGHUP and nginx -s reload under load.
for my $what ('SIGHUP', 'nginx -s reload') {
    my $s = start_stack(server => 'nginx', mode => 'x-accel', avatars => $dir, workers => 2);
    my $rpid = responder_pid($s);
    my $pool = pool_pids($s);
    my ($ab, $out) = ab_bg($s->{url}, 100, $secs, $what =~ /HUP/ ? 'hup' : 'reload');
    my $n = 0;
    for my $i (1 .. 3) {
        sleep $secs / 4;
        if ($what eq 'SIGHUP') { kill 'HUP', $rpid }
        else { system('nginx', '-p', "$s->{run}/nginx/", '-c', "$s->{run}/nginx/nginx.conf", '-e', "$s->{run}/nginx/error.log", '-s', 'reload') }
        $n++;
    }
    waitpid $ab, 0;
    my $r = ab_parse(slurp($out));
    ok($r->{complete} > 0, "$what x$n under ab -c 100: $r->{complete} requests");
    is($r->{failed}, 0, "$what: 0 failed");
    is($r->{non2xx}, 0, "$what: 0 non-2xx");
    if ($what eq 'SIGHUP') {
        my $now = pool_pids($s);
        my %old = map { $_ => 1 } split ' ', $pool;
        ok(!grep({ $old{$_} } split ' ', $now), "SIGHUP: every worker replaced ($pool -> $now)");
        ok(kill(0, $rpid), 'SIGHUP: the supervisor itself stays');
    }
    diag(sprintf '%s x%d: %d requests, %d failed, %d non-2xx, max %d ms', $what, $n, $r->{complete},
        $r->{failed}, $r->{non2xx}, $r->{max_ms});
    diag($r->{out}) if $r->{failed} || $r->{non2xx} || !$r->{complete};
    stop_stack($s);
}

# Repeated SIGHUP under load.
# workers  rounds  SIGHUPs a round  apart (s)  killed a round
for my $c (map { [split] } grep { /\S/ } split /\n/, <<'EOT') {
16         3       10               0.1        2
256        3       2                0.1        0
EOT
    my ($n, $rounds, $hups, $apart, $kills) = @$c;
    my $name = "$rounds x $hups SIGHUPs $apart s apart, $kills killed a round, --workers $n";
    my $s = start_stack(server => 'nginx', mode => 'x-accel', avatars => $dir, workers => $n);
    my $rpid = responder_pid($s);
    wait_for(sub { (() = pool_pids($s) =~ /\d+/g) == $n }, 60);
    my ($ab, $out) = ab_bg($s->{url}, 100, $secs, "burst-$n");
    my %old;
    for my $round (1 .. $rounds) {
        sleep $secs / ($rounds + 1) - $hups * $apart;
        for my $i (1 .. $hups) {
            my @w = split ' ', pool_pids($s);
            $old{$_} = 1 for @w;
            kill 'KILL', grep { defined } (shuffle @w)[0 .. $kills - 1] if $kills && $i == 1;
            kill 'HUP', $rpid;
            sleep $apart;
        }
    }
    waitpid $ab, 0;
    my $r = ab_parse(slurp($out));
    ok($r->{complete} > 0, "$name: $r->{complete} requests under ab -c 100");
    is($r->{failed}, 0, "$name: 0 failed");
    is($r->{non2xx}, 0, "$name: 0 non-2xx");
    my $st = {};
    my $t0 = time;
    my $settled = wait_for(sub {
        my @w = split ' ', pool_pids($s);
        return 0 unless @w == $n && !grep { $old{$_} } @w;
        my (undef, undef, $body) = http_get($s->{port}, '/status');
        $st = eval { decode_json($body) } // {};
        return ($st->{workers_current} // -1) == $n && ($st->{workers_alive} // -1) == $n
            && ($st->{workers_draining} // -1) == 0;
    }, 60);
    ok($settled, "$name: then exactly $n workers, all started after the last SIGHUP, and /status agrees")
        or diag('workers: ' . pool_pids($s) . '; status: ' . encode_json($st));
    ok(kill(0, $rpid), "$name: the supervisor itself stays");
    unlike(avatar_log($s), qr/killing it|AddressSanitizer|runtime error/, "$name: no worker killed by the supervisor");
    diag(sprintf '%s: %d requests, %d failed, %d non-2xx, max %d ms; settled %.2f s after the load',
        $name, $r->{complete}, $r->{failed}, $r->{non2xx}, $r->{max_ms}, time - $t0);
    diag($r->{out}) if $r->{failed} || $r->{non2xx} || !$r->{complete};
    stop_stack($s);
}
done_testing();

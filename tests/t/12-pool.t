#!/usr/bin/perl
# How avatar.fcgi runs: under spawn-fcgi (socket on fd 0, with -n and -F),
# under systemd socket activation (LISTEN_FDS), on its own unix or TCP socket
# with FCGI_WEB_SERVER_ADDRS for IPv4 and IPv6, and as a supervised pool:
# a killed worker is replaced, a crash loop is slowed down, SIGHUP replaces
# every worker, SIGTERM ends it with status 0.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Responder qw(start stop fcgi parse_response write_file wait_for wait_exit bin client children slurp);
use Util qw(free_port);

my $dir = tempdir('avatar-av-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $run = tempdir('avatar-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
# Whole PNGs (signature, IHDR, IEND): the read path refuses one cut short.
my $IEND = "\0\0\0\0IEND\xae\x42\x60\x82";
write_file("$dir/1000.png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR" . 'x' x 64 . $IEND);
write_file("$dir/-1.png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR" . 'd' x 64 . $IEND);

sub nchildren { my @c = children(@_); return scalar @c }
sub get_status {
    my ($sock) = @_;
    my ($raw, $rc) = fcgi({ sock => $sock }, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000');
    my ($st) = parse_response($raw);
    return $rc == 0 ? $st : "rc=$rc";
}
# Starts a command in the background with its stderr in $log and %env
# added to its environment; returns its pid.
sub run_bg {
    my ($log, $env, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>', $log or die "$log: $!";
        @ENV{ keys %$env } = values %$env;
        exec @cmd or exit 99;
    }
    return $pid;
}
my @started;
END { kill 'KILL', @started if @started }

# --- The supervised pool ----------------------------------------------------
{
    my $r = start(dir => $dir, args => [qw(--workers 3)]);
    push @started, $r->{pid};
    ok(wait_for(sub { nchildren($r->{pid}) == 3 }, 10), 'three workers');
    my @before = children($r->{pid});
    is(get_status($r->{sock}), 200, 'pool answers');

    kill 'KILL', $before[0];
    my $t0 = time;
    ok(wait_for(sub { my @c = children($r->{pid}); @c == 3 && !grep { $_ == $before[0] } @c }, 5),
       'a killed worker is replaced');
    my $took = time - $t0;
    ok($took < 1.0, sprintf('replaced within a second (%.2f s)', $took));
    is(get_status($r->{sock}), 200, 'pool answers after the kill');

    # SIGHUP: every worker replaced, service uninterrupted.
    my @old = children($r->{pid});
    kill 'HUP', $r->{pid};
    ok(wait_for(sub { my %o = map { $_ => 1 } @old; my @c = children($r->{pid});
                      @c == 3 && !grep { $o{$_} } @c }, 15), 'SIGHUP replaces every worker');
    is(get_status($r->{sock}), 200, 'pool answers after SIGHUP');

    # /status reports the restart and the live workers.
    my ($raw) = fcgi($r, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/status');
    like($raw, qr/"workers_alive":3/, 'status: 3 workers alive');
    like($raw, qr/"worker_restarts":1\b/, 'status: 1 restart counted');

    # A crash loop: kill each new worker of one slot as soon as it appears.
    my %seen;
    my $end = time + 3;
    my $kills = 0;
    while (time < $end) {
        my @c = children($r->{pid});
        for my $c (@c) {
            next if $seen{$c}++;
            kill 'KILL', $c;
            $kills++;
        }
        sleep 0.005;
    }
    # Without back-off this loop kills hundreds of workers; with it each
    # slot restarts at 100 ms, 200 ms, 400 ms... after quick deaths.
    ok($kills < 60, "crash loop slowed by back-off ($kills workers in 3 s)");
    ok(wait_for(sub { nchildren($r->{pid}) == 3 }, 10), 'pool recovers after the crash loop');
    ok(wait_for(sub { get_status($r->{sock}) eq '200' }, 10), 'and answers');

    is(stop($r), 0, 'SIGTERM: pool exits 0');
    ok(!-e $r->{sock}, 'socket file removed');
    unlike($r->{log_text}, qr/AddressSanitizer|runtime error/, 'no sanitizer report');
    like($r->{log_text}, qr/info: pool of 3 workers started/, 'start logged');
    like($r->{log_text}, qr/warn: worker \d+ killed by signal 9; restarting/, 'restart logged');
    @started = ();
}

# --- spawn-fcgi: socket on fd 0 ----------------------------------------------
SKIP: {
    skip 'spawn-fcgi not installed', 6 unless -x '/usr/bin/spawn-fcgi';
    my $sock = "$run/sf.sock";
    my $pid = run_bg("$run/sf.log", {}, 'spawn-fcgi', '-n', '-s', $sock, '-M', '0660', '--', bin(),
        '--dir', $dir, '--workers', '2');
    push @started, $pid;
    ok(wait_for(sub { -S $sock && get_status($sock) eq '200' }, 10), 'spawn-fcgi -n: answers');
    is(sprintf('%o', (stat $sock)[2] & 0777), '660', 'socket mode 0660');
    kill 'TERM', $pid;
    is(wait_exit($pid, 20), 0, 'spawn-fcgi -n pool: SIGTERM -> exit 0');
    @started = ();

    # -F 2: two independent copies sharing the socket.
    unlink $sock;
    system('spawn-fcgi', '-F', '2', '-s', $sock, '-P', "$run/sf.pid", '--', bin(), '--dir', $dir) == 0
        or diag("spawn-fcgi -F failed");
    # (each copy has its upload manager and process too: named apart)
    my @pids = grep { slurp("/proc/$_/comm") =~ /^avatar\.fcgi/ }
        `pgrep -f -- '--dir $dir\$'` =~ /(\d+)/g;
    push @started, @pids;
    is(scalar @pids, 2, 'spawn-fcgi -F 2: two processes');
    is(get_status($sock), 200, 'spawn-fcgi -F 2: answers');
    kill 'TERM', @pids;
    ok(wait_for(sub { !grep { kill 0, $_ } @pids }, 20), 'both exit on SIGTERM');
    @started = ();
}

# --- systemd socket activation: LISTEN_FDS ------------------------------------
SKIP: {
    skip 'systemd-socket-activate not installed', 2 unless -x '/usr/bin/systemd-socket-activate';
    my $sock = "$run/sd.sock";
    my $pid = run_bg("$run/sd.log", {}, 'systemd-socket-activate', '-l', $sock, bin(), '--dir', $dir);
    push @started, $pid;
    ok(wait_for(sub { -S $sock }, 10), 'socket made by systemd-socket-activate');
    is(get_status($sock), 200, 'LISTEN_FDS socket answers');
    kill 'TERM', $pid;
    wait_exit($pid, 20);
    @started = ();
}

# --- TCP and FCGI_WEB_SERVER_ADDRS ---------------------------------------------
for my $c (
    # listen, list, expect answer
    [ '127.0.0.1', '127.0.0.1', 1 ],
    [ '127.0.0.1', '127.0.0.2,127.0.0.3', 0 ],
    [ '127.0.0.1', '', 1 ],
    [ '[::1]', '::1', 1 ],
    [ '[::1]', '::2', 0 ],
) {
    my ($host, $list, $want) = @$c;
    SKIP: {
        my $port = free_port();
        if ($host =~ /::/) {
            my $ok = IO::Socket::INET6->can('new') || eval { require IO::Socket::IP; IO::Socket::IP->new(Listen => 1, LocalHost => '::1', LocalPort => 0) };
            skip 'no IPv6 loopback', 1 unless $ok;
        }
        my $log = "$run/tcp.log";
        my $pid = run_bg($log, { FCGI_WEB_SERVER_ADDRS => $list }, bin(), '--dir', $dir, '--socket', "$host:$port");
        push @started, $pid;
        my $addr = "$host:$port";
        wait_for(sub { my $s = ($host =~ /::/) ? IO::Socket::IP->new(PeerHost => '::1', PeerPort => $port)
                                                 : IO::Socket::INET->new("127.0.0.1:$port"); $s }, 10);
        my ($raw, $rc) = fcgi({ sock => $addr }, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000');
        my ($st) = parse_response($raw);
        if ($want) { ok($rc == 0 && $st == 200, "TCP $host list '$list': answered") }
        else       { ok($rc != 0, "TCP $host list '$list': refused") }
        kill 'TERM', $pid;
        waitpid $pid, 0;
        @started = ();
    }
}

done_testing;

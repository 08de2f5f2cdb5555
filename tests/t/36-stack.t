#!/usr/bin/perl
# The stack launcher (tests/lib/stack) that `make run`, these tests and the
# benchmarks use: argument errors, rendering of every shipped config (no
# shipped default path may survive), refusing a second start, a responder
# that cannot start, `stop` leaving no process, socket or pid file, and
# `run` in the foreground stopping everything on SIGTERM, on SIGINT, and when
# one of its processes dies.
use strict;
use warnings;
use FindBin;
use Test::More;
use POSIX qw(WNOHANG);
BEGIN { require "$FindBin::Bin/../lib/e2e.pl" }
our ($ROOT);

need_tools(qw(curl spawn-fcgi nginx lighttpd apache2 setpriv openssl));
plan skip_all => "avatar.fcgi is not built (make)" unless -x "$ROOT/avatar.fcgi";
my $stack = "$ROOT/tests/lib/stack";
my $tmp = File::Temp::tempdir('stack-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $av  = make_avatars($tmp);

sub run_stack {    # -> (exit status, stdout + stderr)
    my @args = @_;
    my $out = qx($stack @args 2>&1);
    return ($? >> 8, $out);
}

# Bad arguments: exit 2 and a line naming the problem; nothing started.
# arguments                                                       message
my @bad = (
    ['start --server caddy --run RUN',                            qr/--server: "caddy"/],
    ['start --server apache --mode x-accel --run RUN',            qr/--mode: "x-accel" does not work with apache/],
    ['start --server nginx --mode x-sendfile --run RUN',          qr/--mode: "x-sendfile" does not work with nginx/],
    ['start --server lighttpd --mode x-accel --run RUN',          qr/--mode: "x-accel" does not work with lighttpd/],
    ['start --server lighttpd --tls --run RUN',                   qr/--tls: only with --server nginx/],
    ['start --server nginx',                                      qr/--run RUNDIR is required/],
    ['start --run RUN',                                           qr/--server is required/],
    ['start --server nginx --port 70000 --run RUN',               qr/--port: "70000"/],
    ['start --server nginx --port 80x --run RUN',                 qr/--port: "80x"/],
    ['start --server nginx --workers two --run RUN',              qr/--workers: "two"/],
    ['start --server nginx --avatars /nonexistent/x --run RUN',   qr/--avatars/],
    ['start --server nginx --bin /nonexistent/avatar.fcgi --run RUN', qr/not built/],
    ['start --server nginx --run RUN --frobnicate',               qr/unknown argument "--frobnicate"/],
    ['start --server lighttpd-spawn --run RUN -- stray',          qr/only --option VALUE/],
    ['restart --run RUN',                                         qr/usage|stack start/],
);
for my $c (@bad) {
    my $run = "$tmp/bad";
    (my $args = $c->[0]) =~ s/RUN/$run/g;
    my ($rc, $out) = run_stack($args);
    subtest "stack $c->[0]" => sub {
        is $rc, 2, 'exit 2';
        like $out, $c->[1], 'names the problem';
        ok !-e "$run/front.pid" && !-e "$run/avatar.pid", 'nothing started';
    };
}

# Every pid a run directory records, with all descendants.
sub stack_pids {
    my ($run) = @_;
    my @pids;
    for my $f ("$run/front.pid", "$run/avatar.pid") {
        next unless open my $fh, '<', $f;
        my ($pid) = split ' ', scalar <$fh>;
        push @pids, $pid;
    }
    my @all = @pids;
    while (my $p = shift @pids) {
        my @kids = split ' ', qx(ps -o pid= --ppid $p);
        push @all, @kids;
        push @pids, @kids;
    }
    return @all;
}

sub gone {
    my @pids = @_;
    for (1 .. 50) {
        return 1 unless grep { kill 0, $_ } @pids;
        select undef, undef, undef, 0.1;
    }
    diag "still running: @{[grep { kill 0, $_ } @pids]}";
    return 0;
}

sub leftovers {
    my ($run) = @_;
    return join ' ', map { s{.*/}{}r } grep { -e } (glob("$run/*.pid"), glob("$run/avatar.sock*"),
        "$run/nginx/nginx.pid", "$run/lighttpd/lighttpd.pid", "$run/apache/apache.pid");
}

# start / stop for every server, mode and TLS: the rendered configs hold no
# shipped default, the stack serves, and stop leaves nothing behind.
# server            mode          extra         processes (front + responder trees)
my @kinds = (
    ['nginx',          'x-accel',    [],            '--workers 3'],
    ['nginx',          'bytes',      [],            '--workers 1'],
    ['nginx',          'x-accel',    ['--tls'],     '--workers 2'],
    ['lighttpd',       'x-sendfile', [],            '--workers 2'],
    ['lighttpd',       'bytes',      [],            '--workers 0'],
    ['lighttpd-spawn', 'x-sendfile', [],            '--workers 2'],
    ['lighttpd-spawn', 'bytes',      [],            '--workers 1'],
    ['apache',         'x-sendfile', [],            '--workers 2'],
    ['apache',         'bytes',      [],            '--workers 1'],
);
for my $k (@kinds) {
    my ($server, $mode, $extra, $workers) = @$k;
    my $run = File::Temp::tempdir('stack-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $port = free_port();
    my ($rc, $out) = run_stack("start --server $server --mode $mode --port $port --run $run --avatars $av $workers @$extra");
    subtest "start/stop $server $mode @$extra $workers" => sub {
        is $rc, 0, 'start: exit 0' or diag $out;
        my $scheme = @$extra ? 'https' : 'http';
        is $out, "$scheme://127.0.0.1:$port\n", 'start prints the URL';
        my @conf = grep { -f } glob("$run/nginx/*.conf $run/nginx/*/*.conf $run/lighttpd/*.conf $run/apache/*.conf $run/apache/*/*.conf");
        ok @conf >= 1, 'rendered configs in the run directory';
        my @left = grep { slurp($_) =~ m{/srv/avatars|/run/avatar-fcgi|/usr/local/bin|/etc/ssl/avatar|/var/log} } @conf;
        is "@left", '', 'no shipped default path left in a rendered config';
        like slurp($conf[0]), qr/\Q$run\E/, 'rendered configs point into the run directory';
        my $code = qx(curl -sk -o /dev/null -w '%{http_code}' $scheme://127.0.0.1:$port/1000);
        is $code, '200', 'serves /1000';
        my ($n) = $workers =~ /(\d+)/;
        if ($server ne 'lighttpd-spawn') {
            ok -S "$run/avatar.sock", 'socket in the run directory';
            is sprintf('%04o', (stat "$run/avatar.sock")[2] & 07777), '0660', 'socket mode 0660';
            open my $fh, '<', "$run/avatar.pid";
            my ($apid) = split ' ', scalar <$fh>;
            # Read workers only: the upload manager (comm avatar-uploads) is
            # a child too whenever sizes, formats or uploads are on.
            my @kids = grep { !/avatar-uploads/ } split /\n/, qx(ps -o pid=,comm= --ppid $apid);
            is scalar @kids, $n, "responder runs $n workers";
        }
        my @pids = stack_pids($run);
        my ($rc2, $out2) = run_stack("start --server $server --mode $mode --port $port --run $run --avatars $av");
        is $rc2, 2, 'a second start on the same run directory: exit 2';
        like $out2, qr/already running/, '... says it is already running';
        is qx(curl -sk -o /dev/null -w '%{http_code}' $scheme://127.0.0.1:$port/1000), '200',
            '... and the first stack still serves';
        ($rc, $out) = run_stack("stop --run $run");
        is $rc, 0, 'stop: exit 0';
        ok gone(@pids), 'stop: every process of the stack is gone (' . scalar(@pids) . ')';
        is leftovers($run), '', 'stop: no pid file or socket left';
        ($rc, $out) = run_stack("stop --run $run");
        is $rc, 0, 'stop again: exit 0';
    };
}

# A responder that refuses its options: start fails and leaves nothing.
for my $server (qw(nginx lighttpd lighttpd-spawn apache)) {
    my $run = File::Temp::tempdir('stack-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $port = free_port();
    my ($rc, $out) = run_stack("start --server $server --port $port --run $run --avatars $av -- --max-age soon");
    subtest "start $server with a bad responder option" => sub {
        isnt $rc, 0, 'start fails';
        like $out, qr/did not (come up|create)/, 'says what did not start';
        is leftovers($run), '', 'no pid file or socket left';
        is qx(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/1000), '000', 'nothing listens';
    };
}

# run: foreground; SIGTERM, SIGINT, or the death of a process stops it all.
# signal    whom       exit
my @fg = (
    ['TERM', 'run',       0],
    ['INT',  'run',       0],
    ['KILL', 'responder', 1],
    ['KILL', 'front',     1],
);
for my $c (@fg) {
    my ($sig, $whom, $want) = @$c;
    my $run = File::Temp::tempdir('stack-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $port = free_port();
    my $pid = open my $fh, '-|', "exec $stack run --server nginx --port $port --run $run --avatars $av 2>&1"
        or die "run: $!";
    my $out = '';
    while (my $line = <$fh>) {
        $out .= $line;
        last if $line =~ /Ctrl-C stops it/;
    }
    subtest "run, then SIGKILL/SIG$sig to the $whom" => sub {
        like $out, qr{at http://127\.0\.0\.1:$port$}m, 'prints the URL';
        like $out, qr{curl .*http://127\.0\.0\.1:$port/1000}, 'prints a sample curl';
        is qx(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/1000), '200', 'serves /1000';
        my @pids = stack_pids($run);
        my $target = $pid;
        if ($whom ne 'run') {
            open my $p, '<', "$run/" . ($whom eq 'front' ? 'front' : 'avatar') . '.pid';
            ($target) = split ' ', scalar <$p>;
        }
        kill $sig, $target;
        my $rest = do { local $/; <$fh> };
        close $fh;
        is $? >> 8, $want, "run exits $want";
        ok gone(@pids), 'every process of the stack is gone';
        is leftovers($run), '', 'no pid file or socket left';
    };
}

# run, signalled while it is still starting: a curl that takes 2 s keeps
# the stack in its readiness check with nginx and the responder already up,
# and SIGTERM (or SIGINT) goes to the script alone, not to its process group
# as a terminal's Ctrl-C would. What has started must stop with it.
my $shim = File::Temp::tempdir('stack-shim-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $real_curl = (grep { -x "$_/curl" } split /:/, $ENV{PATH})[0] . '/curl';
open my $sh, '>', "$shim/curl" or die "$shim/curl: $!";
print $sh "#!/bin/sh\nsleep 2\nexec $real_curl \"\$@\"\n";
close $sh;
chmod 0755, "$shim/curl";
for my $sig (qw(TERM INT)) {
    my $run = File::Temp::tempdir('stack-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $port = free_port();
    my $pid = open my $fh, '-|',
        "exec env PATH=$shim:\$PATH $stack run --server nginx --port $port --run $run --avatars $av 2>&1"
        or die "run: $!";
    # Both pid files: the responder and nginx are started, the first
    # readiness curl is asleep.
    for (1 .. 200) {
        last if -s "$run/front.pid" && -s "$run/avatar.pid";
        select undef, undef, undef, 0.05;
    }
    my @pids = stack_pids($run);
    kill $sig, $pid;
    my $out = do { local $/; <$fh> };
    close $fh;
    my $rc = $? >> 8;
    subtest "run, SIG$sig to the script alone while it starts" => sub {
        cmp_ok scalar(@pids), '>=', 2, 'the responder and nginx had started: ' . scalar(@pids) . ' processes';
        unlike $out, qr/Ctrl-C stops it/, 'it had not finished starting';
        like $out, qr/stack: stopping/, 'says it is stopping';
        is $rc, 0, 'run exits 0';
        ok gone(@pids), 'every process of the stack is gone';
        is leftovers($run), '', 'no pid file or socket left';
    };
}

done_testing();

#!/usr/bin/perl
# 16-signals: every signal means the same in the supervisor, in a worker
# and in a single process (avatar.fcgi(1), SIGNALS; issue 9, defects 3 and
# 10). One case a line: who gets the signal, which, and what must follow:
#   stop    the process finishes and exits 0 (a worker's seat is refilled)
#   reload  the supervisor stays and every worker is replaced
#   ignored the process stays, the pool keeps its workers, nothing is logged
# Then the same contract where no timing can show it: the whole pool is run
# under strace, and from the first signal call on no process (supervisor,
# first workers, workers forked by a reload) may ever have one of these six
# signals deliverable with its default action, which would end it: not in
# a worker just forked, not in a worker's wait. A worker waits with SIGTERM
# and SIGINT either caught or blocked and read from a signalfd of its own,
# SIGHUP, SIGUSR1, SIGUSR2 and SIGPIPE ignored, and never holds the
# supervisor's signalfd.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use Util qw(ROOT descendants);
use Responder qw(start stop fcgi parse_response wait_for wait_exit children slurp bin);

my $dir = tempdir('avatar-sg-XXXXXX', TMPDIR => 1, CLEANUP => 1);
system('cp', ROOT . '/avatars/-1.png', ROOT . '/avatars/1000.png', $dir) == 0 or die "cp: $?";

# who         signal  outcome
my @cases = map { [split] } grep { /\S/ && !/^#/ } split /\n/, <<'EOT';
supervisor    TERM    stop
supervisor    INT     stop
supervisor    HUP     reload
supervisor    USR1    ignored
supervisor    USR2    ignored
supervisor    PIPE    ignored
worker        TERM    stop
worker        INT     stop
worker        HUP     ignored
worker        USR1    ignored
worker        USR2    ignored
worker        PIPE    ignored
single        TERM    stop
single        INT     stop
single        HUP     ignored
single        USR1    ignored
single        USR2    ignored
single        PIPE    ignored
EOT

my @started;
END { kill 'KILL', map { ($_, children($_)) } @started }

sub answers {
    my ($r) = @_;
    my ($raw, $rc) = fcgi($r, '-t', '5', 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000');
    my ($st) = parse_response($raw);
    return $rc == 0 && $st == 200;
}

# A process that is still there and not a zombie.
sub alive { my $s = slurp("/proc/$_[0]/stat"); return $s =~ /^\d+ \(.*\) ([^Z]) / }

# A process's open descriptors, and the signal mask of one that is a
# signalfd (0 for any other): bit N-1 stands for signal N.
sub fds { map { m{/(\d+)$} } glob "/proc/$_[0]/fd/*" }
sub sigfd_mask {
    my ($pid, $fd) = @_;
    my ($m) = slurp("/proc/$pid/fdinfo/$fd") =~ /^sigmask:\s*([0-9a-f]+)/m or return 0;
    return hex $m;
}

# Whether the process ignores the signal (its bit in SigIgn of /proc/PID/status).
my %signo = (HUP => 1, INT => 2, USR1 => 10, USR2 => 12, PIPE => 13, TERM => 15);
sub ignores {
    my ($pid, $sig) = @_;
    my ($mask) = slurp("/proc/$pid/status") =~ /^SigIgn:\s+([0-9a-f]+)/m or return 0;
    return (hex(substr($mask, -8)) >> ($signo{$sig} - 1)) & 1;
}

for my $c (@cases) {
    my ($who, $sig, $outcome) = @$c;
    my $name = "SIG$sig to the $who";
    my $n = $who eq 'single' ? 0 : 2;
    my $r = start(dir => $dir, args => [ '--workers', $n ]);
    push @started, $r->{pid};
    wait_for(sub { children($r->{pid}) == $n }, 20) or BAIL_OUT("$name: pool did not start");
    ok(answers($r), "$name: answers before");
    my @before = children($r->{pid});
    my $target = $who eq 'worker' ? $before[0] : $r->{pid};
    # Workers never hold the supervisor's signalfd (one that reads its
    # SIGCHLD); a signalfd of their own for SIGTERM and SIGINT is theirs.
    my @leaks = grep { my $p = $_; grep { sigfd_mask($p, $_) & (1 << 16) } fds($p) } @before;
    is("@leaks", '', "$name: no worker holds the supervisor's signalfd") if $n;
    my $log0 = length slurp($r->{log});
    kill $sig, $target;

    if ($outcome eq 'stop' && $who ne 'worker') {
        my $st = wait_exit($r->{pid}, 30);
        is($st, 0, "$name: exits 0");
        ok(!-e $r->{sock}, "$name: socket file removed");
        ok(wait_for(sub { !grep { alive($_) } @before }, 10), "$name: no worker left");
        @started = grep { $_ != $r->{pid} } @started;
        next;
    }
    if ($outcome eq 'stop') {
        ok(wait_for(sub { !alive($target) }, 10), "$name: the worker stops");
        ok(wait_for(sub { slurp($r->{log}) =~ /worker $target exited with status 0; restarting/ }, 10),
            "$name: finishing its work, exit status 0 (not killed by the signal)");
        ok(wait_for(sub { children($r->{pid}) == $n }, 10), "$name: the pool refills its seat");
    } elsif ($outcome eq 'reload') {
        my %old = map { $_ => 1 } @before;
        ok(wait_for(sub { my @c = children($r->{pid}); @c == $n && !grep { $old{$_} } @c }, 20),
            "$name: every worker replaced");
        ok(alive($r->{pid}), "$name: the supervisor stays");
    } else {
        # A default action ends it at once, a stop after a grace period:
        # watch it for a second.
        ok(!wait_for(sub { !alive($target) }, 1), "$name: the process stays");
        ok(ignores($target, $sig), "$name: the process ignores it (SigIgn)");
        is(join(' ', children($r->{pid})), join(' ', @before), "$name: the same workers");
        my $added = substr(slurp($r->{log}), $log0);
        unlike($added, qr/warn|stopping|reloading/, "$name: nothing logged");
    }
    ok(answers($r), "$name: answers after");
    is(stop($r), 0, "$name: SIGTERM afterwards, status 0");
    unlike($r->{log_text}, qr/AddressSanitizer|runtime error/, "$name: no sanitizer report");
    @started = grep { $_ != $r->{pid} } @started;
}

# --- Nothing outlives the supervisor -----------------------------------------
# With uploads and the publisher on, the supervisor has helpers besides its
# read workers (the upload manager, its uploaders, the publisher). A stop
# signal to the supervisor must end every one of them, whatever the order in
# which the manager learns of it (its queue closing, or its own SIGTERM).
for my $sig (qw(TERM INT)) {
    my $name = "SIG$sig to a supervisor with uploads and the publisher";
    my $pd = tempdir('avatar-sgp-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    system('cp', ROOT . '/avatars/-1.png', ROOT . '/avatars/1000.png', $pd) == 0 or die "cp: $?";
    my $r = start(dir => $pd, args => [ '--workers', 2, '--publish', 'on' ]);
    push @started, $r->{pid};
    my %want = map { $_ => 1 } qw(avatar-uploads avatar-upload avatar-publish);
    my @all;
    wait_for(sub { @all = descendants($r->{pid}); my %c = map { (slurp("/proc/$_/comm") // '') =~ s/\s+$//r => 1 } @all;
        !grep { !$c{$_} } keys %want }, 20) or BAIL_OUT("$name: helpers did not start");
    kill $sig, $r->{pid};
    is(wait_exit($r->{pid}, 30), 0, "$name: exits 0");
    ok(wait_for(sub { !grep { alive($_) } @all }, 10),
        "$name: none of its " . @all . ' processes is left')
        or diag join ', ', map { "$_ " . (slurp("/proc/$_/comm") // '') } grep { alive($_) } @all;
    kill 'KILL', grep { alive($_) } @all;
    @started = grep { $_ != $r->{pid} } @started;
}

# --- The contract, traced ----------------------------------------------------
SKIP: {
    my $strace = (grep { -x "$_/strace" } split /:/, $ENV{PATH})[0];
    skip 'strace is not installed (tests/lib/ensure-deps test)', 1 unless $strace;
    my $tmp = tempdir('avatar-st-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    system("$strace/strace -o /dev/null true 2>/dev/null") == 0
        or skip 'strace cannot trace here (ptrace not permitted)', 1;
    my $sock = "$tmp/avatar.sock";
    my $pid = fork // die;
    if ($pid == 0) {
        open STDERR, '>', "$tmp/log" or die;
        $ENV{ASAN_OPTIONS} = 'detect_leaks=0';    # LeakSanitizer cannot run under ptrace
        exec "$strace/strace", '-ff', '-qq', '-o', "$tmp/tr", '-e', 'signal=none',
            '-e', 'trace=rt_sigaction,rt_sigprocmask,clone,clone3,fork,vfork,epoll_wait,epoll_pwait,epoll_pwait2,ppoll,pselect6,poll,signalfd4,close',
            bin(), '--socket', $sock, '--dir', $dir, '--workers', '2' or exit 127;
    }
    push @started, $pid;
    my $sup;
    wait_for(sub { ($sup) = children($pid); $sup && children($sup) == 2 }, 30) or BAIL_OUT('traced pool did not start');
    my @first = children($sup);
    kill 'HUP', $sup;
    wait_for(sub { my @c = children($sup); @c == 2 && !grep { my $f = $_; grep { $_ == $f } @first } @c }, 30);
    sleep 0.5;    # the new workers reach their wait
    kill 'TERM', $sup;
    is(wait_exit($pid, 30), 0, 'traced pool: SIGTERM, status 0');
    @started = ();

    my %bad = check_trace($tmp, $sup);
    # category   what it holds
    for my $c (map { [split ' ', $_, 2] } split /\n/, <<'EOT') {
default      no process ever had TERM, INT, HUP, USR1, USR2 or PIPE deliverable with its default action (from the first fork on)
sfd          no worker waits holding the supervisor's signalfd
wait         workers wait with TERM and INT caught or read from their own signalfd, HUP, USR1, USR2 and PIPE ignored
EOT
        my ($cat, $what) = @$c;
        my @b = @{ $bad{$cat} // [] };
        # The same violation in many processes is one line with a count.
        my %seen;
        $seen{ s/ \d+ line \d+//r }++ for @b;
        is(scalar @b, 0, "traced pool: $what") or diag join "\n", map { "$_ (x$seen{$_})" } sort keys %seen;
    }
    unlike(slurp("$tmp/log"), qr/AddressSanitizer|runtime error/, 'traced pool: no sanitizer report');
}

# Replays every traced process's signal calls (files tr.PID, from strace
# -ff) and returns the violations of the contract by category. The
# supervisor is checked from its first fork on (before that it is setting
# up); a worker from its birth, with the state its parent had at the fork.
sub check_trace {
    my ($tmp, $root) = @_;
    my (%bad, $waits);
    my %files = map { /\.(\d+)$/ ? ($1 => $_) : () } glob "$tmp/tr.*";
    my @queue = ([ $root, { mask => {}, disp => {}, armed => 0, own => {} } ]);
    while (my $job = shift @queue) {
        my ($pid, $st) = @$job;
        my $kind = $pid == $root ? 'supervisor' : 'worker';
        my $file = $files{$pid} or next;
        open my $fh, '<', $file or next;
        my $n = 0;
        my $check = sub {
            my ($where, $mask) = @_;
            return unless $st->{armed};
            for my $s (qw(HUP INT TERM USR1 USR2 PIPE)) {
                next if $mask->{$s} || ($st->{disp}{$s} // 'DFL') ne 'DFL';
                push @{ $bad{default} }, "$kind $pid line $n ($where): SIG$s deliverable with its default action";
            }
        };
        while (my $l = <$fh>) {
            $n++;
            if ($l =~ /^rt_sigaction\(SIG(\w+), \{sa_handler=(\w+),.*\) = 0/) {
                $st->{disp}{$1} = $2 eq 'SIG_DFL' ? 'DFL' : $2 eq 'SIG_IGN' ? 'IGN' : 'CAUGHT';
                $check->('after sigaction', $st->{mask});
            } elsif ($l =~ /^rt_sigprocmask\((SIG_\w+), (~?\[[\w ]*\]), .*\) = 0/) {
                my ($how, $set) = ($1, sigset($2));
                if ($how eq 'SIG_SETMASK') { $st->{mask} = {%$set} }
                elsif ($how eq 'SIG_BLOCK') { $st->{mask}{$_} = 1 for keys %$set }
                else { delete $st->{mask}{$_} for keys %$set }
                $check->('after sigprocmask', $st->{mask});
            } elsif ($l =~ /^(?:clone3?|v?fork)\(.* = (\d+)$/) {
                $st->{armed} = 1;
                $check->('at fork', $st->{mask});
                # The child inherits the state, and the supervisor's
                # signalfd unless it closes it.
                push @queue, [ $1, { mask => { %{ $st->{mask} } }, disp => { %{ $st->{disp} } },
                    armed => 1, psfd => $st->{sfd}, own => {} } ];
            } elsif ($l =~ /^signalfd4\(-1, (~?\[[\w ]*\]), .* = (\d+)$/) {
                if ($kind eq 'supervisor') { $st->{sfd} = $2 }
                else { $st->{own}{$2} = sigset($1) }
            } elsif ($l =~ /^close\((\d+)\)/) {
                delete $st->{psfd} if defined $st->{psfd} && $1 == $st->{psfd};
                delete $st->{own}{$1};
            } elsif ($l =~ /^poll\(/) {
                $check->('in poll', $st->{mask});
            } elsif ($l =~ /^(epoll_wait|epoll_pwait2?|ppoll|pselect6)\((.*)\) += /) {
                my ($call, $args) = ($1, $2);
                my $mask = $call eq 'epoll_wait' ? $st->{mask}
                    : $args =~ /, (~?\[[\w ]*\]), \d+$/ ? sigset($1) : $st->{mask};
                $check->("in $call", $mask);
                next unless $kind eq 'worker' && $call =~ /^epoll/;
                $waits++;
                my $d = sub { $st->{disp}{ $_[0] } // 'DFL' };
                for my $s (qw(TERM INT)) {
                    my $read = grep { $_->{$s} } values %{ $st->{own} };
                    next if $mask->{$s} ? $read : $d->($s) eq 'CAUGHT';
                    push @{ $bad{wait} }, "worker $pid line $n: waits with SIG$s "
                        . ($mask->{$s} ? 'blocked and no signalfd of its own for it' : $d->($s));
                }
                for my $s (qw(HUP USR1 USR2 PIPE)) {
                    push @{ $bad{wait} }, "worker $pid line $n: waits with SIG$s " . $d->($s)
                        if $d->($s) ne 'IGN';
                }
                push @{ $bad{sfd} }, "worker $pid line $n: waits holding the supervisor's signalfd (fd $st->{psfd})"
                    if defined $st->{psfd};
            }
        }
    }
    push @{ $bad{wait} }, 'fewer than 4 worker waits traced (' . ($waits // 0) . ')' if ($waits // 0) < 4;
    return %bad;
}

# "[HUP INT]" or "~[RTMIN]" (every signal but those) as a set of the six.
sub sigset {
    my ($text) = @_;
    my ($not, $list) = $text =~ /^(~?)\[(.*)\]$/;
    my %in = map { $_ => 1 } split ' ', $list;
    return { map { $_ => 1 } grep { $not ? !$in{$_} : $in{$_} } qw(HUP INT TERM USR1 USR2 PIPE CHLD) };
}

done_testing();

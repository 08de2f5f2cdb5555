# Util.pm: the small helpers every test needs, defined once: the
# repository root, files in and out, a free loopback port, a bounded wait,
# and a process's children. Responder.pm, Reliability.pm and e2e.pl build
# on it; a test may use it directly.
package Util;
use strict;
use warnings;
use Exporter 'import';
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(ROOT slurp spew free_port wait_for wait_exit children kids_of descendants);

my $root = abs_path(dirname(__FILE__) . '/../..');
# The repository root (tests/lib/../..), absolute.
sub ROOT { $root }

# A file's bytes; '' when it cannot be read (a log not written yet, a
# process gone from /proc).
sub slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return '';
    local $/;
    return scalar(<$fh>) // '';
}

# Writes bytes to a file, or dies.
sub spew {
    my ($f, $data) = @_;
    open my $fh, '>:raw', $f or die "$f: $!";
    print $fh $data;
    close $fh or die "$f: $!";
}

# A TCP port on 127.0.0.1 that was free a moment ago (callers that bind
# it retry on another if it has been taken since).
sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1, ReuseAddr => 1)
        or die "free_port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

# Polls $cond (a sub) every 20 ms for at most $secs seconds; returns
# whether it came true.
sub wait_for {
    my ($cond, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        return 1 if $cond->();
        sleep 0.02;
    }
    return $cond->() ? 1 : 0;
}

# Waits at most $secs seconds for the child $pid to exit; returns its wait
# status ($?), or -1 if it is still running.
sub wait_exit {
    my ($pid, $secs) = @_;
    my $st = -1;
    wait_for(sub { my $w = waitpid($pid, POSIX::WNOHANG()); $st = $? if $w == $pid; $w == $pid }, $secs);
    return $st;
}

# The read workers of a responder (a single-threaded process such as the
# supervisor), ascending; a count in scalar context. Its children, except
# the upload manager (named "avatar-uploads" in /proc/PID/comm), which
# makes images, not answers, and runs whenever sizes, formats or uploads
# are on.
sub children {
    my ($pid) = @_;
    my @kids = sort { $a <=> $b } split ' ', slurp("/proc/$pid/task/$pid/children");
    return grep { (slurp("/proc/$_/comm") // '') !~ /^avatar-uploads?$/ } @kids;
}

# Every child of $pid, made by any of its threads, ascending (none once
# it is gone).
sub kids_of {
    my ($pid) = @_;
    return sort { $a <=> $b } map { split ' ', (slurp($_) // '') } glob "/proc/$pid/task/*/children";
}

# Every process below $pid: children, theirs, and so on.
sub descendants {
    my @all;
    my @todo = @_;
    while (defined(my $p = shift @todo)) {
        my @k = kids_of($p);
        push @all, @k;
        push @todo, @k;
    }
    return @all;
}

1;

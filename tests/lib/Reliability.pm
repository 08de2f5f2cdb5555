# Reliability.pm: what the reliability and security tests (tests/t/5x,
# tests/stress) share: a private avatars directory with canaries around it,
# a stack started through tests/lib/stack and stopped at exit, the pool's
# worker pids, raw HTTP/1.1 exchanges, and ab's figures. It starts nothing
# on its own and never touches a process it did not start.
package Reliability;
use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use Util qw(ROOT free_port slurp spew wait_for wait_exit children);

# The helpers of Util.pm are exported from here too (wait_until is its
# wait_for), so a test needs one use line.
our @EXPORT_OK = qw(ROOT free_port slurp spew make_site start_stack stop_stack pool_pids
    workers_of responder_pid http_raw http_get ab_run ab_parse wait_until wait_for wait_exit avatar_log vmrss_kb);

my $root = ROOT;
*wait_until = \&wait_for;

my @RUNS;    # stacks to stop at exit, whatever the exit
END {
    my $rc = $?;
    stop_stack($_) for @RUNS;
    $? = $rc;
}
$SIG{INT} = $SIG{TERM} = sub { exit 1 };

# A PNG (valid signature and IHDR, so sniffing accepts it) that carries a
# marker string: if the marker ever shows in a response, a file outside the
# avatars directory was served.
sub marked_png {
    my ($marker) = @_;
    return slurp("$root/avatars/1000.png") . $marker;
}

# $base/avatars with -1.png and 1000.png; canaries around it: $base/7.png
# (next to the dir), $base/secret/8.png (a sibling dir), avatars/9.png a
# symlink to ../7.png, avatars/5.png a directory. Returns (dir, {marker =>
# path}).
sub make_site {
    my ($base) = @_;
    my $dir = "$base/avatars";
    mkdir $dir or die "$dir: $!";
    copy("$root/avatars/$_", "$dir/$_") or die "$_: $!" for qw(-1.png 1000.png);
    my $tag = sprintf 'CANARY%06d', $$ % 1000000;
    my %canary = ("$tag-next" => "$base/7.png", "$tag-secret" => "$base/secret/8.png");
    mkdir "$base/secret" or die;
    spew($canary{$_}, marked_png($_)) for keys %canary;
    symlink '../7.png', "$dir/9.png" or die "9.png: $!";
    mkdir "$dir/5.png" or die;
    return ($dir, \%canary);
}

# Starts a stack (tests/lib/stack start) on a free port; returns
# {run, port, url, log}. Retries on another port if the chosen one was taken.
sub start_stack {
    my (%o) = @_;
    my $run = tempdir('rel-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my @extra = @{ $o{extra} // [] };
    $o{bin} //= $ENV{AVATAR_BIN};    # to run the tests against another build
    my $err = '';
    for my $try (1 .. 3) {
        my $port = free_port();
        my @cmd = ("$root/tests/lib/stack", 'start', '--server', $o{server}, '--mode', $o{mode},
            '--port', $port, '--run', $run, '--avatars', $o{avatars}, '--workers', $o{workers} // 2,
            ($o{bin} ? ('--bin', $o{bin}) : ()), ($o{fastpath} ? ('--fastpath', '--published') : ()),
            (@extra ? ('--', @extra) : ()));
        my $out = `@{[ join ' ', map { "'$_'" } @cmd ]} 2>&1`;
        if ($? == 0) {
            push @RUNS, $run;
            return { run => $run, port => $port, url => "http://127.0.0.1:$port", log => "$run/avatar.log",
                     server => $o{server} };
        }
        $err = $out;
        system("$root/tests/lib/stack", 'stop', '--run', $run);
    }
    die "stack start --server $o{server} --mode $o{mode} failed:\n$err";
}

sub stop_stack {
    my ($run) = @_;
    $run = $run->{run} if ref $run;
    system("$root/tests/lib/stack", 'stop', '--run', $run);
    @RUNS = grep { $_ ne $run } @RUNS;
}

# The responder's own pid: the first line of RUN/avatar.pid (spawn-fcgi -n
# execs avatar.fcgi); for lighttpd-spawn, the responder lighttpd started.
sub responder_pid {
    my ($s) = @_;
    my $f = "$s->{run}/avatar.pid";
    if (-f $f) {
        my ($pid) = slurp($f) =~ /^(\d+)/;
        return $pid;
    }
    return undef;
}

# The pool's workers as a string of pids, ascending.
sub workers_of {
    my ($pid) = @_;
    return $pid ? join(' ', children($pid)) : '';
}

sub pool_pids { workers_of(responder_pid($_[0])) }

sub avatar_log { slurp($_[0]->{log}) }

sub vmrss_kb {
    my ($pid) = @_;
    my ($kb) = slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)/m;
    return $kb // 0;
}

# Sends $bytes to 127.0.0.1:$port and reads until the server closes or
# $secs pass. Returns (status or 0, head, body, raw).
sub http_raw {
    my ($port, $bytes, $secs) = @_;
    $secs //= 10;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => $secs)
        or return (0, '', '', '');
    $s->autoflush(1);
    local $SIG{PIPE} = 'IGNORE';
    syswrite($s, $bytes);
    my $raw = '';
    my $sel = IO::Select->new($s);
    my $end = time + $secs;
    while (time < $end && $sel->can_read($end - time)) {
        my $n = sysread($s, my $chunk, 65536);
        last unless $n;
        $raw .= $chunk;
    }
    close $s;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my ($status) = ($head // '') =~ m{^HTTP/\d\.\d (\d{3})};
    return ($status // 0, $head // '', $body // '', $raw);
}

sub http_get {
    my ($port, $path, $secs) = @_;
    return http_raw($port, "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", $secs);
}

# Runs ab and returns {complete, failed, non2xx, exceptions, max_ms, rps,
# out}. Options are ab's own; the URL comes last.
sub ab_run {
    my (@args) = @_;
    return ab_parse(scalar `ab @args 2>&1`, $? >> 8);
}

# Parses ab's output (from ab_run, or a file an ab in the background wrote).
sub ab_parse {
    my ($out, $rc) = @_;
    my %r = (out => $out, rc => $rc // 0);
    ($r{complete}) = $out =~ /^Complete requests:\s+(\d+)/m;
    ($r{failed}) = $out =~ /^Failed requests:\s+(\d+)/m;
    ($r{non2xx}) = $out =~ /^Non-2xx responses:\s+(\d+)/m;
    ($r{max_ms}) = $out =~ /^\s*100%\s+(\d+)/m;
    ($r{rps}) = $out =~ /^Requests per second:\s+([\d.]+)/m;
    $r{exceptions} = () = $out =~ /^apr_\w+: /mg;
    $r{$_} //= 0 for qw(complete failed non2xx max_ms rps);
    return \%r;
}

1;

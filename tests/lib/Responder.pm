# Responder.pm: starts avatar.fcgi (the ASan build unless AVATAR_BIN says
# otherwise) on a private unix socket and talks FastCGI to it with the
# project's own client, build/fcgi-client. Used by the tests/t/1x and 6x
# tests. The general helpers (files, waiting, children) are Util.pm's and
# are exported from here too, so a test needs one use line.
package Responder;
use strict;
use warnings;
use Cwd qw(abs_path);
use POSIX ();
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Test::More ();
use Util qw(ROOT slurp spew wait_for wait_exit children);
use Exporter 'import';
our @EXPORT_OK = qw(bin client built start stop fcgi parse_response wait_for wait_exit write_file children slurp);

*write_file = \&spew;

sub bin { my $b = $ENV{AVATAR_BIN} // ROOT . '/build/avatar.fcgi.asan'; return abs_path($b) // $b }
sub client { ROOT . '/build/fcgi-client' }

# The repository root, the responder and the FastCGI client (absolute
# paths); bails out when either program is not built.
sub built {
    -x bin() or Test::More::BAIL_OUT(bin() . ' is not built; run make test');
    -x client() or Test::More::BAIL_OUT(client() . ' is not built; run make build/fcgi-client');
    return (ROOT, bin(), client());
}

# Responders started and not yet stopped, by pid, with the pid of the test
# process that started them. A test that dies or bails out before its
# stop() (BAIL_OUT, die) would leave its pool running for good; the END
# block stops them, only in the process that started them (a test's forked
# children run END blocks too).
my %running;
END {
    my $rc = $?;
    for my $pid (grep { $running{$_} == $$ } keys %running) {
        # Only a child of ours that no one has reaped: never a reused pid.
        next unless waitpid($pid, POSIX::WNOHANG()) == 0;
        kill 'TERM', $pid;
        kill 'KILL', $pid if wait_exit($pid, 10) == -1;
    }
    $? = $rc;
}

# start(dir => DIR, args => [...], env => {...}, bin => PROGRAM,
#       sock => PATH or HOST:PORT) -> {pid, sock, log, run}
# The socket is a private unix socket unless sock says otherwise.
sub start {
    my %o = @_;
    my $run = tempdir('avatar-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $sock = $o{sock} // "$run/avatar.sock";
    my $log = "$run/stderr.log";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>', $log or die;
        open STDOUT, '>', '/dev/null' or die;
        $ENV{$_} = $o{env}{$_} for keys %{ $o{env} // {} };
        $ENV{ASAN_OPTIONS} //= 'detect_leaks=1:abort_on_error=0';
        exec $o{bin} // bin(), '--socket', $sock, '--dir', $o{dir}, @{ $o{args} // [] } or die "exec: $!";
    }
    my $r = { pid => $pid, sock => $sock, log => $log, run => $run };
    $running{$pid} = $$;
    my $up = $sock =~ m{/} ? sub { -S $sock } : sub { IO::Socket::INET->new(PeerAddr => $sock) };
    wait_for($up, 10) or die "responder did not start:\n" . slurp($log);
    return $r;
}

# Sends SIGTERM and returns the exit status (or -1 after 30 s).
sub stop {
    my ($r, $sig) = @_;
    kill $sig // 'TERM', $r->{pid};
    my $st = wait_exit($r->{pid}, 30);
    delete $running{ $r->{pid} } if $st != -1;
    $r->{log_text} = slurp($r->{log});
    return $st;
}

# fcgi($r, [-k N | -t S | -b FILE ...], NAME=VALUE...) -> raw stdout of the
# client; in list context also its exit status.
sub fcgi {
    my ($r, @a) = @_;
    my @opts;
    push @opts, splice(@a, 0, 2) while @a && $a[0] =~ /^-[ktb]$/;
    open my $fh, '-|:raw', client(), '-t', '10', @opts, $r->{sock}, @a
        or die "fcgi-client: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return wantarray ? ($out, $? >> 8) : $out;
}

# Parses "Header: v\r\n...\r\n\r\nbody" into (status, {lc header => value}, body).
sub parse_response {
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my %h;
    for my $line (split /\r\n/, $head // '') {
        my ($k, $v) = $line =~ /^([^:]+):\s?(.*)$/ or next;
        $h{lc $k} = $v;
    }
    my ($status) = ($h{status} // '200') =~ /^(\d+)/;
    return ($status, \%h, $body // '');
}

1;

# Responder.pm: starts avatar.fcgi (the ASan build unless AVATAR_BIN says
# otherwise) on a private unix socket and talks FastCGI to it with the
# project's own client, build/fcgi-client. Used by the tests/t/1x tests.
package Responder;
use strict;
use warnings;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use Exporter 'import';
our @EXPORT_OK = qw(bin client start stop fcgi parse_response wait_for write_file children);

my $top = $ENV{TOP} // '.';
sub bin { $ENV{AVATAR_BIN} // "$top/build/avatar.fcgi.asan" }
sub client { "$top/build/fcgi-client" }

# The pids whose parent is $ppid, from /proc; a count in scalar context.
sub children {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        # pid (comm) state ppid ...
        push @kids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $ppid;
    }
    return @kids;
}

# Writes bytes to a file.
sub write_file {
    my ($path, $bytes) = @_;
    open my $fh, '>:raw', $path or die "$path: $!";
    print $fh $bytes;
    close $fh;
}

# Polls $cond (a sub) every 20 ms for at most $secs seconds.
sub wait_for {
    my ($cond, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        return 1 if $cond->();
        sleep 0.02;
    }
    return $cond->() ? 1 : 0;
}

# start(dir => DIR, args => [...], env => {...}) -> {pid, sock, log, run}
sub start {
    my %o = @_;
    my $run = tempdir('avatar-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $sock = "$run/avatar.sock";
    my $log = "$run/stderr.log";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>', $log or die;
        open STDOUT, '>', '/dev/null' or die;
        $ENV{$_} = $o{env}{$_} for keys %{ $o{env} // {} };
        $ENV{ASAN_OPTIONS} //= 'detect_leaks=1:abort_on_error=0';
        exec bin(), '--socket', $sock, '--dir', $o{dir}, @{ $o{args} // [] } or die "exec: $!";
    }
    my $r = { pid => $pid, sock => $sock, log => $log, run => $run };
    wait_for(sub { -S $sock }, 10) or die "responder did not start:\n" . slurp($log);
    return $r;
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return '';
    local $/;
    return <$fh>;
}

# Sends SIGTERM and returns the exit status (or -1 after 30 s).
sub stop {
    my ($r, $sig) = @_;
    kill $sig // 'TERM', $r->{pid};
    my $st = -1;
    wait_for(sub { my $w = waitpid($r->{pid}, WNOHANG); $st = $? if $w == $r->{pid}; $w == $r->{pid} }, 30);
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

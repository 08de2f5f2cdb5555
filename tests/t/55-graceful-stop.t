#!/usr/bin/perl
# Graceful stop of a pool, deterministically (issue 5, item 2; the load
# version is tests/stress/20-signals.t). A front server that connected
# before SIGTERM and sends its request afterwards is answered: a connection
# already accepted is a request accepted. A connection made after SIGTERM,
# while a worker still drains, must be refused at once (so nginx can try
# another server) or answered, never queued and then reset: that is what a
# front server sees as a 502 after waiting the whole drain. The pool exits 0.
# Each case runs on a unix socket and on TCP. On the unix socket the file
# is gone once the stop begins, so a late connect is refused whatever the
# listening socket does; on TCP only closing every copy of the listening
# socket refuses it, so that case fails (reset) if any process (the
# supervisor above all) keeps a copy open while nobody accepts.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use IO::Socket::INET;
use IO::Select;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use Responder qw(start wait_for wait_exit children);
use Util qw(free_port);

my $hostile = './build/fcgi-hostile';
-x $hostile or BAIL_OUT("$hostile not built (make build/fcgi-hostile)");
my $dir = tempdir('avatar-gs-XXXXXX', TMPDIR => 1, CLEANUP => 1);
system('cp', 'avatars/-1.png', 'avatars/1000.png', $dir) == 0 or die;
my $size = -s "$dir/1000.png";

# A whole FastCGI GET /1000, as nginx sends it.
sub rec { my ($type, $body) = @_; my $pad = (8 - length($body) % 8) % 8;
    pack('CCnnCx', 1, $type, 1, length $body, $pad) . $body . ("\0" x $pad) }
sub nv { my ($k, $v) = @_; pack('CC', length $k, length $v) . $k . $v }
my $params = join '', map { nv(@$_) } [ REQUEST_METHOD => 'GET' ], [ DOCUMENT_URI => '/1000' ],
    [ REQUEST_URI => '/1000' ], [ SERVER_PROTOCOL => 'HTTP/1.1' ];
my $request = rec(1, pack('nCx5', 1, 0)) . rec(4, $params) . rec(4, '') . rec(5, '');

sub connect_to {
    my ($spec) = @_;
    return $spec =~ m{/} ? IO::Socket::UNIX->new(Peer => $spec) : IO::Socket::INET->new(PeerAddr => $spec);
}

for my $t (qw(unix tcp)) {
    my $tcp = $t eq 'tcp';
    my $r = start(dir => $dir, args => [ '--workers', '2', '--timeout', '4' ],
        sock => $tcp ? '127.0.0.1:' . free_port() : undef);
    wait_for(sub { children($r->{pid}) == 2 }, 10)
        or BAIL_OUT('pool did not start');

    # Connected before the signal; the request comes after it. A second one
    # never sends anything, so the drain lasts its --timeout (4 s).
    my $early = connect_to($r->{sock}) or die "connect: $!";
    my $idle = connect_to($r->{sock}) or die "connect: $!";
    sleep 0.3;    # let a worker accept it
    kill 'TERM', $r->{pid};
    # From the signal until the pool is gone, a new connection every 0.1 s,
    # each waiting for its answer: through the grace period (answered),
    # the moment the workers close the socket, and the drain (refused).
    my $probes = "$r->{run}/probes";
    my $prober = fork // die;
    if ($prober == 0) {
        for (1 .. 60) {
            last if Util::slurp("/proc/$r->{pid}/stat") !~ /^\d+ \(.*\) [^Z]/;
            my $o = `$hostile --wait 2 $r->{sock} ping 2>&1`;
            open my $fh, '>>', $probes or die;
            print $fh $o =~ /(ping=\S+)/ ? "$1\n" : "ping=fail(no-output)\n";
            close $fh;
            sleep 0.1;
        }
        exit 0;
    }
    sleep 0.5;
    syswrite $early, $request;
    my $got = '';
    my $sel = IO::Select->new($early);
    my $end = time + 10;
    while (time < $end && $sel->can_read($end - time)) {
        last unless sysread $early, my $chunk, 65536;
        $got .= $chunk;
    }
    like($got, qr/\x01\x03\x00\x01/, "$t: a connection made before SIGTERM gets its answer (END_REQUEST)");
    my ($stdout_len) = 0;
    while ($got =~ /\G\x01(.)(..)(..)(.)\x00/gs) {
        my ($type, $len, $pad) = (ord $1, unpack('n', $3), ord $4);
        my $body = substr($got, pos($got), $len);
        pos($got) += $len + $pad;
        $stdout_len += $len if $type == 6;
    }
    cmp_ok($stdout_len, '>', $size, "$t: ... with the whole avatar ($stdout_len bytes of STDOUT for a $size-byte file)");

    ok(waitpid($r->{pid}, WNOHANG) == 0, "$t: the pool still drains the idle connection");
    close $early;
    close $idle;

    my $st = wait_exit($r->{pid}, 30);
    is($st, 0, "$t: the pool exits 0");
    waitpid $prober, 0;
    # Connected after the signal: answered or refused, never queued and reset.
    my @p = split /\n/, Util::slurp($probes);
    my %n;
    $n{ /ping=2\d\d/ ? 'answered' : /fail\(connect\)/ ? 'refused' : $_ }++ for @p;
    my $seen = join ', ', map { "$n{$_} $_" } sort keys %n;
    ok(@p >= 5, "$t: connections made during the stop ($seen)");
    is(join(' ', grep { !/answered|refused/ } sort keys %n), '',
        "$t: each was answered or refused, none queued and then reset or dropped");
}
done_testing();

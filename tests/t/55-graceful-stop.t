#!/usr/bin/perl
# Graceful stop of a pool, deterministically (issue 5, item 2; the load
# version is tests/stress/20-signals.t). A front server that connected
# before SIGTERM and sends its request afterwards is answered: a connection
# already accepted is a request accepted. A connection made after SIGTERM,
# while a worker still drains, must be refused at once (so nginx can try
# another server) or answered, never queued and then reset: that is what a
# front server sees as a 502 after waiting the whole drain. The pool exits 0.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use IO::Select;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use Responder qw(start wait_for children);

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

my $r = start(dir => $dir, args => [ '--workers', '2', '--timeout', '4' ]);
wait_for(sub { children($r->{pid}) == 2 }, 10)
    or BAIL_OUT('pool did not start');

# Connected before the signal; the request comes after it. A second one
# never sends anything, so the drain lasts its --timeout (4 s).
my $early = IO::Socket::UNIX->new(Peer => $r->{sock}) or die "connect: $!";
my $idle = IO::Socket::UNIX->new(Peer => $r->{sock}) or die "connect: $!";
sleep 0.3;    # let a worker accept it
kill 'TERM', $r->{pid};
sleep 0.5;
syswrite $early, $request;
my $got = '';
my $sel = IO::Select->new($early);
my $end = time + 10;
while (time < $end && $sel->can_read($end - time)) {
    last unless sysread $early, my $chunk, 65536;
    $got .= $chunk;
}
like($got, qr/\x01\x03\x00\x01/, 'a connection made before SIGTERM gets its answer (END_REQUEST)');
my ($stdout_len) = 0;
while ($got =~ /\G\x01(.)(..)(..)(.)\x00/gs) {
    my ($type, $len, $pad) = (ord $1, unpack('n', $3), ord $4);
    my $body = substr($got, pos($got), $len);
    pos($got) += $len + $pad;
    $stdout_len += $len if $type == 6;
}
cmp_ok($stdout_len, '>', $size, "... with the whole avatar ($stdout_len bytes of STDOUT for a $size-byte file)");

# Connected after the signal, while the pool still drains $idle.
my $out = '';
if (waitpid($r->{pid}, WNOHANG) == 0) {
    $out = `$hostile --wait 2 $r->{sock} ping 2>&1`;
    chomp $out;
    unlike($out, qr/ping=fail\((?:reset|closed|timeout)\)/,
        "a connection made during the drain is refused or answered, not queued and reset ($out)");
} else {
    fail('the pool stopped before the drain of an idle connection was over');
}
close $early;
close $idle;

my $st = -1;
wait_for(sub { my $w = waitpid($r->{pid}, WNOHANG); $st = $? if $w == $r->{pid}; $w == $r->{pid} }, 30);
is($st, 0, 'the pool exits 0');
done_testing();

#!/usr/bin/perl
# Bytes after a request are never swallowed (issue 9, defect 10). Each case
# writes a whole stream of FastCGI records to the responder in one write
# (requests back to back, ABORT_REQUESTs in between), then reads every
# record until the responder closes, and sums the outcome per request id in
# the order the END_REQUESTs came: "ID:STATUS" for an answer, "ID:end" for
# an END_REQUEST with no output (an aborted request), "ID:cut" for an
# answer ended early by its abort. Every request is answered or aborted;
# nothing is dropped without a log line.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::UNIX;
use Time::HiRes qw(sleep time);
use Responder qw(start stop write_file);

my $dir = tempdir('avatar-pipe-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $PNG = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
# The read path refuses images cut short (sniff_whole): each ends with a
# PNG's IEND chunk.
my $IEND = "\0\0\0\0IEND\xae\x42\x60\x82";
write_file("$dir/1000.png", $PNG . ('a' x 300) . $IEND);
write_file("$dir/1001.png", $PNG . ('b' x 500) . $IEND);
write_file("$dir/5000.png", $PNG . ('c' x 5_000_000) . $IEND);
write_file("$dir/-1.png", $PNG . ('d' x 50) . $IEND);

# Records, as the FastCGI specification lays them out.
my ($BEGIN, $ABORT, $END, $PARAMS, $STDIN, $STDOUT) = (1, 2, 3, 4, 5, 6);
sub rec {
    my ($type, $id, $c) = @_;
    my $pad = (8 - length($c) % 8) % 8;
    return pack('CCnnCC', 1, $type, $id, length $c, $pad, 0) . $c . ("\0" x $pad);
}
sub nvlen { my $n = shift; $n < 128 ? chr $n : pack('N', $n | 0x80000000) }
sub nv { my ($n, $v) = @_; nvlen(length $n) . nvlen(length $v) . $n . $v }
sub begin { my ($id, $keep) = @_; rec($BEGIN, $id, pack('nCx5', 1, $keep ? 1 : 0)) }
sub params {
    my ($id, $method, $uri, $body) = @_;
    my $p = nv('REQUEST_METHOD', $method) . nv('DOCUMENT_URI', $uri) . nv('REQUEST_URI', $uri);
    $p .= nv('CONTENT_LENGTH', length $body) if length $body;
    return rec($PARAMS, $id, $p) . rec($PARAMS, $id, '');
}
sub stdin {
    my ($id, $body) = @_;
    my $s = '';
    $s .= rec($STDIN, $id, substr($body, 0, 65535, '')) while length $body;
    return $s . rec($STDIN, $id, '');
}
# A whole request: GET unless a method (and body) is given.
sub req {
    my ($id, $uri, $keep, $method, $body) = @_;
    $body //= '';
    return begin($id, $keep) . params($id, $method // 'GET', $uri, $body) . stdin($id, $body);
}

# Sends the stream, waits a moment so the responder handles all of it
# before a byte is read, then reads until the responder closes.
sub exchange {
    my ($r, $bytes) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $r->{sock}) or die "connect: $!";
    syswrite($s, $bytes) == length $bytes or die "short write";
    sleep 0.3;
    my ($raw, $sel, $deadline, $closed) = ('', IO::Select->new($s), time + 15, 0);
    while (time < $deadline) {
        next unless $sel->can_read(1);
        my $n = sysread($s, $raw, 1 << 20, length $raw);
        if (!$n) { $closed = 1; last }
    }
    return ($raw, $closed);
}

# "ID:STATUS ..." in END_REQUEST order, then "closed" if the peer closed.
sub outcome {
    my ($raw, $closed) = @_;
    my (%out, @order);
    while (length $raw >= 8) {
        my ($v, $type, $id, $clen, $plen) = unpack('CCnnC', $raw);
        last if length $raw < 8 + $clen + $plen;
        my $c = substr($raw, 8, $clen);
        substr($raw, 0, 8 + $clen + $plen, '');
        $out{$id} .= $c if $type == $STDOUT;
        next unless $type == $END;
        my $o = $out{$id} // '';
        my $what = 'end';
        if ($o ne '') {
            my ($head, $body) = split /\r\n\r\n/, $o, 2;
            ($what) = $head =~ /^Status: (\d+)/m;
            $what //= 200;
            my ($cl) = $head =~ /^Content-Length: (\d+)/mi;
            $what = 'cut' if defined $cl && length($body // '') < $cl;
        }
        push @order, "$id:$what";
    }
    push @order, 'junk' if length $raw;
    push @order, 'closed' if $closed;
    return join ' ', @order;
}

my @cases = (
    [ 'three requests back to back',
      req(1, '/1000', 1) . req(2, '/1001', 1) . req(3, '/1000', 0),
      '1:200 2:200 3:200 closed' ],
    [ 'ABORT of a half-sent request between two',
      req(1, '/1000', 1) . begin(2, 1) . rec($PARAMS, 2, nv('REQUEST_METHOD', 'GET'))
        . rec($ABORT, 2, '') . req(3, '/1001', 0),
      '1:200 2:end 3:200 closed' ],
    [ 'ABORT in the middle of a body',
      begin(1, 1) . params(1, 'POST', '/1000', 'x' x 10) . rec($STDIN, 1, 'abc')
        . rec($ABORT, 1, '') . req(2, '/1000', 0),
      '1:end 2:200 closed' ],
    [ 'ABORT of a request already answered: moot',
      req(1, '/1000', 1) . rec($ABORT, 1, '') . req(2, '/1001', 0),
      '1:200 2:200 closed' ],
    [ 'ABORT while a 5 MB answer is under way',
      req(1, '/5000', 1) . rec($ABORT, 1, '') . req(2, '/1000', 0),
      '1:cut 2:200 closed' ],
    [ 'PUT with a 100 kB body, then a GET',
      req(1, '/1000', 1, 'PUT', 'p' x 100_000) . req(2, '/1000', 0),
      '1:405 2:200 closed' ],
    [ 'a request after one without FCGI_KEEP_CONN is refused with a log line',
      req(1, '/1000', 0) . req(2, '/1000', 0),
      '1:200 closed' ],
);

my $r = start(dir => $dir, args => [ '--workers', '0' ]);
for my $c (@cases) {
    my ($name, $bytes, $want) = @$c;
    is(outcome(exchange($r, $bytes)), $want, $name);
}
is(stop($r), 0, 'SIGTERM -> exit 0');
like($r->{log_text}, qr/warn: peer: \d+ bytes after a request on a connection to be closed \(no FCGI_KEEP_CONN\); dropped/,
    'the request after one without FCGI_KEEP_CONN is logged, not swallowed');
unlike($r->{log_text}, qr/AddressSanitizer|LeakSanitizer|runtime error/, 'no sanitizer report');
done_testing;

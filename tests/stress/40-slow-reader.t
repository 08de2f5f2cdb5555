#!/usr/bin/perl
# The long slow reader (issue 9, defect 2): an avatar of SLOW_READER_MB
# megabytes (default: what SLOW_READER_RATE bytes a second, default 100 KB/s,
# reads in STRESS_SECONDS, default 20, so about 2 MB) streamed in bytes mode
# to a FastCGI reader with small socket buffers, by one responder process
# (--workers 0, --timeout 2); every half second meanwhile a small request
# goes to the same process. The big one must arrive whole with END_REQUEST,
# every small one must be answered while it is under way. The figures (the
# time taken, the small requests' slowest answer) are reported, not judged.
# The issue's figure, 50 MB at 100 KB/s (about 500 s):
#   SLOW_READER_MB=50 prove tests/stress/40-slow-reader.t
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use Reliability qw(ROOT);
BEGIN { $ENV{AVATAR_BIN} //= ROOT . '/avatar.fcgi' }
use Responder qw(start stop fcgi parse_response write_file client);

my $secs = $ENV{STRESS_SECONDS} // 20;
my $rate = $ENV{SLOW_READER_RATE} // 100_000;
my $mb = $ENV{SLOW_READER_MB} // $secs * $rate / 1e6;
$mb > 0 && $rate > 0 or BAIL_OUT("SLOW_READER_MB=$mb SLOW_READER_RATE=$rate: want positive numbers");
my $size = int($mb * 1_000_000);

my $dir = tempdir('rel-slow-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $PNG = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
# The read path refuses images cut short (sniff_whole): each ends with a
# PNG's IEND chunk.
my $IEND = "\0\0\0\0IEND\xae\x42\x60\x82";
{
    # The big avatar: PNG signature and IHDR, pseudo-random bytes, IEND.
    open my $rnd, '<:raw', '/dev/urandom' or die;
    open my $fh, '>:raw', "$dir/5000.png" or die;
    print $fh $PNG;
    my $left = $size;
    while ($left > 0) {
        my $n = $left < 1 << 20 ? $left : 1 << 20;
        read($rnd, my $b, $n) == $n or die;
        print $fh $b;
        $left -= $n;
    }
    print $fh $IEND;
    close $fh or die;
}
write_file("$dir/1000.png", $PNG . ('s' x 100) . $IEND);
write_file("$dir/-1.png", $PNG . ('d' x 50) . $IEND);

my $r = start(dir => $dir, args => [ '--workers', '0', '--timeout', '2' ]);
my $out = "$r->{run}/slow.out";
my $t0 = time;
my $pid = fork // die;
if ($pid == 0) {
    open STDOUT, '>:raw', $out or die;
    exec client(), '-B', 4096, '-r', $rate, '-t', 30, $r->{sock},
        'REQUEST_METHOD=GET', 'DOCUMENT_URI=/5000' or exit 127;
}
my ($small, $answered, @took) = (0, 0);
while (waitpid($pid, WNOHANG) == 0) {
    my $t = time;
    my ($raw, $rc) = fcgi($r, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000');
    my ($st) = parse_response($raw);
    push @took, time - $t;
    $small++;
    $answered++ if $rc == 0 && $st == 200;
    sleep 0.5;
}
my $rc = $? >> 8;
my $elapsed = time - $t0;
is($rc, 0, 'the slow response ended with END_REQUEST');
my $got = -s $out;
# The response is the header block, then the file.
my $want = $size + length($PNG) + length($IEND);
ok($got > $want && $got - $want < 1000, "all $want bytes of the avatar arrived ($got with headers)");
{
    open my $a, '<:raw', "$dir/5000.png" or die;
    open my $b, '<:raw', $out or die;
    local $/ = "\r\n\r\n";
    my $head = <$b>;
    my $same = 1;
    while (1) {
        my $na = read($a, my $x, 1 << 20);
        my $nb = read($b, my $y, 1 << 20);
        $same = 0 if $x ne $y;
        last if !$na || !$nb;
    }
    ok($same, 'byte for byte the file');
}
cmp_ok($small, '>=', 2, "$small small requests sent during it");
is($answered, $small, "every one answered while the slow response was under way");
is(stop($r), 0, 'SIGTERM -> exit 0');
unlike($r->{log_text}, qr/response cut|AddressSanitizer|runtime error/, 'no cut response');
@took = sort { $a <=> $b } @took;
diag(sprintf '%.1f MB at %d B/s: %.0f s (%.0f kB/s), %d small requests answered meanwhile '
    . '(fcgi-client run included): median %.1f ms, slowest %.1f ms',
    $size / 1e6, $rate, $elapsed, $want / $elapsed / 1000, $answered,
    ($took[$#took / 2] // 0) * 1000, ($took[-1] // 0) * 1000);
done_testing;

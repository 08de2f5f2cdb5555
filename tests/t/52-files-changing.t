#!/usr/bin/perl
# Files changing under load (issue 5, item 6). While ab -c 100 fetches /42
# through nginx (bytes mode, where the responder's own cache is at stake,
# and x-accel) and lighttpd (x-sendfile), another process replaces 42.png
# again and again by atomic rename between two images of different sizes,
# and a checker of our own fetches /42 in a loop: every answer must be
# exactly one of the two images, whole (sha256 of the body), with a
# Content-Length equal to the body's size. Then deleting 42.png turns the
# answer into the default avatar; and a file the responder cannot read
# (mode 000, responder running as nobody) is answered with the default
# avatar and logged. Each load phase lasts 3 s. A missing id that the
# workers remember (asked for again and again) is served as soon as its
# file is made by hand.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use Digest::SHA qw(sha256_hex);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use Reliability qw(ROOT slurp spew make_site start_stack stop_stack pool_pids http_get ab_parse
    avatar_log wait_until);

for my $t (qw(ab nginx lighttpd spawn-fcgi)) {
    plan skip_all => "$t is not installed" unless grep { -x "$_/$t" } split /:/, "$ENV{PATH}:/usr/sbin";
}
my $SECS = 3;
my $base = tempdir('rel-files-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($dir) = make_site($base);
my $A = slurp("$dir/1000.png");
# B: A with 20 kB more, and an IEND chunk at its very end, so the read
# path's cheap check for a PNG cut short (sniff_whole) finds one there.
my $B = $A . ("b" x 20000) . "\0\0\0\0IEND\xae\x42\x60\x82";
my $DEF = slurp("$dir/-1.png");
my %known = (sha256_hex($A) => 'A', sha256_hex($B) => 'B');

# avatar_missing_known_total from the stack's /metrics.
sub known_missing {
    my ($s) = @_;
    my (undef, undef, $body) = http_get($s->{port}, '/metrics', 10);
    return $body =~ /^avatar_missing_known_total (\d+)$/m ? $1 : -1e9;
}

# Replaces $dir/42.png by rename, alternating A and B, until killed or $secs.
sub replacer {
    my ($secs) = @_;
    my $pid = fork // die;
    return $pid if $pid;
    my $end = time + $secs;
    my $i = 0;
    while (time < $end && $i < 1_000_000) {
        my $tmp = "$dir/.42.png.tmp";
        spew($tmp, $i % 2 ? $B : $A);
        rename $tmp, "$dir/42.png" or POSIX::_exit(1);
        $i++;
    }
    POSIX::_exit(0);    # not exit: the END blocks would stop the parent's stacks
}

for my $stack ([ 'nginx', 'bytes' ], [ 'nginx', 'x-accel' ], [ 'lighttpd', 'x-sendfile' ]) {
    my ($server, $mode) = @$stack;
    spew("$dir/42.png", $A);
    my $s = start_stack(server => $server, mode => $mode, avatars => $dir, workers => 2);
    my $pool = pool_pids($s);
    my $abpid = fork // die;
    if ($abpid == 0) { exec "ab -r -c 100 -t $SECS -n 100000000 $s->{url}/42 >$base/ab.out 2>&1" or exit 127 }
    my $rep = replacer($SECS);
    my (%seen, @bad);
    my $end = time + $SECS;
    my $n = 0;
    while (time < $end && $n < 100_000) {
        my ($st, $head, $body) = http_get($s->{port}, '/42', 10);
        $n++;
        my ($cl) = $head =~ /^Content-Length:\s*(\d+)/mi;
        my $which = $known{ sha256_hex($body) };
        if ($st != 200 || !defined $cl || $cl != length($body) || !$which) {
            push @bad, sprintf 'status %s, Content-Length %s, body %d bytes %s', $st, $cl // 'none',
                length $body, $which ? "= $which" : 'is neither image';
            next;
        }
        $seen{$which}++;
    }
    waitpid $rep, 0;
    waitpid $abpid, 0;
    my $ab = ab_parse(slurp("$base/ab.out"));
    is_deeply(\@bad, [], "$server/$mode: $n answers while 42.png was replaced, each exactly A or B, whole")
        or diag join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)];
    ok($seen{A} && $seen{B}, "$server/$mode: both images were served (A $seen{A}, B $seen{B})") if $n > 20;
    is($ab->{non2xx}, 0, "$server/$mode: ab -c 100: $ab->{complete} requests, 0 non-2xx");
    # ab counts an answer whose length differs from its first one as failed,
    # which both sizes do here; only connection failures count.
    like($ab->{out}, qr/\(Connect: 0, Receive: 0, Length: \d+, Exceptions: 0\)|^Failed requests:\s+0$/m,
        "$server/$mode: ab saw no connection failures");
    unlink "$dir/42.png";
    my ($st, undef, $body) = http_get($s->{port}, '/42', 10);
    ok($st == 200 && $body eq $DEF, "$server/$mode: deleted 42.png: the default avatar");

    # A missing id the workers remember (docs/how-it-works.md#missing-ids),
    # then made by hand: served at once, never the default once it is there.
    sleep 2.2;    # the directory unchanged for 2 s, so the absence is remembered
    my $known = known_missing($s);
    my @miss = grep { $_ ne $DEF } map { (http_get($s->{port}, '/77', 10))[2] } 1 .. 8;
    is(scalar @miss, 0, "$server/$mode: /77, no file: the default avatar, 8 times");
    cmp_ok(known_missing($s) - $known, '>=', 2, "$server/$mode: ... at least 2 of them from memory");
    spew("$dir/.77.png.tmp", $B);
    rename "$dir/.77.png.tmp", "$dir/77.png" or die "rename: $!";
    my @got = map { (http_get($s->{port}, '/77', 10))[2] } 1 .. 8;
    is(scalar(grep { $_ eq $B } @got), 8, "$server/$mode: 77.png made by hand: served on every request after");
    unlink "$dir/77.png";
    is(pool_pids($s), $pool, "$server/$mode: no worker died");
    diag(sprintf '%s/%s: checker %d answers (A %d, B %d, bad %d); ab %d requests, %d non-2xx',
        $server, $mode, $n, $seen{A} // 0, $seen{B} // 0, scalar @bad, $ab->{complete}, $ab->{non2xx});
    stop_stack($s);
}

# Mode 000: only a responder that is not root is refused the file.
SKIP: {
    my $setpriv = (grep { -x "$_/setpriv" } split /:/, "$ENV{PATH}:/usr/bin")[0];
    skip 'setpriv is not installed', 3 unless $setpriv && $> == 0;
    my $hostile = ROOT . '/build/fcgi-hostile';
    my $d = tempdir('rel-000-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 01777, $d;    # the responder, as nobody, makes its socket here
    spew("$d/-1.png", $DEF);
    spew("$d/42.png", $B);
    chmod 0000, "$d/42.png";
    my $sock = "$d/a.sock";
    my $pid = fork // die;
    if ($pid == 0) {
        open STDERR, '>', "$d/log";
        exec "$setpriv/setpriv", '--reuid=65534', '--regid=65534', '--clear-groups',
            ROOT . '/avatar.fcgi', '--socket', $sock, '--socket-mode', '0666', '--dir', $d or exit 127;
    }
    wait_until(sub { -S $sock }, 10);
    my $out = `$hostile --uri /42 $sock ping`;
    like($out, qr/ping=200 body=${\ length $DEF}$/, 'mode 000, responder as nobody: the default avatar');
    kill 'TERM', $pid;
    waitpid $pid, 0;
    is($?, 0, 'that responder exits 0 on SIGTERM');
    like(slurp("$d/log"), qr/42\.png.*(?:denied|EACCES)|(?:denied|EACCES).*42/i, 'the unreadable file is logged');
}

done_testing();

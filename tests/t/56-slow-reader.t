#!/usr/bin/perl
# A slow reader never blocks a worker and always gets the whole avatar
# (issue 9, defects 2 and 3). One responder process (--workers 0,
# --timeout 2) serves a 5 MB avatar in bytes mode to a FastCGI client with
# small socket buffers that reads at SLOW_RATE bytes a second (default
# 1.5 MB/s, so the response takes longer than --timeout); meanwhile a small
# request goes to the same process while the slow reader is stopped
# (SIGSTOP), so its response cannot be finished then: the reader has taken
# at most SLOW_RATE bytes a second so far, far less than 5 MB. The small one
# must be answered then, and the slow one must end whole, with END_REQUEST,
# once it reads again: it was never cut, so it was under way all along. Three variants: the file streamed from disk, the same file
# lent from the cache (--cache-file-max 8M), and the streamed file while
# SIGUSR1, SIGUSR2 and SIGHUP are sent to the process again and again
# (with --timeout 30 there, so that only a signal could cut it). A fourth
# reads 600 kB at 100 kB/s with --timeout 1: a unix socket says it is
# writable again only when three quarters of its ~200 kB buffer have
# drained, which takes such a reader longer than 1 s, so progress must be
# seen another way (the shrinking send queue).
# Order and completion are checked, not durations.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep);
use Responder qw(start stop fcgi parse_response write_file client);

my $rate = $ENV{SLOW_RATE} // 1_500_000;
my $dir = tempdir('avatar-slow-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $PNG = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
# The read path refuses images cut short (sniff_whole): each ends with a
# PNG's IEND chunk.
my $IEND = "\0\0\0\0IEND\xae\x42\x60\x82";
my $big = $PNG . do {
    open my $rnd, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
    read($rnd, my $b, 5_000_000) == 5_000_000 or die 'short read from /dev/urandom';
    $b;
} . $IEND;
write_file("$dir/5000.png", $big);
my $mid = $PNG . substr($big, 16, 600_000) . $IEND;
write_file("$dir/6000.png", $mid);
my $small = $PNG . ('s' x 100) . $IEND;
write_file("$dir/1000.png", $small);
write_file("$dir/-1.png", $PNG . ('d' x 50) . $IEND);

# Starts the slow reader; its STDOUT stream goes to a file.
sub slow_reader {
    my ($r, $out, $uri, $bps) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>:raw', $out or die;
        exec client(), '-B', 4096, '-r', $bps, '-t', 10, $r->{sock},
            'REQUEST_METHOD=GET', "DOCUMENT_URI=$uri" or exit 127;
    }
    return $pid;
}

sub running { waitpid($_[0], WNOHANG) == 0 }

# name, options, avatar, its bytes, read rate, signals
my @variants = (
    [ 'streamed file', [],                           '/5000', $big, $rate,   0 ],
    [ 'cached body',   [ '--cache-file-max', '8M' ], '/5000', $big, $rate,   0 ],
    # A long --timeout here: only a signal could cut this one.
    [ 'signals',       [ '--timeout', '30' ],        '/5000', $big, $rate,   1 ],
    [ '100 kB/s, --timeout 1', [ '--timeout', '1' ], '/6000', $mid, 100_000, 0 ],
);
for my $v (@variants) {
    my ($name, $args, $uri, $want, $bps, $signals) = @$v;
    my $r = start(dir => $dir, args => [ '--workers', '0', '--timeout', '2', @$args ]);
    # Warm the cache so the lent-body path is the one measured.
    fcgi($r, 'REQUEST_METHOD=HEAD', "DOCUMENT_URI=$uri");
    my $out = "$r->{run}/slow.out";
    my $pid = slow_reader($r, $out, $uri, $bps);
    sleep 0.3;
    ok(running($pid), "$name: the slow reader is under way");

    # A small request to the same (only) process while the slow reader
    # takes nothing at all.
    kill 'STOP', $pid;
    my ($raw, $rc) = fcgi($r, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000');
    kill 'CONT', $pid;
    my ($st, undef, $body) = parse_response($raw);
    ok($rc == 0 && $st == 200 && $body eq $small,
        "$name: small request answered while the slow response was unfinished");

    my $sent = 0;
    if ($signals) {
        # Every ~20 ms until the slow reader is done.
        while (running($pid)) {
            kill $_, $r->{pid} for qw(USR1 USR2 HUP);
            $sent += 3;
            sleep 0.02;
        }
    } else {
        waitpid($pid, 0);
    }
    my $slow_rc = $? >> 8;
    is($slow_rc, 0, "$name: slow response ended with END_REQUEST");
    my ($st2, $h2, $b2) = parse_response(Responder::slurp($out));
    ok($st2 == 200 && length($b2) == length($want) && $b2 eq $want,
        sprintf('%s: all %d bytes arrived (%d)', $name, length $want, length $b2));
    if ($signals) {
        cmp_ok($sent, '>', 30, "$name: $sent signals sent during the response");
        ok(kill(0, $r->{pid}), "$name: the process is still there");
        my ($st3) = parse_response(scalar fcgi($r, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000'));
        is($st3, 200, "$name: and answers the next request");
    }
    is(stop($r), 0, "$name: SIGTERM -> exit 0");
    unlike($r->{log_text}, qr/AddressSanitizer|LeakSanitizer|runtime error|response cut/,
        "$name: no sanitizer report, no cut response");
}

done_testing;

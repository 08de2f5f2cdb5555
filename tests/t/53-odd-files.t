#!/usr/bin/perl
# Symlinks and odd files in the avatars directory (issue 5, item 7), through
# nginx (bytes and x-accel) and lighttpd (x-sendfile): a symlink out of the
# directory, a directory named 5.png, a FIFO named 6.png, a 0-byte file and
# a 50 MB file. None may escape (the symlink's target never shows), none may
# hang a worker (a good request after each is answered, every request has a
# bound), and none may blow the memory cache: the 50 MB file is sent whole,
# and after five of them no worker's resident memory has grown by 25 MB
# (it is above --cache-file-max, so it must be streamed, never cached).
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(mkfifo);
use Reliability qw(ROOT slurp spew make_site start_stack stop_stack pool_pids http_get avatar_log
    vmrss_kb);

for my $t (qw(nginx lighttpd spawn-fcgi)) {
    plan skip_all => "$t is not installed" unless grep { -x "$_/$t" } split /:/, "$ENV{PATH}:/usr/sbin";
}
my $base = tempdir('rel-odd-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($dir, $canary) = make_site($base);     # 9.png -> ../7.png, 5.png a directory
mkfifo("$dir/6.png", 0644) or die "mkfifo: $!";
spew("$dir/3.png", '');
my $BIG = 50 * 1024 * 1024;
{
    open my $fh, '>:raw', "$dir/4.png" or die;
    # 1000.png, zeros, and an IEND chunk at the very end: a whole PNG as
    # far as the read path's cheap check can tell (sniff_whole).
    print $fh slurp("$dir/1000.png");
    truncate $fh, $BIG - 12 or die;
    seek $fh, 0, 2;
    print $fh "\0\0\0\0IEND\xae\x42\x60\x82";
    close $fh;
    -s "$dir/4.png" == $BIG or die "4.png: wrong size";
}
symlink '/etc/passwd', "$dir/2.png" or die;
my $DEF = slurp("$dir/-1.png");
my $GOOD = slurp("$dir/1000.png");

# id, what it is, what the answer must be: 'default' or 'big'.
my @cases = (
  [ '9',  'symlink to ../7.png',   'default' ],
  [ '2',  'symlink to /etc/passwd', 'default' ],
  [ '5',  'directory 5.png',       'default' ],
  [ '6',  'FIFO 6.png',            'default' ],
  [ '3',  '0-byte 3.png',          'default' ],
  [ '4',  '50 MB 4.png',           'big' ],
);

for my $stack ([ 'nginx', 'bytes' ], [ 'nginx', 'x-accel' ], [ 'lighttpd', 'x-sendfile' ]) {
    my ($server, $mode) = @$stack;
    my $s = start_stack(server => $server, mode => $mode, avatars => $dir, workers => 2);
    my $pool = pool_pids($s);
    my %rss0 = map { $_ => vmrss_kb($_) } split ' ', $pool;
    for my $c (@cases) {
        my ($id, $what, $want) = @$c;
        my ($st, $head, $body, $raw) = http_get($s->{port}, "/$id", 30);
        if ($want eq 'default') {
            ok($st == 200 && $body eq $DEF, "$server/$mode: $what: the default avatar (status $st)");
        } else {
            ok($st == 200 && length($body) == $BIG && substr($body, 0, 8) eq "\x89PNG\r\n\x1a\n",
                "$server/$mode: $what: sent whole (" . length($body) . ' bytes)');
        }
        ok(!grep({ index($raw, $_) >= 0 } keys %$canary) && $raw !~ /root:x?:0:0:/, "$server/$mode: $what: nothing from outside");
        my ($gst, undef, $gbody) = http_get($s->{port}, '/1000', 30);
        ok($gst == 200 && $gbody eq $GOOD, "$server/$mode: after $what, a good request is answered");
    }
    http_get($s->{port}, '/4', 60) for 1 .. 4;
    my @grown;
    for my $w (split ' ', $pool) {
        my $d = vmrss_kb($w) - ($rss0{$w} // 0);
        push @grown, "$w +${d} kB";
        cmp_ok($d, '<', 25 * 1024, "$server/$mode: worker $w resident memory grew $d kB after five 50 MB answers");
    }
    diag("$server/$mode VmRSS growth: @grown");
    is(pool_pids($s), $pool, "$server/$mode: no worker died");
    unlike(avatar_log($s), qr/AddressSanitizer|restarting/, "$server/$mode: no crash, no restart");
    stop_stack($s);
}
done_testing();

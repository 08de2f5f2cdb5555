#!/usr/bin/perl
# The hostile HTTP corpus (tests/corpus/http-requests.txt, one case a line:
# traversal in every encoding, NUL, CR/LF, overlong ids, non-ASCII digits,
# 64 kB URIs, many and duplicate headers, odd methods) sent over raw TCP
# through nginx and lighttpd with the shipped configs, in each front server's
# own mode and in bytes mode (issue 5, item 5). For every case: no canary
# bytes (PNG files placed next to and beside the avatars directory, one also
# reachable by a symlink inside it) and no /etc/passwd in the answer, no
# injected header, any image answered is byte for byte one of the avatars,
# and a good request right after it is answered with 1000.png. After each
# stack: the pool's worker pids are unchanged and its log has no restart,
# no sanitizer report and no raw control byte.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use Reliability qw(ROOT slurp make_site start_stack stop_stack pool_pids http_raw http_get avatar_log);

for my $t (qw(nginx lighttpd spawn-fcgi)) {
    plan skip_all => "$t is not installed (tests/lib/ensure-deps test)"
        unless grep { -x "$_/$t" } split /:/, "$ENV{PATH}:/usr/sbin";
}
my $bin = $ENV{AVATAR_BIN} // ROOT . '/build/avatar.fcgi.asan';
-x $bin or BAIL_OUT("$bin not built (make test builds it)");

# Expands one corpus line's escapes: {{N*TEXT}}, then \r \n \t \\ \xNN.
sub expand {
    my ($s) = @_;
    $s =~ s/\{\{(\d+)\*(.*?)\}\}/$2 x $1/ge;
    $s =~ s/\\(r|n|t|\\|x([0-9a-fA-F]{2}))/
        $1 eq 'r' ? "\r" : $1 eq 'n' ? "\n" : $1 eq 't' ? "\t" : $1 eq '\\' ? '\\' : chr hex $2/ge;
    return $s;
}

my @cases;
open my $fh, '<:raw', ROOT . '/tests/corpus/http-requests.txt' or die $!;
while (my $line = <$fh>) {
    chomp $line;
    next if $line =~ /^(#|$)/;
    my ($name, $reqline, @headers) = split /\t/, $line, -1;
    my $req = expand($reqline) . "\r\n";
    $req .= expand($_) . "\r\n" for @headers;
    push @cases, [ $name, $req . "Host: 127.0.0.1\r\nConnection: close\r\n\r\n" ];
}
cmp_ok(scalar @cases, '>=', 200, scalar(@cases) . ' corpus cases');

my $base = tempdir('rel-http-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($dir, $canary) = make_site($base);
my %avatar = map { slurp("$dir/$_") => $_ } qw(-1.png 1000.png);
my $good = slurp("$dir/1000.png");
my $passwd = qr/root:x?:0:0:/;

my $sent = 0;
for my $stack ([ 'nginx', 'x-accel' ], [ 'nginx', 'bytes' ], [ 'lighttpd', 'x-sendfile' ], [ 'lighttpd', 'bytes' ]) {
    my ($server, $mode) = @$stack;
    my $s = start_stack(server => $server, mode => $mode, avatars => $dir, bin => $bin, workers => 2);
    my $pool = pool_pids($s);
    ok($pool =~ /^\d+ \d+$/, "$server/$mode: pool of 2 workers ($pool)");
    my (@bad, %statuses);
    for my $c (@cases) {
        my ($name, $req) = @$c;
        my ($st, $head, $body, $raw) = http_raw($s->{port}, $req, 15);
        $sent++;
        $statuses{$st}++;
        my @why;
        push @why, "canary $_" for grep { index($raw, $_) >= 0 } keys %$canary;
        push @why, 'passwd' if $raw =~ $passwd;
        push @why, 'injected header' if $head =~ /^(?:X-Injected|Set-Cookie|Location)\s*:/mi;
        push @why, 'injected body' if $raw =~ /injected-body/ && $head !~ /^HTTP\/1\.1 [45]/;
        # One whole image answer to a GET (not HEAD, not ranges, not pipelined).
        my $answers = () = $raw =~ m{HTTP/\d\.\d \d{3} }g;
        if ($head =~ m{^Content-Type:\s*image/}mi && $st == 200 && $head !~ /^Content-Range/mi
            && $req =~ /^GET / && $answers == 1) {
            push @why, 'image body is none of the avatars' unless exists $avatar{$body};
        }
        my ($gst, undef, $gbody) = http_get($s->{port}, '/1000', 15);
        push @why, "next good request got $gst" unless $gst == 200 && $gbody eq $good;
        push @bad, "$name: @why (status $st)" if @why;
    }
    is_deeply(\@bad, [], "$server/$mode: " . scalar(@cases) . ' cases, no escape, no injection, good request after each')
        or diag join "\n", @bad;
    diag("$server/$mode statuses: " . join ' ', map { "$_:$statuses{$_}" } sort keys %statuses);
    is(pool_pids($s), $pool, "$server/$mode: worker pids unchanged");
    my $log = avatar_log($s);
    unlike($log, qr/restarting|killed by signal|exited with status/, "$server/$mode: no worker died");
    unlike($log, qr/AddressSanitizer|runtime error|LeakSanitizer/, "$server/$mode: no sanitizer report");
    unlike($log, qr/[\x00-\x08\x0b-\x1f\x7f]/, "$server/$mode: control bytes in the log are escaped");
    stop_stack($s);
}
diag("hostile HTTP: $sent requests sent (each followed by a good one)");

done_testing();

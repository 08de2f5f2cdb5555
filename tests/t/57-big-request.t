#!/usr/bin/perl
# Large requests are read as they come (issue 9, defect 5) and slow HTTP
# clients behind nginx delay no one (defect 2).
#
# Part 1, straight FastCGI: build/fcgi-client -a writes the way Apache's
# mod_proxy_fcgi does (a non-blocking socket, a wait for POLLOUT before each
# write, small socket buffers), so a responder that does not consume what
# was sent makes it wait forever (it gives up after -t 5: exit 3). Requests
# up to the limits are answered; over them, they are answered 413 or closed,
# each with one log line. One line a case.
#
# Part 2, through Apache with conf/apache/avatar-proxy-fcgi.conf (where the
# defect was found): a GET with 42 KB of request headers, and a PUT with as
# many and a 50 KB body, each answered (before the fix: no answer until
# Apache gave up, then 503).
#
# Part 3, through nginx with conf/nginx/avatar-bytes.conf (upstream kept
# connections, no temp files) and one worker: a slow HTTP client (a small
# receive buffer, 1 MB/s; curl's --limit-rate is not reliable in every
# version) downloading a 5 MB avatar is stopped (SIGSTOP) so that nginx's
# buffers and the FastCGI socket fill; other requests must be answered
# meanwhile, and the download, once resumed, must end whole (it was never
# cut, with --timeout 2 while it takes longer). Order and completion are
# checked, not durations.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF pack_sockaddr_in inet_aton);
use Time::HiRes qw(sleep time);
use Responder qw(start stop fcgi parse_response write_file client);
use Reliability qw(start_stack stop_stack http_get avatar_log);

my $dir = tempdir('avatar-big-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $PNG = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
# The read path refuses images cut short (sniff_whole): each ends with a
# PNG's IEND chunk.
my $IEND = "\0\0\0\0IEND\xae\x42\x60\x82";
my $small = $PNG . ('a' x 300) . $IEND;
write_file("$dir/1000.png", $small);
write_file("$dir/-1.png", $PNG . ('d' x 50) . $IEND);
my $big = $PNG . do {
    open my $rnd, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
    read($rnd, my $b, 5_000_000) == 5_000_000 or die 'short read from /dev/urandom';
    $b;
} . $IEND;
write_file("$dir/5000.png", $big);
write_file("$dir/body50k", 'B' x 51_200);
write_file("$dir/body200k", 'B' x 200_000);

my $H44 = 'HTTP_X_BIG=' . ('h' x 44_000);
my $H70 = 'HTTP_X_BIG=' . ('h' x 70_000);
# name, fcgi-client arguments, exit status, HTTP status, log line ('' none)
my @cases = (
    [ 'GET with 44 KB of params', [ 'REQUEST_METHOD=GET', $H44 ], 0, 200, '' ],
    [ 'PUT, 44 KB of params, 50 KB body', [ '-b', "$dir/body50k", 'REQUEST_METHOD=PUT', $H44,
        'CONTENT_LENGTH=51200' ], 0, 405, '' ],
    [ 'POST, 44 KB of params, 50 KB body', [ '-b', "$dir/body50k", 'REQUEST_METHOD=POST', $H44,
        'CONTENT_LENGTH=51200' ], 0, 405, '' ],
    [ 'PARAMS over 64 KiB', [ 'REQUEST_METHOD=GET', $H70 ], 1, undef,
        qr/warn: peer: PARAMS larger than 64 KiB; connection closed/ ],
    [ 'CONTENT_LENGTH over --upload-max', [ '-b', "$dir/body200k", 'REQUEST_METHOD=PUT',
        'CONTENT_LENGTH=200000' ], 0, 413, qr/info: request body over --upload-max \(102400 bytes\): 413/ ],
    [ 'body over --upload-max, no CONTENT_LENGTH', [ '-b', "$dir/body200k", 'REQUEST_METHOD=PUT' ],
        0, 413, qr/info: request body over --upload-max \(102400 bytes\): 413/ ],
);

# The limit through its environment variable, AVATAR_UPLOAD_MAX.
my $r = start(dir => $dir, args => [ '--workers', '0' ], env => { AVATAR_UPLOAD_MAX => '100K' });
for my $c (@cases) {
    my ($name, $args, $want_rc, $want_st, $want_log) = @$c;
    my $before = length Responder::slurp($r->{log});
    my @opts;
    push @opts, splice(@$args, 0, 2) while @$args && $args->[0] =~ /^-[b]$/;
    my ($raw, $rc) = fcgi($r, '-a', '-B', 16384, '-t', 5, @opts, 'DOCUMENT_URI=/1000', @$args);
    # No header block at all is no answer (parse_response would say 200).
    my ($st) = $raw =~ /\r\n\r\n/ ? parse_response($raw) : ('none');
    is($rc, $want_rc, "$name: client exit status $want_rc");
    is($st, $want_st, "$name: status $want_st") if defined $want_st;
    my $new = substr(Responder::slurp($r->{log}), $before);
    if (ref $want_log) {
        like($new, $want_log, "$name: one log line");
        is(scalar(() = $new =~ /\n/g), 1, "$name: only one");
    } else {
        is($new, '', "$name: nothing logged");
    }
}
my ($st) = parse_response(scalar fcgi($r, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000'));
is($st, 200, 'a plain GET is answered after them');
is(stop($r), 0, 'SIGTERM -> exit 0');
unlike($r->{log_text}, qr/AddressSanitizer|LeakSanitizer|runtime error/, 'no sanitizer report');

# A slow HTTP/1.1 client in a child process: a 16 KiB receive buffer,
# reads at $rate bytes a second, the body into $file. Exits 0 when the
# whole Content-Length arrived.
sub slow_http {
    my ($port, $path, $file, $rate) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    socket(my $s, PF_INET, SOCK_STREAM, 0) or exit 2;
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 16384);
    connect($s, pack_sockaddr_in($port, inet_aton('127.0.0.1'))) or exit 2;
    syswrite($s, "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    my ($raw, $t0) = ('', time);
    while (1) {
        my $n = sysread($s, $raw, 4096, length $raw);
        last unless $n;
        my $due = length($raw) / $rate - (time - $t0);
        sleep $due if $due > 0;
    }
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    open my $fh, '>:raw', $file or exit 2;
    print $fh $body // '';
    close $fh;
    my ($cl) = ($head // '') =~ /^Content-Length: (\d+)/mi;
    exit(defined $cl && length($body // '') == $cl ? 0 : 1);
}

SKIP: {
    skip 'apache2 is not installed', 4
        unless grep { -x "$_/apache2" } split /:/, "$ENV{PATH}:/usr/sbin";
    my $s = start_stack(server => 'apache', mode => 'bytes', avatars => $dir, workers => 1,
        bin => $ENV{AVATAR_BIN} // Responder::bin());
    # Apache takes at most 8190 bytes a header line: six of 7 KB.
    my $hdrs = join '', map { "X-Big-$_: " . ('h' x 7000) . "\r\n" } 1 .. 6;
    my ($code, undef, $body) = Reliability::http_raw($s->{port},
        "GET /1000 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n$hdrs\r\n", 15);
    ok($code == 200 && $body eq $small, "apache: GET with 42 KB of headers answered ($code)");
    ($code) = Reliability::http_raw($s->{port},
        "PUT /1000 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: image/png\r\n"
        . "Content-Length: 51200\r\n$hdrs\r\n" . ('B' x 51_200), 15);
    ok($code == 405, "apache: PUT with 42 KB of headers and a 50 KB body answered ($code)");
    my $elog = Reliability::slurp("$s->{run}/apache/error.log");
    unlike($elog, qr/proxy_fcgi:error|Broken pipe|timed out/, 'apache: no proxy error in its log');
    unlike(avatar_log($s), qr/AddressSanitizer|runtime error/, 'apache: no sanitizer report');
    stop_stack($s);
}

SKIP: {
    skip 'nginx is not installed', 5
        unless grep { -x "$_/nginx" } split /:/, "$ENV{PATH}:/usr/sbin";
    my $s = start_stack(server => 'nginx', mode => 'bytes', avatars => $dir, workers => 1,
        bin => $ENV{AVATAR_BIN} // Responder::bin(), extra => [ '--timeout', '2' ]);
    my $out = "$s->{run}/slow.out";
    my $pid = slow_http($s->{port}, '/5000', $out, 1_000_000);
    sleep 0.5;
    ok(waitpid($pid, WNOHANG) == 0, 'nginx: the slow download is under way');
    kill 'STOP', $pid;
    sleep 0.5;	# nginx's buffers and the FastCGI socket fill meanwhile
    my $answered = 0;
    for (1 .. 5) {
        my ($code, undef, $body) = http_get($s->{port}, '/1000', 15);
        $answered++ if $code == 200 && $body eq $small;
    }
    kill 'CONT', $pid;
    is($answered, 5, 'nginx: 5 requests answered while the slow download was stopped');
    waitpid($pid, 0);
    is($? >> 8, 0, 'nginx: the slow download ended with its whole Content-Length');
    my $got = -s $out // 0;
    ok($got == length($big) && Reliability::slurp($out) eq $big,
        sprintf('nginx: all %d bytes arrived (%d)', length $big, $got));
    my $log = avatar_log($s);
    unlike($log, qr/response cut|AddressSanitizer|runtime error/, 'nginx: no cut response, no sanitizer report');
    stop_stack($s);
}
done_testing;

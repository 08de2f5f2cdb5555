#!/usr/bin/perl
# avatar.fcgi spoken to directly over FastCGI on a unix socket, in all three
# modes, through the project's own client. Covers the request-to-file rules,
# the response headers of each mode, conditional requests, HEAD, 405, kept
# connections, and a clean exit (status 0, no ASan/LSan report) on SIGTERM.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use Responder qw(start stop fcgi parse_response write_file);

my $dir = tempdir('avatar-av-XXXXXX', TMPDIR => 1, CLEANUP => 1);
# The read path refuses images cut short (sniff_whole): each ends with its
# format's end marker (PNG IEND chunk, JPEG EOI, GIF trailer).
my $IEND = "\0\0\0\0IEND\xae\x42\x60\x82";
my $PNG = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR" . ('p' x 100) . $IEND;
my $JPG = "\xff\xd8\xff\xe0\0\x10JFIF" . ('j' x 200) . "\xff\xd9";
my $GIF = "GIF89a\1\0\1\0" . ('g' x 50) . ';';
write_file("$dir/1000.png", $PNG);
write_file("$dir/1001.png", $JPG);     # a JPEG under a .png name
write_file("$dir/1002.gif", $GIF);
write_file("$dir/-1.png", $JPG);
write_file("$dir/2000.png", "not an image");
mkdir "$dir/2001.png";
# An image outside the avatars directory, reachable only through a symlink.
my $outside = tempdir('avatar-out-XXXXXX', TMPDIR => 1, CLEANUP => 1);
write_file("$outside/secret.png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR SECRET" . ('s' x 50) . $IEND);
symlink "$outside/secret.png", "$dir/2002.png" or die;

# mode, method, uri, expected status, type, cache-control, header => value, body
my @cases = (
  [ 'bytes', 'GET',  '/1000',          200, 'image/png',  'public, max-age=300, stale-while-revalidate=86400', {}, $PNG ],
  [ 'bytes', 'GET',  '/1000.png',      200, 'image/png',  'public, max-age=300, stale-while-revalidate=86400', {}, $PNG ],
  [ 'bytes', 'GET',  '/avatar/1001',   200, 'image/jpeg', 'public, max-age=300, stale-while-revalidate=86400', {}, $JPG ],
  [ 'bytes', 'GET',  '/1002.jpg',      200, 'image/gif',  'public, max-age=300, stale-while-revalidate=86400', {}, $GIF ],
  [ 'bytes', 'GET',  '/42',            200, 'image/jpeg', 'public, max-age=60',   {}, $JPG ],
  [ 'bytes', 'GET',  '/01000',         200, 'image/jpeg', 'public, max-age=60',   {}, $JPG ],
  [ 'bytes', 'GET',  '/2000',          200, 'image/jpeg', 'public, max-age=60',   {}, $JPG ],
  [ 'bytes', 'GET',  '/2001',          200, 'image/jpeg', 'public, max-age=60',   {}, $JPG ],
  [ 'bytes', 'GET',  '/2002',          200, 'image/jpeg', 'public, max-age=60',   {}, $JPG ],
  [ 'bytes', 'GET',  '/../etc/passwd', 200, 'image/jpeg', 'public, max-age=60',   {}, $JPG ],
  [ 'bytes', 'HEAD', '/1000',          200, 'image/png',  'public, max-age=300, stale-while-revalidate=86400', { 'content-length' => length $PNG }, '' ],
  [ 'bytes', 'POST', '/1000',          405, 'text/plain', 'no-store',             { allow => 'GET, HEAD, OPTIONS' }, undef ],
  [ 'bytes', 'PUT',  '/1000',          405, 'application/json', 'no-store',            { allow => 'GET, HEAD, OPTIONS' }, undef ],
  [ 'x-accel', 'GET', '/1000',         200, 'image/png',  'public, max-age=300, stale-while-revalidate=86400', { 'x-accel-redirect' => '/_avatars/1000.png' }, '' ],
  [ 'x-accel', 'GET', '/1001.png',     200, 'image/jpeg', 'public, max-age=300, stale-while-revalidate=86400', { 'x-accel-redirect' => '/_avatars/1001.png' }, '' ],
  [ 'x-accel', 'GET', '/9',            200, 'image/jpeg', 'public, max-age=60',   { 'x-accel-redirect' => '/_avatars/-1.png' }, '' ],
  [ 'x-accel', 'POST', '/9',           405, 'text/plain', 'no-store',             { allow => 'GET, HEAD, OPTIONS' }, undef ],
  [ 'x-sendfile', 'GET', '/1002',      200, 'image/gif',  'public, max-age=300, stale-while-revalidate=86400', { 'x-sendfile' => "$dir/1002.gif" }, '' ],
  [ 'x-sendfile', 'GET', '/x',         200, 'image/jpeg', 'public, max-age=60',   { 'x-sendfile' => "$dir/-1.png" }, '' ],
);

my %r;
for my $mode (qw(bytes x-accel x-sendfile)) {
    $r{$mode} = start(dir => $dir, args => ['--mode', $mode]);
}
for my $c (@cases) {
    my ($mode, $m, $uri, $st, $type, $cc, $hdr, $body) = @$c;
    my ($raw, $rc) = fcgi($r{$mode}, "REQUEST_METHOD=$m", "DOCUMENT_URI=$uri", "REQUEST_URI=$uri");
    my ($status, $h, $b) = parse_response($raw);
    my $name = "$mode $m $uri";
    is($rc, 0, "$name: END_REQUEST received");
    is($status, $st, "$name: status");
    is($h->{'content-type'}, $type, "$name: Content-Type");
    is($h->{'cache-control'}, $cc, "$name: Cache-Control");
    is($h->{'x-content-type-options'}, 'nosniff', "$name: nosniff");
    is($h->{$_}, $hdr->{$_}, "$name: $_") for sort keys %$hdr;
    ok($b eq $body, "$name: body") if defined $body;
}

# The query string and REQUEST_URI alone (no DOCUMENT_URI): same avatar.
{
    my ($st, $h, $b) = parse_response(fcgi($r{bytes}, 'REQUEST_METHOD=GET', 'REQUEST_URI=/avatar/1000.png?v=3'));
    ok($st == 200 && $b eq $PNG, 'REQUEST_URI with ?v= query');
    ($st, $h, $b) = parse_response(fcgi($r{bytes}, 'REQUEST_METHOD=GET', 'SCRIPT_NAME=/a', 'PATH_INFO=/1001'));
    ok($st == 200 && $b eq $JPG, 'SCRIPT_NAME + PATH_INFO');
}

# Validators in bytes mode.
{
    my ($st, $h) = parse_response(fcgi($r{bytes}, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000'));
    like($h->{etag}, qr/^"[0-9a-f]+-[0-9a-f]+"$/, 'strong quoted ETag (size-mtime)');
    like($h->{'last-modified'}, qr/^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/, 'Last-Modified IMF-fixdate');
    my ($st2, $h2, $b2) = parse_response(fcgi($r{bytes}, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000', "HTTP_IF_NONE_MATCH=$h->{etag}"));
    ok($st2 == 304 && $b2 eq '' && !exists $h2->{'content-length'}, 'If-None-Match -> 304, no body');
    ($st2) = parse_response(fcgi($r{bytes}, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000', "HTTP_IF_MODIFIED_SINCE=$h->{'last-modified'}"));
    is($st2, 304, 'If-Modified-Since -> 304');
    ($st2) = parse_response(fcgi($r{bytes}, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000', 'HTTP_IF_MODIFIED_SINCE=Thu, 01 Jan 1970 00:00:00 GMT'));
    is($st2, 200, 'older If-Modified-Since -> 200');
    # Replace by rename: new bytes and a new ETag at once.
    write_file("$dir/tmp", $GIF);
    rename "$dir/tmp", "$dir/1000.png" or die;
    my ($st3, $h3, $b3) = parse_response(fcgi($r{bytes}, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000', "HTTP_IF_NONE_MATCH=$h->{etag}"));
    ok($st3 == 200 && $b3 eq $GIF && $h3->{'content-type'} eq 'image/gif' && $h3->{etag} ne $h->{etag},
       'replaced avatar served new at once');
    write_file("$dir/tmp", $PNG);
    rename "$dir/tmp", "$dir/1000.png" or die;
}

# A kept connection (FCGI_KEEP_CONN) answers request after request.
{
    my ($raw, $rc) = fcgi($r{bytes}, '-k', 5, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000');
    my $n = () = $raw =~ /Status: 200 OK\r\n/g;
    ok($rc == 0 && $n == 5, "5 requests on one kept connection ($n)");
}

# A request body (405) is read and dropped; the connection stays usable.
{
    my $body = "$r{bytes}{run}/body";
    write_file($body, 'x' x 30000);
    my ($raw, $rc) = fcgi($r{bytes}, '-k', 2, '-b', $body, 'REQUEST_METHOD=POST', 'DOCUMENT_URI=/1', 'CONTENT_LENGTH=30000');
    my $n = () = $raw =~ /Status: 405 /g;
    ok($rc == 0 && $n == 2, 'two POSTs with bodies on one connection -> 405 twice');
}

# The records that crash libfcgi 2.4.2 are refused before it reads them;
# the responder keeps answering.
{
    require IO::Socket::UNIX;
    my $rec = sub { my ($t, $id, $c) = @_; pack('CCnnCC', 1, $t, $id, length $c, 0, 0) . $c };
    my @attacks = (
        $rec->(1, 1, pack('nCx5', 1, 0)) . $rec->(4, 1, pack('NN', 0xc0000000, 0xc0000000) . 'AAAA'),
        $rec->(1, 1, pack('nCx5', 1, 0)) . $rec->(4, 1, pack('NC', 0xfffffffe, 0)),
        $rec->(9, 0, join '', map { "\x0f\x00FCGI_MPXS_CONNS" } 1 .. 4),
    );
    for my $i (0 .. $#attacks) {
        my $s = IO::Socket::UNIX->new(Peer => $r{bytes}{sock}) or die $!;
        print $s $attacks[$i] . $rec->(4, 1, '') . $rec->(5, 1, '');
        $s->blocking(1);
        # Closed means end of file (or a reset) within 5 s; a connection
        # that merely hangs is not closed, and fails here.
        my ($got, $n, $hung) = ('', undef, 0);
        eval { local $SIG{ALRM} = sub { die "hung\n" }; alarm 5; $n = sysread($s, $got, 100); alarm 0; 1 }
            or $hung = 1;
        my $how = $hung ? 'hung' : !defined $n ? "error: $!" : $n == 0 ? 'end of file' : "$n bytes";
        ok(!$hung && $got eq '' && (defined $n ? $n == 0 : $!{ECONNRESET}),
            "crash record $i: connection closed without an answer ($how)");
        my ($st) = parse_response(fcgi($r{bytes}, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000'));
        is($st, 200, "crash record $i: next request still answered");
    }
}

for my $mode (qw(bytes x-accel x-sendfile)) {
    is(stop($r{$mode}), 0, "$mode: SIGTERM -> exit 0");
    unlike($r{$mode}{log_text}, qr/AddressSanitizer|LeakSanitizer|runtime error/, "$mode: no sanitizer report");
}
like($r{bytes}{log_text}, qr/warn: 2000\.png: refused: not a PNG/, 'a non-image is logged');
like($r{bytes}{log_text}, qr/warn: 2002\.png: refused: leads outside/, 'an escaping symlink is logged');
like($r{bytes}{log_text}, qr/warn: peer: management record/, 'a refused peer is logged');
unlike($r{bytes}{log_text}, qr/GET \/1000/, 'nothing logged per successful request at info');

done_testing;

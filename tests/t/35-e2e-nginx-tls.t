#!/usr/bin/perl
# End to end through nginx over TLS (conf/nginx/avatar-tls.conf with a
# certificate from conf/nginx/make-cert.sh), x-accel mode: HTTP/2, an ECDSA
# P-256 certificate, TLS 1.2 and 1.3 only, session resumption by the shared
# cache and by tickets, keep-alive, and the ab load with and without -k.
# Then the fast path over TLS (conf/nginx/avatar-fastpath-tls.conf): HTTP/2,
# and which side answers what, as tests/t/39-e2e-fastpath.t checks in plain
# HTTP.
use strict;
use warnings;
use FindBin;
use Test::More;
BEGIN { require "$FindBin::Bin/../lib/e2e.pl" }
our ($ROOT, $LIVE, $YEAR, $SHORT);

need_tools(qw(curl ab spawn-fcgi nginx openssl));
my $tmp = File::Temp::tempdir('e2e-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $av  = make_avatars($tmp);
my $st  = start_stack(server => 'nginx', mode => 'x-accel', avatars => $av, tls => 1);
my ($url, $port, $run) = @$st{qw(url port run)};
like $url, qr{^https://127\.0\.0\.1:\d+$}, 'the stack answers on https';

sub curl {
    my @args = @_;
    open my $fh, '-|', 'curl', '-sk', '--max-time', '10', @args or die "curl: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return $out;
}

# path                 protocol flag  status  file       Content-Type
my @get = (
    ['/1000',            '--http2',     200, '1000.png', 'image/png'],
    ['/1001.png?v=2',    '--http2',     200, '1001.png', 'image/jpeg'],
    ['/avatar/1002.gif', '--http2',     200, '1002.gif', 'image/gif'],
    ['/999',             '--http2',     200, '-1.png',   'image/png'],
    ['/1000',            '--http1.1',   200, '1000.png', 'image/png'],
    ['/_avatars/1000.png', '--http2',   404, undef,      undef],
);
for my $c (@get) {
    my ($path, $proto, $status, $file, $type) = @$c;
    my $body = curl($proto, '-D', "$tmp/h", '-o', "$tmp/b", '-w', '%{http_version} %{http_code}', "$url$path");
    my $head = -e "$tmp/h" ? slurp("$tmp/h") : '';
    subtest "GET $path $proto" => sub {
        my $v = $proto eq '--http2' ? '2' : '1.1';
        is $body, "$v $status", "HTTP/$v $status";
        if ($file) {
            ok slurp("$tmp/b") eq slurp("$av/$file"), "exact bytes of $file";
            like $head, qr/^content-type: \Q$type\E\r$/mi, "Content-Type $type";
            like $head, qr/^x-content-type-options: nosniff\r$/mi, 'nosniff';
            like $head, qr/^cache-control: public, max-age=\d+(, stale-while-revalidate=\d+|, immutable)?\r$/mi, 'Cache-Control';
            like $head, qr/^access-control-allow-origin: \*\r$/mi, 'Access-Control-Allow-Origin';
            like $head, qr/^cross-origin-resource-policy: cross-origin\r$/mi, 'Cross-Origin-Resource-Policy';
            like $head, qr/^etag: "[0-9a-f]+-[0-9a-f]+"\r$/mi, "the responder's ETag";
            like $head, qr/^server: nginx\r$/mi, 'Server: nginx, no version';
        }
    };
    unlink "$tmp/h", "$tmp/b";
}

# Loopback-only counters, over TLS too.
is curl('-o', '/dev/null', '-w', '%{http_code}', "$url/status"), '200', '/status from 127.0.0.1: 200';
is curl('--interface', '127.0.0.2', '-o', '/dev/null', '-w', '%{http_code}', "$url/status"), '403',
    '/status from 127.0.0.2: 403';

# The certificate and the protocol versions.
sub s_client_at {
    my ($at, $args) = @_;
    my $cmd = "openssl s_client -connect 127.0.0.1:$at -servername localhost $args </dev/null 2>&1";
    return scalar qx(timeout 20 $cmd);
}
sub s_client { s_client_at($port, @_) }
my $s = s_client('-brief');
like $s, qr/^Protocol version: TLSv1\.3$/m, 'TLS 1.3 by default';
like $s, qr/^(Peer )?[Ss]ignature type: ECDSA$/m, 'ECDSA certificate';
my $text = qx(openssl x509 -noout -text -in $run/tls/avatar.crt 2>&1);
like $text, qr/NIST CURVE: P-256/, 'the certificate is on P-256';
like s_client('-brief -tls1_2'), qr/^Ciphersuite: ECDHE-ECDSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/m,
    'TLS 1.2 with an ECDHE-ECDSA AEAD suite';
# Even with every old suite allowed on the client side, 1.1 and 1.0 fail.
for my $old (qw(tls1_1 tls1)) {
    unlike s_client("-brief -$old -cipher DEFAULT:\@SECLEVEL=0"), qr/^Protocol version: /m, "$old refused";
}
unlike s_client('-brief -tls1_2 -cipher AES128-SHA256'), qr/^Protocol version: /m,
    'TLS 1.2 without forward secrecy refused';

# Session resumption: the shared cache (no tickets) and tickets.
for my $how (['-no_ticket', 'session cache'], ['', 'session ticket']) {
    my $out = s_client("-tls1_2 -reconnect $how->[0]");
    my $reused = () = $out =~ /^Reused, /mg;
    ok $reused >= 4, "TLS 1.2 resumption by $how->[1] ($reused of 5 reconnects)";
}

# Keep-alive: two requests on one connection.
my $v = qx(curl -skv --max-time 10 -o /dev/null -o /dev/null $url/1000 $url/1001 2>&1);
like $v, qr/Re-using existing connection|Reusing existing connection|multiplex/i, 'second request reuses the connection';

# The original load, and the same with keep-alive.
for my $k ('', '-k') {
    my $out = qx(ab $k -n 4000 -c 100 -s 30 $url/1000 2>&1);
    subtest "ab $k -n 4000 -c 100 over TLS" => sub {
        like $out, qr/^Complete requests:\s+4000$/m, '4000 complete';
        like $out, qr/^Failed requests:\s+0$/m, '0 failed';
        unlike $out, qr/^Non-2xx responses:/m, '0 non-2xx';
        like $out, qr/^Keep-Alive requests:\s+[1-9]/m, 'keep-alive used' if $k;
        note $1 if $out =~ /^(Time taken for tests:.*)$/m;
    } or diag $out;
}

stop_stack($st);

# The fast path over TLS and HTTP/2: nginx answers published ids, and
# ids the store does not have, from DIR/.pub itself (the responder's
# avatar_requests_total does not move), the rest goes to the responder
# (it moves by one).
{
    mkdir "$tmp/fp" or die "$tmp/fp: $!";
    my $fav = make_avatars("$tmp/fp");
    my $fst = start_stack(server => 'nginx', mode => 'x-accel', avatars => $fav, tls => 1, fastpath => 1);
    my $furl = $fst->{url};
    my $fpub = "$fav/.pub";
    my $served = sub { (curl("$furl/metrics") =~ /^avatar_requests_total (\d+)$/m)[0] // -1 };
    my $self = -$served->() + $served->();
    # path             side         file                   Content-Type  Cache-Control
    my @fp = (
        ['/1000',          'nginx',     "$fpub/full/1000.png", 'image/png',  $LIVE],
        ['/1001.png?v=2',  'nginx',     "$fpub/full/1001.jpg", 'image/jpeg', $YEAR],
        ['/1000?s=64',     'nginx',     "$fpub/64/1000.png",   'image/png',  $LIVE],
        ['/avatar/1002.gif', 'nginx',   "$fpub/full/1002.gif", 'image/gif',  $LIVE],
        ['/999',           'nginx',     "$fpub/full/default.png", 'image/png', $SHORT],
        ['/1004',          'responder', "$fav/-1.png",         'image/png',  $SHORT],
        ['/1000?x=1',      'responder', "$fav/1000.png",       'image/png',  $LIVE],
        ['/01000',         'responder', "$fav/-1.png",         'image/png',  $SHORT],
    );
    for my $c (@fp) {
        my ($path, $side, $file, $type, $cc) = @$c;
        my $n = $served->();
        my $w = curl('--http2', '-D', "$tmp/h", '-o', "$tmp/b", '-w', '%{http_version} %{http_code}', "$furl$path");
        my $moved = $served->() - $n - $self;
        my $head = -e "$tmp/h" ? slurp("$tmp/h") : '';
        subtest "fast path over TLS: GET $path, answered by $side" => sub {
            is $w, '2 200', 'HTTP/2 200';
            is $moved, $side eq 'nginx' ? 0 : 1, $side eq 'nginx' ? 'the responder did not see it' : 'the responder answered it';
            ok -f $file && slurp("$tmp/b") eq slurp($file), 'the bytes of ' . ($file =~ s{^\Q$fav\E/}{}r);
            like $head, qr/^content-type: \Q$type\E\r$/mi, "Content-Type $type";
            like $head, qr/^cache-control: \Q$cc\E\r$/mi, "Cache-Control $cc";
            like $head, qr/^x-content-type-options: nosniff\r$/mi, 'nosniff';
            like $head, qr/^access-control-allow-origin: \*\r$/mi, 'Access-Control-Allow-Origin';
            like $head, qr/^server: nginx\r$/mi, 'Server: nginx, no version';
        };
        unlink "$tmp/h", "$tmp/b";
    }
    like s_client_at($fst->{port}, '-brief'), qr/^Protocol version: TLSv1\.3$/m, 'fast path: TLS 1.3';
    like s_client_at($fst->{port}, '-brief -tls1_2'), qr/^Ciphersuite: ECDHE-ECDSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/m,
        'fast path: the same ECDHE-ECDSA AEAD suites';
    stop_stack($fst);
}

done_testing();

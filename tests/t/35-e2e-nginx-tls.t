#!/usr/bin/perl
# End to end through nginx over TLS (conf/nginx/avatar-tls.conf with a
# certificate from conf/nginx/make-cert.sh), x-accel mode: HTTP/2, an ECDSA
# P-256 certificate, TLS 1.2 and 1.3 only, session resumption by the shared
# cache and by tickets, keep-alive, and the ab load with and without -k.
use strict;
use warnings;
use FindBin;
use Test::More;
BEGIN { require "$FindBin::Bin/../lib/e2e.pl" }
our ($ROOT);

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
sub s_client {
    my ($args, $input) = @_;
    my $cmd = "openssl s_client -connect 127.0.0.1:$port -servername localhost $args </dev/null 2>&1";
    return scalar qx(timeout 20 $cmd);
}
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
done_testing();

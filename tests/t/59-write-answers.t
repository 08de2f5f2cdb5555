#!/usr/bin/perl
# Write answers from the sanitizer build, straight over FastCGI: each case a
# line (method, id, what the query carries, body file, expected status, a
# pattern the JSON body must match). The bodies of these answers are made on
# the stack of the function that decides them, and go out only when the
# socket takes them, so a sanitizer build is where a lent buffer shows (it
# did: garbled JSON and a worker abort under load). After every case a GET
# must still be answered, and the log must hold no sanitizer report.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Temp qw(tempdir);
use Responder qw(start stop fcgi parse_response write_file);

my $top = "$FindBin::Bin/../..";
my $dir = tempdir(CLEANUP => 1);
my $av = "$dir/avatars";
mkdir $av or die;
system('cp', "$top/avatars/-1.png", "$top/avatars/1000.png", "$av/") == 0 or die;
my $key = "$dir/key";
write_file($key, ('k' x 40) . "\n");
my $png = "$top/avatars/1000.png";
write_file("$dir/text.txt", "not an image\n");

sub q_for {
    my ($method, $id, $ttl) = @_;
    my $q = `$top/avatar.fcgi sign --key-file $key $method $id $ttl`;
    chomp $q;
    return $q;
}

# method, id, query (sign: a good link for this method and id), body, status, body pattern
my @cases = (
  [ 'PUT',    1001, 'sign',                     $png,            201, qr/^\{"id":1001,"type":"image\/png","width":\d+,"height":\d+,"bytes":\d+,"url":"\/1001\?v=[0-9a-f]{16}"\}$/ ],
  [ 'PUT',    1001, 'sign',                     $png,            200, qr/^\{"id":1001,"type":"image\/png",.*"url":"\/1001\?v=[0-9a-f]{16}"\}$/ ],
  [ 'PUT',    1001, '',                         $png,            400, qr/^\{"error":"signature: [^"]+"\}\n$/ ],
  [ 'PUT',    1001, 'expires=1&sig=' . 'a' x 64, $png,           403, qr/^\{"error":"signature: [^"]+"\}\n$/ ],
  [ 'PUT',    1001, 'sign',                     "$dir/text.txt", 415, qr/^\{"error":"type"\}$/ ],
  [ 'PUT',    1002, 'sign:1001',                $png,            403, qr/^\{"error":"signature: [^"]+"\}\n$/ ],
  [ 'DELETE', 1001, 'sign',                     undef,           204, qr/^$/ ],
  [ 'DELETE', 1001, 'sign',                     undef,           404, qr/^\{"error":"no avatar 1001"\}$/ ],
);

# detect_stack_use_after_return: a body lent from a frame that has returned
# is reported even when the bytes happen to be intact.
my $r = start(dir => $av, args => ['--workers', '0', '--key-file', $key],
    env => { ASAN_OPTIONS => 'detect_leaks=1:detect_stack_use_after_return=1' });
for my $c (@cases) {
    my ($method, $id, $q, $body, $want, $pat) = @$c;
    my $name = "$method /$id" . ($q ? "?$q" : '');
    if ($q =~ /^sign(?::(\d+))?$/) {
        $q = q_for($method, $1 // $id, 600);
    }
    my @args = ("REQUEST_METHOD=$method", "DOCUMENT_URI=/$id", "QUERY_STRING=$q",
        'REMOTE_ADDR=127.0.0.1');
    push @args, 'CONTENT_LENGTH=' . (-s $body) if defined $body;
    my ($out) = fcgi($r, (defined $body ? ('-b', $body) : ()), @args);
    my ($st, $h, $b) = parse_response($out);
    is($st, $want, "$name: status");
    like($b, $pat, "$name: body is whole, well-formed JSON");
    is($h->{'cache-control'}, 'no-store', "$name: no-store");
    my ($g) = parse_response(scalar fcgi($r, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000'));
    is($g, 200, "$name: a GET after it is answered");
}
is(stop($r), 0, 'exits 0');
my $log = Responder::slurp($r->{log});
unlike($log, qr/Sanitizer|runtime error/, 'no sanitizer report');
like($log, qr/upload: PUT 1001 -> 201, \d+ bytes in, peer 127\.0\.0\.1/, 'each write is logged with its peer');
done_testing;

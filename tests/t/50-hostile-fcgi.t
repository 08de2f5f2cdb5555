#!/usr/bin/perl
# Hostile FastCGI peers sent straight to the responder's socket by
# build/fcgi-hostile (issue 5, item 4): the records that crash libfcgi 2.4.2
# (PARAMS lengths 0x40000000+0x40000000 and 0x7ffffffe+0, FCGI_GET_VALUES
# naming FCGI_MPXS_CONNS 4+ times), a PARAMS length of 0x3fffffff, truncated
# records, idle and slowloris peers, kept connections left idle, and 2,000
# connections at once. After every attack, and during the ones that hold
# connections open, a good request must be answered 200; the attack itself
# must be refused (connection closed) without any worker dying: the pool's
# pid list stays the same and the log has no restart line. An
# ABORT_REQUEST is answered (END_REQUEST), and a body over --upload-max
# gets its 413 and a closed connection. Then kill -9 of a worker: it is
# replaced and requests are still answered.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use Responder qw(start stop wait_for write_file children);

my $hostile = './build/fcgi-hostile';
-x $hostile or BAIL_OUT("$hostile not built (make build/fcgi-hostile)");

my $dir = tempdir('avatar-h-XXXXXX', TMPDIR => 1, CLEANUP => 1);
# The read path refuses images cut short (sniff_whole): each ends with its
# format's end marker (PNG IEND chunk, JPEG EOI, GIF trailer).
my $IEND = "\0\0\0\0IEND\xae\x42\x60\x82";
my $PNG = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR" . ('p' x 300) . $IEND;
write_file("$dir/1000.png", $PNG);
write_file("$dir/-1.png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR" . ('d' x 50) . $IEND);

# A short --timeout so idle and slow peers are cut within the test's waits;
# --upload-max below the 1 MiB of the big-stdin attack.
my $r = start(dir => $dir, args => [ '--workers', '2', '--timeout', '2', '--upload-max', '512K' ]);

sub workers { return join ' ', children($r->{pid}) }    # read workers only

sub log_text { Responder::slurp($r->{log}) }

wait_for(sub { scalar(() = workers() =~ /\d+/g) == 2 }, 10) or BAIL_OUT('pool did not start 2 workers');
my $pool = workers();

# attack, what its output line must match (the good requests' "ping=200"
# fields are checked for every case), the log line it must leave ('' for
# none required; a plain string is a "peer: ...; connection closed" warning).
my $REFUSED = qr/ reaction=(?:closed|reset|closed-while-sending) /;
my $ANSWERED = qr/ reaction=reply-closed /;
my @cases = (
  [ 'ping',            qr/^attack=ping ping=200 body=328$/,                       '' ],
  [ 'params-overflow', $REFUSED,                                                  'malformed PARAMS lengths' ],
  [ 'params-open',     $REFUSED,                                                  '' ],
  [ 'params-7ffffffe', $REFUSED,                                                  'malformed PARAMS lengths' ],
  [ 'params-3fffffff', $REFUSED,                                                  'malformed PARAMS lengths' ],
  [ 'params-7fffffff', $REFUSED,                                                  'malformed PARAMS lengths' ],
  [ 'params-short',    $REFUSED,                                                  'malformed PARAMS lengths' ],
  [ 'get-values-1',    $REFUSED,                                                  'management record' ],
  [ 'get-values-4',    $REFUSED,                                                  'management record' ],
  [ 'get-values-64',   $REFUSED,                                                  'management record' ],
  [ 'trunc-header',    $REFUSED,                                                  '' ],
  [ 'trunc-begin',     $REFUSED,                                                  '' ],
  [ 'trunc-params',    $REFUSED,                                                  '' ],
  [ 'trunc-padding',   $REFUSED,                                                  '' ],
  [ 'bad-version',     $REFUSED,                                                  'unsupported FastCGI version' ],
  [ 'unknown-type',    $REFUSED,                                                  'management record' ],
  [ 'params-no-begin', $REFUSED,                                                  'first record is not BEGIN_REQUEST' ],
  [ 'authorizer',      $REFUSED,                                                  'role is not RESPONDER' ],
  [ 'request-id-0',    $REFUSED,                                                  'management record' ],
  [ 'multiplex',       $REFUSED,                                                  'unexpected record in PARAMS' ],
  [ 'abort',           $ANSWERED,                                                 '' ],
  [ 'big-params',      $REFUSED,                                                  'PARAMS larger than 64 KiB' ],
  [ 'many-params',     $REFUSED,                                                  'PARAMS larger than 64 KiB' ],
  [ 'big-stdin',       $ANSWERED,                                                 qr/info: request body over --upload-max \(524288 bytes\): 413, connection closed/ ],
  [ 'empty-records',   $REFUSED,                                                  'unexpected record in PARAMS' ],
  [ 'garbage',         $REFUSED,                                                  '' ],
  [ 'idle',            qr/ held=1 ping=200 .* closed=1 /,                         '' ],
  [ 'slowloris',       qr/ held=1 ping=200 .* closed=1 /,                         '' ],
  [ 'keepalive-idle',  qr/ first=200 ping=200 .* closed=1 /,                      '' ],
  [ 'flood-idle',      qr/ held=2000 ping=200 .* closed=2000 /,                   '' ],
  [ 'flood-get',       qr/ connections=2000 \S+ answered=2000 failed=0 unanswered=0 ping=200/, '' ],
);

my $tried = 0;
for my $c (@cases) {
    my ($attack, $want, $logged) = @$c;
    my $before = length log_text();
    my $out = `$hostile --wait 6 $r->{sock} $attack 2>&1`;
    my $st = $? >> 8;
    chomp $out;
    $tried++;
    is($st, 0, "$attack: good requests answered during and after") or diag $out;
    like($out, $want, "$attack: $out");
    unlike($out, qr/ping=(?!200)/, "$attack: every good request got 200");
    if ($logged ne '') {
        my $new = substr(log_text(), $before);
        my $want_log = ref $logged ? $logged : qr/warn: peer: (?:\Q$logged\E); connection closed/;
        like($new, $want_log, "$attack: refusal logged");
    }
    is(workers(), $pool, "$attack: no worker died (pool $pool)");
}

my $log = log_text();
unlike($log, qr/restarting|killed by signal|exited with status/, 'no worker died or restarted during the attacks');
unlike($log, qr/AddressSanitizer|runtime error|LeakSanitizer/, 'no sanitizer report');
diag("fcgi-hostile: $tried attacks tried, 0 worker deaths");

# A worker that dies is replaced, and the other keeps answering meanwhile.
my ($victim) = split ' ', $pool;
my $t0 = time;
kill 'KILL', $victim;
my $ok = wait_for(sub { my $w = workers(); $w !~ /\b$victim\b/ && scalar(() = $w =~ /\d+/g) == 2 }, 10);
ok($ok, "kill -9 worker $victim: replaced (pool now " . workers() . ")");
diag(sprintf 'worker replaced after %.2f s', time - $t0);
my $out = `$hostile $r->{sock} ping 2>&1`;
like($out, qr/ping=200/, 'good request answered after the replacement');
like(log_text(), qr/worker $victim killed by signal 9; restarting/, 'the death is logged');

is(stop($r), 0, 'SIGTERM: exit status 0');
unlike($r->{log_text}, qr/AddressSanitizer|runtime error|LeakSanitizer/, 'no sanitizer report at exit');

done_testing();

#!/usr/bin/perl
# End to end through Apache 2.4: conf/apache/avatar-proxy-fcgi.conf
# (mod_proxy_fcgi, bytes mode) and conf/apache/avatar-xsendfile.conf
# (mod_xsendfile, x-sendfile mode), rendered by tests/lib/stack. First what
# only Apache needs (issue 9):
#  - x-sendfile validators are the responder's (defect 9): the ETag and
#    Last-Modified of bytes mode, never mod_xsendfile's "0"; a replaced file
#    gets a new ETag, and the old one no longer answers 304;
#  - a symlinked --dir (defect 8): XSendFilePath and --dir both name the
#    symlink, and every avatar, the default included, is served;
#  - large requests through mod_proxy_fcgi (defect 5): 44 and 56 KB of
#    headers and a 50 KB body are answered, not left to a 503 after
#    --timeout; 72 KB of headers (over the 64 KiB limit) are refused with
#    one log line;
# then every table of tests/lib/e2e.pl in both modes (avatars, default,
# HEAD, conditional, Range, 404/405, counters, hostile paths, replace by
# rename, the ab load, --missing 404).
use strict;
use warnings;
use FindBin;
use Test::More;
BEGIN { require "$FindBin::Bin/../lib/e2e.pl" }
our ($ROOT, $MTIME, $LIVE, $SHORT);

need_tools(qw(curl ab spawn-fcgi apache2 setpriv));
plan skip_all => 'mod_xsendfile is not installed (tests/lib/ensure-deps test)'
    unless -e '/usr/lib/apache2/modules/mod_xsendfile.so';

my $tmp = File::Temp::tempdir('e2e-apache-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $av  = make_avatars($tmp);

# ---- defect 9: validators through mod_xsendfile are the responder's ------------
{
    my $bytes = start_stack(server => 'apache', mode => 'bytes', avatars => $av);
    my $xs    = start_stack(server => 'apache', mode => 'x-sendfile', avatars => $av);
    for my $path (qw(/1000 /1001 /999)) {
        my $b = http($bytes->{port}, GET => $path);
        my $x = http($xs->{port}, GET => $path);
        subtest "GET $path: x-sendfile validators are those of bytes mode" => sub {
            is $x->{status}, 200, 'x-sendfile: 200';
            ok $x->{body} eq $b->{body}, 'the same bytes';
            like hdr($x, 'ETag') // '', qr/^"[^"]+"$/, 'a strong ETag';
            isnt hdr($x, 'ETag'), '"0"', 'not mod_xsendfile\'s "0"';
            is hdr($x, 'ETag'), hdr($b, 'ETag'), 'the ETag of bytes mode';
            is hdr($x, 'Last-Modified'), hdr($b, 'Last-Modified'), 'the Last-Modified of bytes mode';
        };
    }
    # Replaced by rename, same size, a later mtime: a revalidating client
    # must get the new file, not a 304 for the old one.
    my $old = http($xs->{port}, GET => '/1000');
    my $bytes1000 = slurp("$av/1000.png");
    substr($bytes1000, 40, 1) = chr(ord(substr($bytes1000, 40, 1)) ^ 0xff);
    spew("$av/.new", $bytes1000);
    utime $MTIME + 10, $MTIME + 10, "$av/.new";
    rename "$av/.new", "$av/1000.png" or die "rename: $!";
    my $new = http($xs->{port}, GET => '/1000');
    my $reval = http($xs->{port}, GET => '/1000', headers => ['If-None-Match: ' . (hdr($old, 'ETag') // '"x"')]);
    my $same = http($xs->{port}, GET => '/1000', headers => ['If-None-Match: ' . (hdr($new, 'ETag') // '"x"')]);
    subtest 'x-sendfile: a replaced avatar gets a new ETag' => sub {
        ok $new->{body} eq $bytes1000, 'the new bytes';
        isnt hdr($new, 'ETag'), hdr($old, 'ETag'), 'a new ETag';
        is $reval->{status}, 200, 'If-None-Match with the old ETag: 200';
        ok $reval->{body} eq $bytes1000, '... with the new bytes';
        is $same->{status}, 304, 'If-None-Match with the new ETag: 304';
        is hdr($new, 'Last-Modified'), http_date($MTIME + 10), 'Last-Modified is the new mtime';
    };
    copy("$ROOT/avatars/1000.png", "$av/1000.png") or die;
    utime $MTIME, $MTIME, "$av/1000.png";

    # ---- defect 5: large requests through mod_proxy_fcgi ------------------------
    # Apache writes a whole request, waiting for the socket to take each
    # part, before it reads a byte of the answer: a responder that leaves it
    # unread stalls it until --timeout, and Apache answers 503. Every size
    # here is under the responder's 64 KiB PARAMS limit.
    my $pad = sub { [map { sprintf 'X-Pad-%02d: %s', $_, 'p' x 4000 } 1 .. $_[0]] };
    # what                      method  headers       body               status
    my @big = (
        ['44 KB of headers',      'GET',  $pad->(11),   undef,             200],
        ['56 KB of headers',      'GET',  $pad->(14),   undef,             200],
        ['a 50 KB body',          'POST', [],           'b' x (50 * 1024), 405],
        ['a 50 KB body, 44 KB of headers', 'POST', $pad->(11), 'b' x (50 * 1024), 405],
    );
    for my $c (@big) {
        my ($what, $method, $headers, $body, $status) = @$c;
        my $r = http($bytes->{port}, $method => '/1001', headers => $headers, body => $body);
        my $ok = http($bytes->{port}, GET => '/1000');
        subtest "bytes: $method with $what" => sub {
            is $r->{status}, $status, "status $status";
            ok $r->{body} eq slurp("$av/1001.png"), 'the avatar' if $status == 200;
            is $ok->{status}, 200, 'a request afterwards: 200';
        };
    }
    # Over the limit: the responder closes at once with one log line (a
    # stall would leave none), so Apache answers 503 for that one request.
    my $over = http($bytes->{port}, GET => '/1001', headers => $pad->(18));    # 72 KB
    my $ok = http($bytes->{port}, GET => '/1000');
    my @said = slurp("$bytes->{run}/avatar.log") =~ /PARAMS larger than 64 KiB/g;
    subtest 'bytes: GET with 72 KB of headers, over the limit' => sub {
        is $over->{status}, 503, 'Apache: 503';
        is scalar @said, 1, 'one line in the responder log';
        is $ok->{status}, 200, 'a request afterwards: 200';
    };
    stop_stack($_) for $xs, $bytes;
}

# ---- defect 8: a symlinked --dir behind mod_xsendfile -----------------------------
{
    symlink $av, "$tmp/link" or die "symlink: $!";
    my $st = start_stack(server => 'apache', mode => 'x-sendfile', avatars => "$tmp/link");
    like slurp("$st->{run}/apache/sites/avatar-xsendfile.conf"), qr{^\s*XSendFilePath \Q$tmp\E/link$}m,
        'XSendFilePath names the symlink';
    # path          file        Content-Type  Cache-Control
    my @cases = (
        ['/1000',     '1000.png', 'image/png',  $LIVE],
        ['/1001.png', '1001.png', 'image/jpeg', $LIVE],
        ['/1002',     '1002.gif', 'image/gif',  $LIVE],
        ['/999',      '-1.png',   'image/png',  $SHORT],
    );
    is_avatar(http($st->{port}, GET => $_->[0]), "$av/$_->[1]", $_->[2], $_->[3],
        "symlinked --dir: GET $_->[0]") for @cases;
    stop_stack($st);
}

# ---- every e2e table, in both modes ------------------------------------------------
subtest 'e2e tables: mod_proxy_fcgi, bytes mode' => sub {
    e2e_mode(server => 'apache', mode => 'bytes', range => 200);
};
subtest 'e2e tables: mod_xsendfile, x-sendfile mode' => sub {
    e2e_mode(server => 'apache', mode => 'x-sendfile', range => 206);
};

done_testing();

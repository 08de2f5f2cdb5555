# End to end through a front server's fast path, shared by
# tests/t/39-e2e-fastpath.t (nginx, conf/nginx/avatar-fastpath.conf) and
# tests/t/39-e2e-fastpath-lighttpd.t (conf/lighttpd/avatar-fastpath.conf
# and .lua): the front server serves the published tree DIR/.pub itself
# and hands everything else to avatar.fcgi. Each table says which side
# must answer: the responder's avatar_requests_total must not move for a
# row the front server serves, and must move by one for a row it must
# pass on. Then the guarantees of docs/http.md on what the front server
# sends itself (types, cache policy, CORS, validators, HEAD, Range), what
# no path reaches, and files changed behind the service's back: never a
# wrong type, correct within a bounded wait (the time taken is noted, not
# checked).
#
#   fastpath_e2e(server => NAME, mode => MODE, etag => SUB, keep_conn => BOOL)
# etag: the ETag the front server sends for a published file, given its
# path, or undef where it is not computable from the file (lighttpd's is
# a hash): then it is only checked to be stable. keep_conn: the front
# server must keep its connection to the responder between requests.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use Time::HiRes qw(time sleep);
use lib (__FILE__ =~ m{^(.*)/[^/]+$} ? $1 : '.');
use Util qw(slurp spew);
BEGIN { require((__FILE__ =~ m{^(.*)/[^/]+$} ? $1 : '.') . '/e2e.pl') }

# The type a body's first bytes say.
sub sniff {
    my ($b) = @_;
    return 'image/png'  if $b =~ /^\x89PNG/;
    return 'image/jpeg' if $b =~ /^\xff\xd8\xff/;
    return 'image/gif'  if $b =~ /^GIF8/;
    return 'image/webp' if $b =~ /^RIFF....WEBP/s;
    return 'none';
}

# The names the front server's config stats in the store to tell a missing
# id from an unpublished one, in order, against fcgi/ext.h's list: a format
# added to one and not the other fails here.
sub store_names_in_step {
    my ($front) = @_;
    our $ROOT;
    my @want = slurp("$ROOT/fcgi/ext.h") =~ /exts\[\] = \{([^}]*)\}/ ? ($1 =~ /"([^"]+)"/g) : ();
    my @have = $front eq 'nginx'
        ? slurp("$ROOT/conf/nginx/avatar-fastpath-locations.conf") =~ /if \(-e \$document_root\/\$avatar_id(\.\w+)\)/g
        : slurp("$ROOT/conf/lighttpd/avatar-fastpath.lua") =~ /stat\(o \.\. "(\.\w+)"\)/g;
    is "@have", "@want", "$front checks the read path's names of fcgi/ext.h (@want)";
}

sub fastpath_e2e {
    my (%o) = @_;
    my $front = $o{server};
    our ($ROOT, $LIVE, $YEAR, $SHORT);
    need_tools(qw(curl spawn-fcgi), $front, $o{keep_conn} ? ('ss') : ());
    plan skip_all => "$front: $_ is not installed (tests/lib/ensure-deps test)" for grep { !-e } @{ $o{need} || [] };
    store_names_in_step($front);
    my $tmp = tempdir('e2e-fp-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $av  = make_avatars($tmp);
    # Originals under the read path's other names that are never published:
    # with 1004.png (text) and 1008.jpg (cut), one for each name the front
    # server must find in the store before it answers with the default.
    spew("$av/$_", "not an image\n") for qw(3001.jpeg 3002.gif 3003.webp);
    my $pub = "$av/.pub";
    my $st  = start_stack(server => $front, mode => $o{mode}, fastpath => 1, avatars => $av);
    my $p   = $st->{port};
    my $def = "$av/-1.png";

    # The responder's count of answered requests, less the /metrics request
    # that reads it (measured once: reading twice in a row moves it by $self).
    my $served = sub { (http($_[0] // $p, GET => '/metrics')->{body} =~ /^avatar_requests_total (\d+)$/m)[0] // -1 };
    my $self = -$served->() + $served->();

    ok -f "$pub/full/1001.jpg" && !-e "$pub/full/1001.png",
        'hand-filled 1001.png (a JPEG) is published as 1001.jpg, never as .png';
    ok !-e "$pub/full/$_.png", "$_ (symlink, text or cut file) is not published"
        for qw(1003 1004 1005 1006 1007);
    ok !-e "$pub/full/1008.jpg", '1008 (cut JPEG) is not published';

    # Served by $front from .pub: path, published file, type, Cache-Control.
    my @fast = (
        ['/1000',                   'full/1000.png', 'image/png',  $LIVE],
        ['/1000.png',               'full/1000.png', 'image/png',  $LIVE],
        ['/1000.jpg',               'full/1000.png', 'image/png',  $LIVE],    # as stored
        ['/1000?v=3',               'full/1000.png', 'image/png',  $YEAR],
        ['/1000?v=',                'full/1000.png', 'image/png',  $LIVE],
        ['/avatar/1000.png?v=1700000000', 'full/1000.png', 'image/png', $YEAR],
        ['/1001',                   'full/1001.jpg', 'image/jpeg', $LIVE],
        ['/1001.png',               'full/1001.jpg', 'image/jpeg', $LIVE],
        ['/1002.gif?v=x',           'full/1002.gif', 'image/gif',  $YEAR],
        ['/-1',                     'full/-1.png',   'image/png',  $LIVE],
        ['/1000?s=64',              '64/1000.png',   'image/png',  $LIVE],
        ['/1000?size=33',           '64/1000.png',   'image/png',  $LIVE],
        ['/1000?s=1',               '32/1000.png',   'image/png',  $LIVE],
        ['/1000?s=129&v=2',         '256/1000.png',  'image/png',  $YEAR],
        ['/1000?v=2&size=4096',     '512/1000.png',  'image/png',  $YEAR],
        ['/1000?s=4097',            'full/1000.png', 'image/png',  $LIVE],    # out of range: original
        ['/1000?s=064',             'full/1000.png', 'image/png',  $LIVE],    # malformed: original
        ['/1000?s=0',               'full/1000.png', 'image/png',  $LIVE],
        ['/1000?s=',                'full/1000.png', 'image/png',  $LIVE],
        ['/1001.jpeg?s=100',        '128/1001.jpg',  'image/jpeg', $LIVE],
        ['/1000.webp',              'full/x/1000.webp', 'image/webp', $LIVE],
        ['/1002.webp?s=32',         '32/x/1002.webp',  'image/webp', $LIVE],
        ['/avatar/1001.webp?v=9&s=512', '512/x/1001.webp', 'image/webp', $YEAR],
    );
    # GET path answered by $front with .pub/file, type and Cache-Control cc.
    my $from_pub = sub {
        my ($title, $path, $file, $type, $cc) = @_;
        my $r = http($p, GET => $path);
        subtest $title => sub {
            is $r->{status}, 200, 'status 200';
            ok -f "$pub/$file" && $r->{body} eq slurp("$pub/$file"), "the bytes of .pub/$file";
            is hdr($r, 'Content-Type'), $type, "Content-Type $type";
            is sniff($r->{body}), $type, 'the type of the bytes too';
            is hdr($r, 'Cache-Control'), $cc, 'Cache-Control';
            is hdr($r, 'X-Content-Type-Options'), 'nosniff', 'nosniff';
            cors_ok($r);
            no_version($r);
            if ($o{etag}) {
                is hdr($r, 'ETag'), $o{etag}->("$pub/$file"), "${front}'s ETag";
            } else {
                like hdr($r, 'ETag') // '', qr/^"[^"]+"$/, "${front}'s ETag";
                is hdr(http($p, GET => $path), 'ETag'), hdr($r, 'ETag'), 'the same again';
            }
            is hdr($r, 'Last-Modified'), http_date((stat "$pub/$file")[9]), 'Last-Modified';
        };
    };
    my $before = $served->();
    $from_pub->("$front serves GET $_->[0] from .pub/$_->[1]", @$_) for @fast;
    is $served->() - $before, $self, 'none of the ' . @fast . ' requests reached the responder';

    # A missing id (no original in the store under any name): the front
    # server sends the default avatar avatar.fcgi published as default.EXT,
    # with the default's short lifetime whatever v= says.
    ok -f "$pub/full/default.png" && slurp("$pub/full/default.png") eq slurp($def),
        'the default avatar is published as default.png too';
    my @missing = (
        ['/999',                    'full/default.png',   'image/png'],
        ['/999?v=3',                'full/default.png',   'image/png'],
        ['/avatar/5.png',           'full/default.png',   'image/png'],
        ['/999?s=64',               '64/default.png',     'image/png'],
        ['/0?size=300&v=1',         '512/default.png',    'image/png'],
        ['/999.webp',               'full/x/default.webp', 'image/webp'],
        ['/-2.webp?s=32',           '32/x/default.webp',  'image/webp'],
    );
    $before = $served->();
    $from_pub->("$front answers the missing id of GET $_->[0] with .pub/$_->[1]", @$_, $SHORT)
        for @missing;
    {
        my $g = http($p, GET => '/999');
        my $r = http($p, GET => '/999', headers => ['Range: bytes=0-9']);
        my $c = http($p, GET => '/999', headers => ['If-None-Match: ' . (hdr($g, 'ETag') // '"none"')]);
        my $h = http($p, HEAD => '/999');
        subtest "$front: Range, If-None-Match and HEAD on the default avatar" => sub {
            is $r->{status}, 206, 'Range: 206';
            is $r->{body}, substr(slurp($def), 0, 10), 'the first 10 bytes';
            is $c->{status}, 304, 'If-None-Match: 304';
            is hdr($c, 'Cache-Control'), $SHORT, 'the 304 with the short lifetime';
            is $h->{status}, 200, 'HEAD: 200';
            is $h->{body}, '', 'HEAD: no body';
            is hdr($h, 'Content-Length'), length slurp($def), 'HEAD: the length of the default';
        };
    }
    is $served->() - $before, $self, 'none of the requests for missing ids reached the responder';

    # The same URLs made to go to the responder (an extra query parameter):
    # the same bytes and type, so which side answers changes nothing visible
    # but the ETag.
    for my $c (@fast[0, 6, 10, 19, 21]) {
        my $a = http($p, GET => $c->[0]);
        my $b = http($p, GET => $c->[0] . ($c->[0] =~ /\?/ ? '&' : '?') . 'zz=1');
        ok $a->{body} eq $b->{body} && hdr($a, 'Content-Type') eq hdr($b, 'Content-Type'),
            "$c->[0]: $front and the responder send the same bytes and type";
    }

    # Passed on to the responder: method, path, status, file (or undef), type.
    my @passed = (
        ['GET',     '/01000',          200, $def,               'image/png'],
        ['GET',     '/+1000',          200, $def,               'image/png'],
        ['GET',     '/-0',             200, $def,               'image/png'],
        ['GET',     '/%31%30%30%30x',  200, $def,               'image/png'],
        ['GET',     '/%31000',         200, $def,               'image/png'],   # escaped: no id (docs/http.md)
        ['GET',     '/1%30%30%30.png?s=64', 200, $def,          'image/png'],
        ['HEAD',    '/avatar/%31000',  200, undef,              'image/png'],
        ['GET',     '/99999999999999999999', 200, $def,         'image/png'],
        # In the store but not published: the responder decides.
        ['GET',     '/1003',           200, $def,               'image/png'],    # symlink out
        ['GET',     '/1004',           200, $def,               'image/png'],    # text
        ['GET',     '/1006',           200, $def,               'image/png'],    # cut short
        ['GET',     '/1008?s=64',      200, $def,               'image/png'],    # cut JPEG
        ['GET',     '/3001',           200, $def,               'image/png'],    # .jpeg
        ['GET',     '/3002.webp',      200, undef,              'image/webp'],   # .gif
        ['HEAD',    '/avatar/3003',    200, undef,              'image/png'],    # .webp
        ['GET',     '/1000?x=1',       200, "$av/1000.png",     'image/png'],
        ['GET',     '/1000?s=64&s=32', 200, undef,              'image/png'],
        ['GET',     '/1000?v=1&v=2',   200, "$av/1000.png",     'image/png'],
        ['GET',     '/1000.avif',      200, "$av/1000.png",     'image/png'],    # AVIF not configured
        ['PUT',     '/1000',           405, undef,              undef],
        ['DELETE',  '/1000',           405, undef,              undef],
        ['POST',    '/1000',           405, undef,              undef],
        ['OPTIONS', '/1000',           204, undef,              undef],
        ['GET',     '/status',         200, undef,              undef],
    );
    for my $c (@passed) {
        my ($m, $path, $status, $file, $type) = @$c;
        my $n = $served->();
        my $r = http($p, $m => $path, ($m eq 'PUT' || $m eq 'POST' ? (body => 'x' x 100) : ()));
        my $moved = $served->() - $n - $self;
        subtest "$m $path goes to the responder" => sub {
            is $moved, 1, 'the responder answered it';
            is $r->{status}, $status, "status $status";
            ok $r->{body} eq slurp($file), 'bytes of ' . ($file =~ s{.*/}{}r) if defined $file;
            is hdr($r, 'Content-Type'), $type, "Content-Type $type" if defined $type;
            is hdr($r, 'Cache-Control'), $SHORT, 'default avatar: short lifetime' if defined $file && $file eq $def;
            is hdr($r, 'X-Content-Type-Options'), 'nosniff', 'nosniff';
            cors_ok($r) unless $path eq '/status';
        };
    }

    # Range and validators on an answer the responder makes (the default
    # avatar for an id whose original is refused): the same as on the
    # front server's own.
    {
        my $g = http($p, GET => '/1004');
        my $n = $served->();
        my $r = http($p, GET => '/1004', headers => ['Range: bytes=0-9']);
        my $c = http($p, GET => '/1004', headers => ['If-None-Match: ' . (hdr($g, 'ETag') // '"none"')]);
        subtest 'responder: Range and If-None-Match on the default avatar' => sub {
            is $served->() - $n - $self, 2, 'both reached the responder';
            is $r->{status}, 206, 'Range: 206';
            is $r->{body}, substr(slurp($def), 0, 10), 'the first 10 bytes';
            is $c->{status}, 304, 'If-None-Match: 304';
        };
    }

    # The fallback keeps its connection to the responder (nginx, bytes mode:
    # fastcgi_keep_conn): after the requests above, nginx still holds one.
    if ($o{keep_conn}) {
        http($p, GET => '/1004') for 1 .. 3;
        my @est = grep { /\Q$st->{run}\E\/avatar\.sock/ } `ss -xHn state established`;
        ok @est > 0, 'nginx keeps its connection to the responder open after fallback requests ('
            . @est . ' sockets)';
    }

    # Validators, HEAD and Range on what $front serves itself.
    {
        my $g = http($p, GET => '/1000?v=5');
        my ($etag, $lm) = (hdr($g, 'ETag') // '"none"', hdr($g, 'Last-Modified') // 'none');
        my $n = $served->();
        # headers                                   status
        my @cond = (
            [["If-None-Match: $etag"],               304],
            [["If-None-Match: \"x\", W/$etag"],      304],
            [["If-Modified-Since: $lm"],             304],
            [['If-None-Match: "other"'],             200],
            [['If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT'], 200],
            [['Range: bytes=0-9'],                   206],
            [['Range: bytes=0-9', "If-Range: $etag"], 206],
            [['Range: bytes=0-9', 'If-Range: "old"'], 200],
        );
        for my $c (@cond) {
            my $r = http($p, GET => '/1000?v=5', headers => $c->[0]);
            subtest "fast path: GET /1000?v=5 with @{$c->[0]}" => sub {
                is $r->{status}, $c->[1], "status $c->[1]";
                is hdr($r, 'Cache-Control'), $YEAR, 'Cache-Control as on the 200';
                is hdr($r, 'ETag'), $etag, 'ETag as on the 200';
                cors_ok($r);
                is $r->{body}, '', 'no body' if $c->[1] == 304;
                is $r->{body}, substr(slurp("$av/1000.png"), 0, 10), 'first 10 bytes' if $c->[1] == 206;
            };
        }
        my $h = http($p, HEAD => '/1001');
        my $g1 = http($p, GET => '/1001');
        subtest 'fast path: HEAD /1001' => sub {
            is $h->{status}, 200, 'status 200';
            is $h->{body}, '', 'no body';
            is hdr($h, $_), hdr($g1, $_), $_ for qw(Content-Type Content-Length Cache-Control ETag
                Last-Modified X-Content-Type-Options Access-Control-Allow-Origin);
        };
        is $served->() - $n, $self, 'none of them reached the responder';
    }

    # Nothing but ids is reachable: the trees, the internal location, files
    # outside the store.
    for my $path (qw(/.pub/full/1000.png /.v /.pub /avatar/.pub/full/1000.png /full/1000.png
        /64/1000.png /_avatars/.pub/full/1000.png /_avatars/1000.png /-/1000.png
        /..%2f.pub%2ffull%2f1000.png /%2e%2e/etc/passwd /1000/../.pub/full/1000.png
        /%2epub/full/1000.png /%2Epub/64/1000.png /avatar/../.pub/full/1000.png /.pub/full/x/1000.webp
        /./.pub/full/1000.png /default /default.png /avatar/default.png /full/default.png
        /.pub/full/default.png)) {
        my $r = http($p, GET => $path);
        subtest "GET $path" => sub {
            ok $r->{status} == 404 || $r->{status} == 400 || ($r->{status} == 200 && $r->{body} eq slurp($def)),
                "400, 404 or the default avatar (got $r->{status})";
            ok index($r->{body}, 'root:') < 0, 'no /etc/passwd';
        };
    }

    # A variant published away (or never made): the responder answers with
    # the best file there is, sends a job, and the job publishes it again.
    {
        unlink "$pub/64/1002.gif" or die "unlink: $!";
        my $n = $served->();
        my $r = http($p, GET => '/1002?s=64');
        is $served->() - $n - $self, 1, 'a variant missing from .pub goes to the responder';
        is hdr($r, 'Content-Type'), 'image/gif', 'and the responder answers with the right type';
        # A worker sends one job per id per 5 s: requests go on meanwhile.
        my $t0 = time;
        while (!-f "$pub/64/1002.gif" && time - $t0 < 20) {
            sleep 0.1;
            http($p, GET => '/1002?s=64');
        }
        ok -f "$pub/64/1002.gif", sprintf('and publishes it again (%.0f ms)', 1000 * (time - $t0));
    }

    # Changed behind the service's back. Every answer on the way must carry
    # the type of its bytes; the new state must come within 30 s (the watcher
    # takes milliseconds; a front server's file cache would add its validity).
    my $watch_until = sub {
        my ($path, $name, $done) = @_;
        my ($t0, $wrong, $n, $r) = (time, 0, 0);
        while (time - $t0 < 30) {
            $r = http($p, GET => $path);
            $n++;
            $wrong++ if $r->{status} == 200 && sniff($r->{body}) ne (hdr($r, 'Content-Type') // '');
            last if $done->($r);
            sleep 0.02;
        }
        ok $done->($r), sprintf('%s: served correctly after %.0f ms', $name, 1000 * (time - $t0));
        is $wrong, 0, "$name: no answer of the $n on the way had a wrong type";
    };
    {
        # cp writes in place: the published copy must not change with it.
        my $jpg = slurp("$av/1001.png");
        open my $fh, '+<', "$av/1000.png" or die $!;
        truncate $fh, 0;
        syswrite $fh, substr($jpg, 0, 100);
        my $r = http($p, GET => '/1000');
        is sniff($r->{body}), hdr($r, 'Content-Type'), '1000.png half-rewritten in place: still a true type';
        syswrite $fh, substr($jpg, 100);
        close $fh;
        $watch_until->('/1000', '1000.png rewritten in place as a JPEG',
            sub { $_[0]{body} eq $jpg && hdr($_[0], 'Content-Type') eq 'image/jpeg' });
        # The publisher writes every new name before it removes an old one
        # (publish.h), so the JPEG can be served while 1000.png still waits
        # for its turn: wait for it, bounded.
        my $gone0 = time;
        sleep 0.02 while -e "$pub/full/1000.png" && time - $gone0 < 10;
        ok !-e "$pub/full/1000.png",
            sprintf('.pub/full/1000.png is gone (%.0f ms after the JPEG was served)', 1000 * (time - $gone0));

        spew("$av/.tmpx", "GIF89a but not really an image\n");
        rename "$av/.tmpx", "$av/1002.gif" or die $!;
        $watch_until->('/1002', '1002.gif replaced by text', sub { $_[0]{body} eq slurp($def) });

        unlink "$av/1001.png" or die $!;
        $watch_until->('/1001.png?s=64', '1001.png deleted', sub { $_[0]{body} eq slurp("$pub/64/-1.png") });

        copy("$ROOT/avatars/1002.gif", "$av/.tmpy") or die $!;
        rename "$av/.tmpy", "$av/2000.gif" or die $!;
        $watch_until->('/2000?s=32', 'new 2000.gif added by hand',
            sub { hdr($_[0], 'Content-Type') eq 'image/gif' && -f "$pub/32/2000.gif" && $_[0]{body} eq slurp("$pub/32/2000.gif") });
        # A front server may remember a miss for a moment.
        my ($t0, $moved) = (time, 1);
        while ($moved && time - $t0 < 10) {
            my $n = $served->();
            http($p, GET => '/2000?s=32');
            $moved = $served->() - $n - $self;
            sleep 0.2 if $moved;
        }
        is $moved, 0, sprintf("and then served by $front (after %.0f ms)", 1000 * (time - $t0));
    }

    stop_stack($st);

    # The default's names follow the options of the last publish: a restart
    # with --missing 404 takes them out, and the front server asks the
    # responder, which answers 404; one with another --default-id
    # publishes that avatar as the default.
    {
        my $s4 = start_stack(server => $front, mode => $o{mode}, fastpath => 1, avatars => $av,
            args => ['--missing', '404']);
        my @left = glob("$pub/*/default.* $pub/*/x/default.*");
        my $n = $served->($s4->{port});
        my @r = map { http($s4->{port}, GET => $_) } ('/999', '/999?s=64', '/999.webp');
        my $moved = $served->($s4->{port}) - $n - $self;
        subtest "--missing 404: $front asks the responder for a missing id" => sub {
            is "@left", '', 'no default.EXT is left in .pub';
            is $moved, 3, 'the responder answered all three';
            is $_->{status}, 404, 'status 404' for @r;
            is hdr($r[0], 'Cache-Control'), $SHORT, 'the short lifetime';
        };
        stop_stack($s4);
    }
    {
        my $s5 = start_stack(server => $front, mode => $o{mode}, fastpath => 1, avatars => $av,
            args => ['--default-id', '2000']);
        my $n = $served->($s5->{port});
        my $r = http($s5->{port}, GET => '/999');
        my $moved = $served->($s5->{port}) - $n - $self;
        subtest "--default-id 2000: $front sends 2000.gif for a missing id" => sub {
            ok -f "$pub/full/default.gif" && !-e "$pub/full/default.png", '.pub/full/default.gif, no default.png';
            is $moved, 0, 'the responder was not asked';
            is $r->{status}, 200, 'status 200';
            is hdr($r, 'Content-Type'), 'image/gif', 'Content-Type image/gif';
            ok $r->{body} eq slurp("$av/2000.gif"), 'the bytes of 2000.gif';
            is hdr($r, 'Cache-Control'), $SHORT, 'the short lifetime';
        };
        stop_stack($s5);
    }
    {
        # A default id with no file: nothing to publish, and what the last
        # run published is taken out.
        my $s6 = start_stack(server => $front, mode => $o{mode}, fastpath => 1, avatars => $av,
            args => ['--default-id', '4000']);
        my @left = glob("$pub/*/default.* $pub/*/x/default.*");
        my $n = $served->($s6->{port});
        my $r = http($s6->{port}, GET => '/999');
        my $moved = $served->($s6->{port}) - $n - $self;
        subtest "--default-id 4000 (no such file): $front asks the responder" => sub {
            is "@left", '', 'no default.EXT is left in .pub';
            is $moved, 1, 'the responder answered';
            is $r->{status}, 404, 'status 404';
        };
        stop_stack($s6);
    }
}

1;

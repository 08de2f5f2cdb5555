# End-to-end checks through a real front server, shared by tests/t/30..34.
# e2e_mode(%opt) starts the stack (tests/lib/stack) for one server and mode
# on a free loopback port with a private copy of the avatars, runs every
# table below against it over raw HTTP/1.1, and stops it. Nothing here
# knows how the responder works inside: only what a browser would see.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use IO::Select;
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use POSIX qw(strftime);
use Math::BigInt;
use lib (__FILE__ =~ m{^(.*)/[^/]+$} ? $1 : '.');
use Util qw(ROOT free_port slurp spew);

our $ROOT = ROOT;
my @RUNS;    # run directories to stop at exit
our $MTIME = 1735689600;    # 2025-01-01: the copies' mtime, safely in the past
# The cache policy with the default options (fcgi/resp.c): an avatar at an
# unversioned URL, at a versioned one (?v=), and the default avatar or 404.
our $LIVE  = 'public, max-age=300, stale-while-revalidate=86400';
our $YEAR  = 'public, max-age=31536000, immutable';
our $SHORT = 'public, max-age=60';
# The sanitizer build, as in the other end-to-end tests (AVATAR_BIN overrides).
our $BIN = $ENV{AVATAR_BIN} // "$ROOT/build/avatar.fcgi.asan";
$ENV{ASAN_OPTIONS} //= 'detect_leaks=1:abort_on_error=0';

END {
    my $rc = $?;
    system("$ROOT/tests/lib/stack", 'stop', '--run', $_) for @RUNS;
    $? = $rc;
}
$SIG{INT} = $SIG{TERM} = sub { exit 1 };

sub need_tools {
    for my $t (@_) {
        next if grep { -x "$_/$t" } split /:/, $ENV{PATH};
        plan skip_all => "$t is not installed (tests/lib/ensure-deps test)";
    }
    plan skip_all => "$BIN is not built (make test builds it)" unless -x $BIN;
}

# A private copy of avatars/, plus the hostile entries the tables expect: a
# symlink out of the directory, a text file under an image name, and
# images cut short.
sub make_avatars {
    my ($tmp) = @_;
    my $dir = "$tmp/avatars";
    mkdir $dir or die "$dir: $!";
    for my $f (qw(-1.png 1000.png 1001.png 1002.gif)) {
        copy("$ROOT/avatars/$f", "$dir/$f") or die "$f: $!";
        utime $MTIME, $MTIME, "$dir/$f";
    }
    symlink '/etc/passwd', "$dir/1003.png" or die "1003.png: $!";
    spew("$dir/1004.png", "root:x:0:0:not an image\n");
    spew("$tmp/secret.png", slurp("$dir/1000.png"));
    symlink "$tmp/secret.png", "$dir/1005.png" or die "1005.png: $!";
    # Images cut short (an interrupted copy): never served as avatars.
    my ($png, $jpg) = (slurp("$dir/1000.png"), slurp("$dir/1001.png"));
    spew("$dir/1006.png", substr($png, 0, 20));
    spew("$dir/1007.png", substr($png, 0, -1));
    spew("$dir/1008.jpg", substr($jpg, 0, -2));
    return $dir;
}

# Starts a stack; retries on another port if the chosen one was taken.
sub start_stack {
    my (%o) = @_;
    my $run = tempdir('e2e-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    for my $try (1 .. 3) {
        my $port = free_port();
        my @cmd = ("$ROOT/tests/lib/stack", 'start', '--server', $o{server}, '--mode', $o{mode},
            '--port', $port, '--run', $run, '--avatars', $o{avatars}, '--workers', 2, '--bin', $BIN,
            ($o{tls} ? ('--tls') : ()), ($o{fastpath} ? ('--fastpath') : ()), '--', @{ $o{args} || [] });
        open my $out, '-|', @cmd or die "stack: $!";
        my $url = <$out>;
        close $out;
        if ($? == 0 && defined $url) {
            chomp $url;
            push @RUNS, $run;
            return { url => $url, port => $port, run => $run };
        }
        diag "stack start failed (try $try, port $port)";
    }
    BAIL_OUT("cannot start the $o{server} $o{mode} stack");
}

# Stops a stack; its responder log must hold no sanitizer report.
sub stop_stack {
    my ($st) = @_;
    system("$ROOT/tests/lib/stack", 'stop', '--run', $st->{run});
    @RUNS = grep { $_ ne $st->{run} } @RUNS;
    my $log = -e "$st->{run}/avatar.log" ? slurp("$st->{run}/avatar.log") : '';
    unlike $log, qr/AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:/,
        "no sanitizer report from the responder ($st->{run}/avatar.log)";
}

# One raw HTTP/1.1 request on a fresh connection. Returns a hash with
# status, headers (lower-cased names, list of values), raw header text and
# body. Reads until the server closes the connection, for at most 20 s.
sub http {
    my ($port, $method, $path, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        ($o{from} ? (LocalAddr => $o{from}) : ()), Timeout => 5)
        or return { status => 0, error => "connect: $!", headers => {}, head => '', body => '' };
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $req .= "$_\r\n" for @{ $o{headers} || [] };
    if (defined $o{body}) {
        $req .= "Content-Type: application/x-www-form-urlencoded\r\n";
        $req .= 'Content-Length: ' . length($o{body}) . "\r\n";
    }
    $req .= "\r\n" . ($o{body} // '');
    $s->syswrite($req);
    my ($buf, $sel, $deadline) = ('', IO::Select->new($s), time + 20);
    while (time < $deadline) {
        next unless $sel->can_read(1);
        my $n = $s->sysread($buf, 65536, length $buf);
        last unless $n;
    }
    close $s;
    my $r = { status => 0, headers => {}, head => '', body => '' };
    my $end = index($buf, "\r\n\r\n");
    return $r if $end < 0;
    $r->{head} = substr($buf, 0, $end + 2);
    $r->{body} = substr($buf, $end + 4);
    my @lines = split /\r\n/, $r->{head};
    my $first = shift @lines;
    $r->{status} = $1 if $first =~ m{^HTTP/1\.[01] (\d{3})};
    for (@lines) {
        push @{ $r->{headers}{ lc $1 } }, $2 if /^([^:]+):\s*(.*?)\s*$/;
    }
    return $r;
}

sub hdr {
    my ($r, $name) = @_;
    my $v = $r->{headers}{ lc $name };
    return $v ? join(', ', @$v) : undef;
}

sub http_date { strftime('%a, %d %b %Y %H:%M:%S GMT', gmtime $_[0]) }

# The cross-origin headers every avatar answer carries (default --cors-origin).
sub cors_ok {
    my ($r) = @_;
    is hdr($r, 'Access-Control-Allow-Origin'), '*', 'Access-Control-Allow-Origin: *';
    is hdr($r, 'Cross-Origin-Resource-Policy'), 'cross-origin', 'Cross-Origin-Resource-Policy: cross-origin';
    is hdr($r, 'Timing-Allow-Origin'), '*', 'Timing-Allow-Origin: *';
}

# No server version anywhere: nginx says "nginx" at most, Apache "Apache"
# (ServerTokens Prod), lighttpd nothing.
sub no_version {
    my ($r) = @_;
    my $server = hdr($r, 'Server');
    ok !defined $server || $server =~ /^(nginx|Apache)$/, 'Server header without a version (' . ($server // 'none') . ')';
}

# The ETag of a file as the responder makes it, in every mode: size and
# mtime in nanoseconds, in hex, nothing else (no inode, so copies agree).
sub etag_of {
    my ($file) = @_;
    my ($size, $mtime) = split ' ', qx(stat -L -c '%s %.9Y' '$file');
    my ($sec, $ns) = split /\./, $mtime;
    my $total = Math::BigInt->new($sec)->bmul(1_000_000_000)->badd($ns);
    return sprintf '"%x-%s"', $size, substr($total->as_hex, 2);
}

# Everything a 200 avatar answer must carry.
sub is_avatar {
    my ($r, $file, $type, $cc, $name) = @_;
    my $want = slurp($file);
    subtest $name => sub {
        is $r->{status}, 200, 'status 200';
        ok $r->{body} eq $want, 'exact bytes of ' . ($file =~ s{.*/}{}r)
            or diag 'got ' . length($r->{body}) . ' bytes, want ' . length($want);
        is hdr($r, 'Content-Type'), $type, 'Content-Type';
        is hdr($r, 'Content-Length'), length $want, 'Content-Length';
        is hdr($r, 'Cache-Control'), $cc, 'Cache-Control';
        is hdr($r, 'X-Content-Type-Options'), 'nosniff', 'nosniff';
        cors_ok($r);
        no_version($r);
        is hdr($r, 'ETag'), etag_of($file), 'ETag: size and mtime (ns), whoever sends the file';
        is hdr($r, 'Last-Modified'), http_date((stat $file)[9]), 'Last-Modified is the file mtime';
        ok !defined hdr($r, 'Set-Cookie'), 'no Set-Cookie';
        ok !defined hdr($r, 'X-Accel-Redirect') && !defined hdr($r, 'X-Sendfile'),
            'no internal header leaks';
    };
}

# Runs every table against one server and mode. %o: server, mode, range
# (expected status of a Range request).
sub e2e_mode {
    my (%o) = @_;
    need_tools(qw(curl ab spawn-fcgi), $o{server} =~ /^lighttpd/ ? 'lighttpd' : 'nginx');
    my $tmp = tempdir('e2e-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $av  = make_avatars($tmp);
    my $st  = start_stack(%o, avatars => $av);
    my $p   = $st->{port};
    my $def = "$av/-1.png";
    note "$o{server} $o{mode} on $st->{url}";

    # path                      file        Content-Type  Cache-Control
    my @found = (
        ['/1000',                '1000.png', 'image/png',  $LIVE],
        ['/1000.png',            '1000.png', 'image/png',  $LIVE],
        ['/1000.jpg',            '1000.png', 'image/png',  $LIVE],
        ['/1000?v=3',            '1000.png', 'image/png',  $YEAR],
        ['/1000.png?v=1700000000', '1000.png', 'image/png', $YEAR],
        ['/1000?s=abc&v=2',      '1000.png', 'image/png',  $YEAR],    # a malformed size is ignored
        ['/1000?s=0',            '1000.png', 'image/png',  $LIVE],
        ['/1000?v=',             '1000.png', 'image/png',  $LIVE],
        ['/1000?V=3',            '1000.png', 'image/png',  $LIVE],
        ['/avatar/1000',         '1000.png', 'image/png',  $LIVE],
        ['/avatar/1000.jpg?v=2', '1000.png', 'image/png',  $YEAR],    # .webp asks for WebP now (75-variants)
        ['/1001',                '1001.png', 'image/jpeg', $LIVE],
        ['/1001.png',            '1001.png', 'image/jpeg', $LIVE],
        ['/1002',                '1002.gif', 'image/gif',  $LIVE],
        ['/1002.gif?v=x',        '1002.gif', 'image/gif',  $YEAR],
    );
    is_avatar(http($p, GET => $_->[0]), "$av/$_->[1]", $_->[2], $_->[3], "GET $_->[0]") for @found;

    # Missing or malformed ids: the default avatar, short lifetime, even at
    # a versioned URL (the user may upload one any minute).
    my @missing = qw(
        /999 /999.png /avatar/999 /0 /abc /01 /+1 /-0 /1e3 /0x10 /1000.txt /1000.png.png
        /99999999999999999999 /9223372036854775808 /-9223372036854775809 /%31%30%30%30x
        /%31000 /avatar/%31000 /1%30%30%30.png /%31000?v=2
        /1003 /1003.png /1004 /1005 /.png /1000. /999?v=3 /abc?v=1 /1006 /1007 /1008
    );
    is_avatar(http($p, GET => $_), $def, 'image/png', $SHORT, "GET $_ (default avatar)") for @missing;

    # HEAD: the same headers, no body.
    for my $path (qw(/1000 /1001.png /999)) {
        my $g = http($p, GET => $path);
        my $h = http($p, HEAD => $path);
        subtest "HEAD $path" => sub {
            is $h->{status}, 200, 'status 200';
            is $h->{body}, '', 'no body';
            is hdr($h, $_), hdr($g, $_), $_ for qw(Content-Type Content-Length Cache-Control ETag
                Last-Modified X-Content-Type-Options Access-Control-Allow-Origin
                Cross-Origin-Resource-Policy Timing-Allow-Origin);
        };
    }

    # Conditional requests.
    my $g = http($p, GET => '/1000');
    my ($etag, $lm) = (hdr($g, 'ETag') // '"none"', hdr($g, 'Last-Modified') // 'none');
    # A list of 30 tags that do not match: about 600 bytes, more than the
    # responder keeps of If-None-Match. Present but unreadable is still
    # present: no 304, and If-Modified-Since is ignored (RFC 9110 13.1.3).
    my $long_inm = join ', ', map { sprintf '"%016x-%02d"', $_, $_ } 1 .. 30;
    # headers                                                      status
    my @cond = (
        [["If-None-Match: $etag"],                                   304],
        [["If-None-Match: \"other\", $etag"],                        304],
        [["If-None-Match: W/$etag"],                                 304],
        [['If-None-Match: *'],                                       304],
        [["If-Modified-Since: $lm"],                                 304],
        [['If-Modified-Since: ' . http_date($MTIME + 86400)],        304],
        [['If-None-Match: "other"'],                                 200],
        [['If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT'],       200],
        [['If-Modified-Since: garbage'],                             200],
        [['If-None-Match: "other"', "If-Modified-Since: $lm"],       200],
        [["If-None-Match: $long_inm", "If-Modified-Since: $lm"],     200],
        [["If-None-Match: $etag", 'If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT'], 304],
    );
    for my $c (@cond) {
        my $r = http($p, GET => '/1000', headers => $c->[0]);
        my $show = join '; ', map { length > 70 ? substr($_, 0, 40) . '...(' . length . ')' : $_ } @{ $c->[0] };
        subtest "GET /1000 with $show" => sub {
            is $r->{status}, $c->[1], "status $c->[1]";
            if ($c->[1] == 304) {
                is $r->{body}, '', 'no body';
                # A 304 carries what the 200 would (RFC 9110 15.4.5).
                is hdr($r, $_), hdr($g, $_), "$_ as on the 200" for qw(ETag Cache-Control);
                cors_ok($r);
            }
            is $r->{body}, slurp("$av/1000.png"), 'full body' if $c->[1] == 200;
        };
    }
    {
        my $r = http($p, GET => '/1000?v=7', headers => ["If-None-Match: $etag"]);
        is_deeply [$r->{status}, hdr($r, 'Cache-Control')], [304, $YEAR], '304 at a versioned URL: immutable';
    }

    # Range: the front server slices the file where it supports ranges;
    # If-Range with the responder's own ETag keeps the range.
    for my $h (['Range: bytes=0-9'], ['Range: bytes=0-9', "If-Range: $etag"]) {
        my $r = http($p, GET => '/1000', headers => $h);
        my $want = slurp("$av/1000.png");
        subtest "GET /1000 with @$h" => sub {
            is $r->{status}, $o{range}, "status $o{range}";
            if ($o{range} == 206) {
                is $r->{body}, substr($want, 0, 10), 'first 10 bytes';
                is hdr($r, 'Content-Range'), 'bytes 0-9/' . length($want), 'Content-Range';
            } else {
                is $r->{body}, $want, 'whole file';
            }
        };
    }

    # Methods other than GET, HEAD and OPTIONS: 405 with the methods that
    # exist (no write path in these stacks, so no PUT or DELETE).
    # method   body
    my @methods = (
        ['POST',   'a=b'],
        ['PUT',    'x' x 100],
        ['DELETE', undef],
        ['PATCH',  undef],
    );
    for my $m (@methods) {
        my $r = http($p, $m->[0] => '/1000', body => $m->[1]);
        subtest "$m->[0] /1000" => sub {
            is $r->{status}, 405, 'status 405';
            is hdr($r, 'Allow'), 'GET, HEAD, OPTIONS', 'Allow: GET, HEAD, OPTIONS';
            is hdr($r, 'Cache-Control'), 'no-store', 'not stored';
            cors_ok($r);
        };
    }

    # OPTIONS, and CORS preflights: 204, the methods that exist, no body.
    # headers                                                   Allow-Methods  Max-Age
    my @options = (
        [[],                                                        undef,        undef],
        [['Origin: https://app.example', 'Access-Control-Request-Method: GET'],  'GET, HEAD', 7200],
        [['Origin: https://app.example', 'Access-Control-Request-Method: PUT'],  'GET, HEAD', 7200],
        [['Origin: https://app.example', 'Access-Control-Request-Method: PATCH'], 'GET, HEAD', 7200],
        [['Access-Control-Request-Method: GET'],                    undef,        undef],
    );
    for my $c (@options) {
        my $r = http($p, OPTIONS => '/1000', headers => $c->[0]);
        subtest "OPTIONS /1000 with @{$c->[0]}" => sub {
            is $r->{status}, 204, 'status 204';
            is $r->{body}, '', 'no body';
            is hdr($r, 'Allow'), 'GET, HEAD, OPTIONS', 'Allow';
            is hdr($r, 'Access-Control-Allow-Methods'), $c->[1], 'Access-Control-Allow-Methods';
            is hdr($r, 'Access-Control-Max-Age'), $c->[2], 'Access-Control-Max-Age';
            is hdr($r, 'Cache-Control'), 'no-store', 'not stored';
            cors_ok($r);
            no_version($r);
        };
    }

    # Paths that are not avatars: 404 from either front server.
    for my $path (qw(/a/b/c / /avatar/ /1000/x /x/y/1000)) {
        my $r = http($p, GET => $path);
        subtest "GET $path: 404" => sub {
            is $r->{status}, 404, 'status 404';
            no_version($r);
            unlike $r->{body}, qr{nginx/\d|lighttpd/\d}, 'no version on the error page';
        };
    }

    # The internal location of x-accel is not reachable from outside, and
    # the same paths are 404 everywhere.
    for my $path (qw(/_avatars/1000.png /_avatars/-1.png /_avatars/)) {
        my $r = http($p, GET => $path);
        is $r->{status}, 404, "GET $path: 404";
    }

    # Counters: loopback only. 127.0.0.2 is a loopback address too, but
    # not one of the two the configs allow, so it stands for a stranger.
    # path               from         status  body
    my @reserved = (
        ['/status',         '127.0.0.1', 200, qr/^\{"version":/],
        ['/metrics',        '127.0.0.1', 200, qr/^# (HELP|TYPE) /m],
        ['/avatar/status',  '127.0.0.1', 200, qr/^\{"version":/],
        ['/status',         '127.0.0.2', 403, undef],
        ['/metrics',        '127.0.0.2', 403, undef],
        ['/avatar/status',  '127.0.0.2', 403, undef],
        ['/avatar/metrics', '127.0.0.2', 403, undef],
        ['/%73tatus',       '127.0.0.2', 403, undef],
    );
    for my $c (@reserved) {
        my $r = http($p, GET => $c->[0], from => $c->[1]);
        subtest "GET $c->[0] from $c->[1]" => sub {
            is $r->{status}, $c->[2], "status $c->[2]";
            like $r->{body}, $c->[3], 'counters' if $c->[3];
        };
    }

    # Hostile paths: never a file from outside the avatars directory, never an
    # injected header, never a 5xx; and the stack still serves afterwards.
    my $passwd = -r '/etc/passwd' ? slurp('/etc/passwd') : "\0";
    my @nasty = (
        '/../etc/passwd',
        '/../../../../etc/passwd',
        '/%2e%2e/%2e%2e/etc/passwd',
        '/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd',
        '/..%2f..%2f..%2fetc%2fpasswd',
        '/avatar/..%2f..%2fetc%2fpasswd',
        '/avatar/../../etc/passwd',
        '//etc/passwd',
        '/%2fetc%2fpasswd',
        '/etc/passwd',
        '/_avatars/../../etc/passwd',
        '/_avatars/%2e%2e/%2e%2e/etc/passwd',
        '/1%00',
        '/1%00.png',
        '/1000%00.png',
        '/1%0d%0aSet-Cookie:x',
        '/1%0aSet-Cookie:%20x=1',
        '/1%0d%0aX-Accel-Redirect:%20/etc/passwd',
        '/1?%0d%0aSet-Cookie:x',
        '/1000?v=%0d%0aSet-Cookie:x',
        '/1003.png',
        '/1005.png',
        '/.%2e/.%2e/etc/passwd',
        '/\\..\\..\\etc\\passwd',
        '/%c0%ae%c0%ae/etc/passwd',
        '/' . ('a' x 10240),
        '/' . ('1' x 10240),
        '/avatar/' . ('%2e' x 3000),
    );
    for my $path (@nasty) {
        my $r = http($p, GET => $path);
        my $ok = http($p, GET => '/1001');
        my $show = length($path) > 40 ? substr($path, 0, 30) . '...(' . length($path) . ')' : $path;
        subtest "hostile GET $show" => sub {
            ok $r->{status} >= 200 && $r->{status} < 500, "answered without a 5xx (got $r->{status})";
            ok index($r->{body}, 'root:') < 0 && ($r->{body} ne $passwd), 'no /etc/passwd bytes';
            ok !defined hdr($r, 'Set-Cookie'), 'no injected Set-Cookie';
            ok $r->{head} !~ /^(X-Accel-Redirect|X-Sendfile):/mi, 'no internal header leaks';
            is $ok->{status}, 200, 'a good request afterwards: 200';
            is $ok->{body}, slurp("$av/1001.png"), 'a good request afterwards: right bytes';
        };
    }

    # An avatar replaced on disk (write aside, rename over) is served at once,
    # even at the same size, even with another type.
    {
        my $old = http($p, GET => '/1000');
        my $mtime = (stat "$av/1000.png")[9];
        my $bytes = slurp("$av/1000.png");
        substr($bytes, 40, 1) = chr(ord(substr($bytes, 40, 1)) ^ 0xff);
        spew("$av/.new", $bytes);
        utime $mtime + 2, $mtime + 2, "$av/.new";
        rename "$av/.new", "$av/1000.png" or die "rename: $!";
        my $new = http($p, GET => '/1000');
        subtest 'replaced by rename, same size' => sub {
            is $new->{status}, 200, 'status 200';
            ok $new->{body} eq $bytes, 'new bytes at once';
            isnt hdr($new, 'ETag'), hdr($old, 'ETag'), 'new ETag';
            my $c = http($p, GET => '/1000', headers => ['If-None-Match: ' . (hdr($old, 'ETag') // '"x"')]);
            is $c->{status}, 200, 'old ETag no longer answers 304';
        };
        # Same size and same mtime: only the inode tells the files apart.
        substr($bytes, 41, 1) = chr(ord(substr($bytes, 41, 1)) ^ 0xff);
        spew("$av/.new", $bytes);
        utime $mtime + 2, $mtime + 2, "$av/.new";
        rename "$av/.new", "$av/1000.png" or die "rename: $!";
        ok http($p, GET => '/1000')->{body} eq $bytes, 'replaced by rename, same size and mtime: new bytes at once';
        copy("$ROOT/avatars/1001.png", "$av/.new") or die "copy: $!";
        rename "$av/.new", "$av/1002.gif" or die "rename: $!";
        is_avatar(http($p, GET => '/1002'), "$av/1002.gif", 'image/jpeg', $LIVE,
            'replaced by rename with a JPEG: served as JPEG at once');
        unlink "$av/1002.gif";
        is_avatar(http($p, GET => '/1002'), $def, 'image/png', $SHORT, 'removed: default at once');
    }

    # The original load: ab -n 4000 -c 100.
    for my $path (qw(/1000 /999)) {
        my $out = qx(ab -n 4000 -c 100 -s 30 $st->{url}$path 2>&1);
        subtest "ab -n 4000 -c 100 $path" => sub {
            like $out, qr/^Complete requests:\s+4000$/m, '4000 complete';
            like $out, qr/^Failed requests:\s+0$/m, '0 failed';
            unlike $out, qr/^Non-2xx responses:/m, '0 non-2xx';
            note $1 if $out =~ /^(Requests per second:.*)$/m;
        } or diag $out;
    }
    # The stack still serves after the load, over whatever connections the
    # front server kept to the pool.
    my @after = map { http($p, GET => $_ % 2 ? '/1001' : '/999')->{status} } 1 .. 20;
    is "@after", join(' ', (200) x 20), '20 requests after the load: all 200';

    # A second host of the same kind, with a copy of the avatars made by
    # cp -a (same bytes and mtimes, other inodes), --missing 404 and a
    # list of allowed origins.
    my $av2 = "$tmp/avatars2";
    system('cp', '-a', $av, $av2) == 0 or die "cp -a: $?";
    my $st404 = start_stack(%o, avatars => $av2,
        args => ['--missing', '404', '--cors-origin', 'https://a.example,https://b.example']);
    my $p2 = $st404->{port};

    # ETags: the same on both hosts, and one host's tag gives 304 on the
    # other, for every avatar.
    for my $path (qw(/1000 /1001 /-1)) {
        my $a = http($p, GET => $path);
        my $b = http($p2, GET => $path);
        my $tag = hdr($a, 'ETag') // '"none"';
        my $c = http($p2, GET => $path, headers => ["If-None-Match: $tag"]);
        my $d = http($p, GET => $path, headers => ['If-None-Match: ' . (hdr($b, 'ETag') // '"none"')]);
        subtest "GET $path on two hosts holding cp -a copies" => sub {
            is $b->{status}, 200, 'status 200 on the second host';
            ok defined hdr($a, 'ETag') && hdr($a, 'ETag') eq (hdr($b, 'ETag') // ''),
                'same ETag ' . $tag . ' vs ' . (hdr($b, 'ETag') // 'none');
            is hdr($b, 'Last-Modified'), hdr($a, 'Last-Modified'), 'same Last-Modified';
            is $c->{status}, 304, "the first host's ETag -> 304 on the second";
            is $d->{status}, 304, "the second host's ETag -> 304 on the first";
        };
    }

    # --missing 404, and CORS with a list of origins: the request's Origin
    # is echoed when listed, and Vary: Origin is always there.
    # path          Origin                status  Access-Control-Allow-Origin
    my @m404 = (
        ['/999',        undef,                404, undef],
        ['/abc',        'https://a.example',  404, 'https://a.example'],
        ['/1003.png',   'https://evil.example', 404, undef],
        ['/avatar/999?v=2', 'https://b.example', 404, 'https://b.example'],
        ['/1001',       'https://a.example',  200, 'https://a.example'],
        ['/1001?v=5',   'https://b.example',  200, 'https://b.example'],
        ['/1001',       'https://a.example.evil', 200, undef],
        ['/1001',       'null',               200, undef],
        ['/1001',       undef,                200, undef],
    );
    for my $c (@m404) {
        my ($path, $origin, $status, $acao) = @$c;
        my $r = http($p2, GET => $path, headers => [defined $origin ? "Origin: $origin" : ()]);
        subtest "second host: GET $path, Origin " . ($origin // 'none') => sub {
            is $r->{status}, $status, "status $status";
            if ($status == 404) {
                is hdr($r, 'Cache-Control'), $SHORT, 'short Cache-Control';
                is hdr($r, 'X-Content-Type-Options'), 'nosniff', 'nosniff';
            } else {
                is $r->{body}, slurp("$av2/1001.png"), 'the avatar';
            }
            is hdr($r, 'Access-Control-Allow-Origin'), $acao, 'Access-Control-Allow-Origin';
            is hdr($r, 'Timing-Allow-Origin'), $acao, 'Timing-Allow-Origin';
            is hdr($r, 'Vary'), 'Origin', 'Vary: Origin';
            is hdr($r, 'Cross-Origin-Resource-Policy'), 'cross-origin', 'Cross-Origin-Resource-Policy';
        };
    }
    {
        my $tag = hdr(http($p2, GET => '/1001'), 'ETag') // '"none"';
        my $r = http($p2, GET => '/1001', headers => ['Origin: https://b.example', "If-None-Match: $tag"]);
        my $o = http($p2, OPTIONS => '/1001', headers => ['Origin: https://b.example',
            'Access-Control-Request-Method: GET']);
        subtest 'second host: 304 and preflight echo the listed origin' => sub {
            is $r->{status}, 304, 'status 304';
            is hdr($r, 'Access-Control-Allow-Origin'), 'https://b.example', '304: Access-Control-Allow-Origin';
            is hdr($r, 'Vary'), 'Origin', '304: Vary';
            is $o->{status}, 204, 'preflight 204';
            is hdr($o, 'Access-Control-Allow-Origin'), 'https://b.example', 'preflight: Access-Control-Allow-Origin';
            is hdr($o, 'Access-Control-Allow-Methods'), 'GET, HEAD', 'preflight: Access-Control-Allow-Methods';
        };
    }
    stop_stack($st404);
    stop_stack($st);
    done_testing();
}

1;

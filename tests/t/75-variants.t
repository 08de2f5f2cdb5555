#!/usr/bin/perl
# 75-variants: sizes and formats (issue 12) through the real front servers,
# nginx x-accel, nginx bytes and lighttpd x-sendfile, with the real write
# path. Per server and mode, on a fresh copy of the avatars:
#   - the default avatar is replaced by a 256x256 PNG and the batch command
#     (`avatar.fcgi variants`) makes the variants of every hand-filled file;
#   - a 1280x960 JPEG, a 300x200 PNG and a 40x40 PNG are uploaded (signed
#     PUT), so their variants are made before the PUT answers;
#   - one table of cases, one a line: URL and Accept header -> Content-Type,
#     the true type of the bytes, exact pixel width x height (vipsheader),
#     whether Vary names Accept, the Cache-Control lifetime, and the very
#     bytes of the file on disk that must answer (DIR/.v/SIZE/ID.TAG.EXT,
#     TAG the original's size and mtime in ns, or the original itself);
#     under three configurations: --formats webp,avif; the same with
#     --negotiate on; the defaults (AVIF not configured; lighttpd only);
#   - the header the responder hands the front server (X-Accel-Redirect,
#     X-Sendfile) names the variant file, by raw FastCGI;
#   - client paths into .v/ or the internal location never return a
#     variant file, and the server still answers after them;
#   - a missing variant: the read worker answers at once with the same-size
#     variant in the stored format, short lifetime, and it is made lazily;
#   - a burst of 50 concurrent requests for a hand-filled original with no
#     variants: every answer a whole image, and the variants made once
#     (one log line, one count in /metrics);
#   - replace: the new variants at once, the old ones gone; delete: the
#     default avatar's variant at every size.
use strict;
use warnings;
use FindBin;
use Digest::SHA qw(sha256_hex);
use File::Copy qw(copy);
use Test::More;
BEGIN { require "$FindBin::Bin/../lib/upload.pl" }
our ($ROOT, $BIN, $UTMP, $MTIME, $LIVE, $YEAR, $SHORT);

need_tools(qw(curl spawn-fcgi nginx lighttpd convert vips vipsheader));
has_options(qw(sizes formats negotiate upload-workers)) or done_testing(), exit;
my $CLIENT = "$ROOT/build/fcgi-client";
-x $CLIENT or plan skip_all => "$CLIENT is not built (make test builds it)";

my %EXT = ('image/png' => 'png', 'image/jpeg' => 'jpg', 'image/webp' => 'webp', 'image/avif' => 'avif');
my %TYPE = (png => 'image/png', jpeg => 'image/jpeg', webp => 'image/webp', avif => 'image/avif');
my @SIZES = (32, 64, 128, 256, 512);    # the default --sizes
my $ALL = 'image/avif,image/webp,*/*';  # what Chromium sends for an <img>

# The pictures: uploads are cropped square, never scaled up, at most 1024.
my $JPEG  = draw('v-big.jpg', '-size', '1280x960', 'gradient:crimson-navy', '-quality', '90');
my $PNG   = draw('v-wide.png', '-size', '300x200', 'gradient:gold-teal');
my $SMALL = draw('v-small.png', '-size', '40x40', 'gradient:white-black');
my $NEW   = draw('v-new.png', '-size', '120x120', 'gradient:lime-purple');
my $DEF   = draw('v-default.png', '-size', '256x256', 'gradient:gray-orange');
my $HAND  = draw('v-hand.png', '-size', '300x300', 'gradient:navy-pink');
my $HAND2 = draw('v-hand2.png', '-size', '100x100', 'gradient:pink-navy');

# Who a case is about: the id whose original (or the default's) must answer.
my %WHO = (J => 3000, P => 3001, S => 3002, D => -1, O => 1000, H => 3005);

# ---- what is on disk ------------------------------------------------------------------

# The one original of an id (ID.png, ID.jpg...), as a path.
sub orig_of {
    my ($av, $id) = @_;
    my @f = id_files($av, $id);
    return @f == 1 ? "$av/$f[0]" : undef;
}

# The tag variants of this original carry: its ETag's two numbers.
sub tag_of { etag_of($_[0]) =~ s/"//gr }

# Type (by magic), width, height and whether it decodes whole, per body.
my %probed;
sub probe {
    my ($bytes) = @_;
    return $probed{ sha256_hex($bytes) } //= do {
        my $f = "$UTMP/v-probe";
        spew($f, $bytes);
        my ($w, $h) = qx(vipsheader '$f' 2>/dev/null) =~ /: (\d+)x(\d+) /;
        system("vips avg '${f}[fail_on=warning]' >/dev/null 2>&1");
        { type => magic_type($bytes), w => $w // 0, h => $h // 0, whole => $? == 0 && defined $w };
    };
}

# The bytes that must answer for the original of $id as $type at $side
# pixels: the original itself, or its variant file. A size not below the
# original's side is the full-size file of that format (no upscaling).
sub want_bytes {
    my ($av, $id, $type, $side) = @_;
    my $orig = orig_of($av, $id) // return undef;
    my $o = probe(slurp($orig));
    return slurp($orig) if $type eq $o->{type} && $side == $o->{w};
    my $size = $side == $o->{w} ? 'full' : $side;
    my $f = "$av/.v/$size/$id." . tag_of($orig) . ".$EXT{$type}";
    return -f $f ? slurp($f) : "(no file $f)";
}

# Every variant file of an id (any tag), as names under .v.
sub variant_files {
    my ($av, $id) = @_;
    return map { s{^\Q$av\E/}{}r } grep { m{/\Q$id\E\.[0-9a-f]+-[0-9a-f]+\.[a-z]+$} } glob "$av/.v/*/*";
}

# ---- requests ---------------------------------------------------------------------------

sub get {
    my ($st, $path, $accept) = @_;
    return http($st->{port}, GET => $path, headers => [defined $accept ? ("Accept: $accept") : ()]);
}

# One case of a table: [who, path, Accept, type, side, vary, Cache-Control].
sub check_case {
    my ($st, $av, $c, $label) = @_;
    my ($who, $path, $accept, $t, $side, $vary, $cc) = @$c;
    my $type = $TYPE{$t};
    my $r = get($st, $path, $accept);
    my $name = "$label: GET $path" . (defined $accept ? " (Accept: $accept)" : '')
        . " -> $t ${side}x$side" . ($vary ? ', Vary: Accept' : '');
    subtest $name => sub {
        is $r->{status}, 200, 'status 200' or diag $r->{head};
        is hdr($r, 'Content-Type'), $type, 'Content-Type';
        my $p = probe($r->{body});
        is $p->{type}, $type, 'the bytes are of that type (magic)';
        is "$p->{w}x$p->{h}", "${side}x$side", 'width x height';
        ok $p->{whole}, 'decodes whole';
        is hdr($r, 'Content-Length'), length $r->{body}, 'Content-Length';
        is hdr($r, 'Cache-Control'), $cc, 'Cache-Control';
        my $v = hdr($r, 'Vary') // '';
        if ($vary) { like $v, qr/\bAccept\b/i, 'Vary names Accept' }
        else { unlike $v, qr/\bAccept\b(?!-)/i, 'Vary does not name Accept' }
        ok !defined hdr($r, 'X-Accel-Redirect') && !defined hdr($r, 'X-Sendfile'), 'no internal header leaks';
        my $want = want_bytes($av, $WHO{$who}, $type, $side);
        ok defined $want && $r->{body} eq $want, 'the very bytes of the file on disk'
            or diag(defined $want && $want =~ /^\(no file/ ? $want : 'the body differs from the file');
    };
}

# /metrics through the front server (loopback may read it): the count of
# variant files written, or undef when /metrics has none.
sub made_count { metric($_[0], 'avatar_variants_made_total') }

sub metric {
    my ($st, $name) = @_;
    my $m = get($st, '/metrics')->{body};
    return $m =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

# The makings the responder logged for an id (a pattern), from the log's
# $from-th byte:
# "variants: ID: made M, copied C, ..." (a job that found every file there
# logs nothing).
sub made_lines {
    my ($st, $id, $from) = @_;
    my $log = substr(slurp("$st->{run}/avatar.log"), $from // 0);
    return grep { /variants: $id: made \d+, copied \d+/ } split /\n/, $log;
}

# The files those lines say were written.
sub files_written {
    my $n = 0;
    for (@_) { $n += $1 + $2 if /made (\d+), copied (\d+)/ }
    return $n;
}

# A hand-filled original, as an operator's copy leaves it.
sub hand_fill {
    my ($av, $id, $src) = @_;
    copy($src, "$av/$id.png.tmp") or die "copy: $!";
    utime $MTIME, $MTIME, "$av/$id.png.tmp";
    rename "$av/$id.png.tmp", "$av/$id.png" or die "rename: $!";
}

# ---- the tables -------------------------------------------------------------------------

# --formats webp,avif, --negotiate off.
# who  path                               Accept  type   side vary Cache-Control
my @formats = (
    ['J', '/3000',                            undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?s=1',                        undef, 'jpeg',  32, 0, $LIVE],
    ['J', '/3000?s=32',                       undef, 'jpeg',  32, 0, $LIVE],
    ['J', '/3000?s=33',                       undef, 'jpeg',  64, 0, $LIVE],
    ['J', '/3000?s=64',                       undef, 'jpeg',  64, 0, $LIVE],
    ['J', '/3000?s=100',                      undef, 'jpeg', 128, 0, $LIVE],
    ['J', '/3000?s=256',                      undef, 'jpeg', 256, 0, $LIVE],
    ['J', '/3000?s=257',                      undef, 'jpeg', 512, 0, $LIVE],
    ['J', '/3000?s=600',                      undef, 'jpeg', 512, 0, $LIVE],
    ['J', '/3000?s=4096',                     undef, 'jpeg', 512, 0, $LIVE],
    ['J', '/3000?s=4097',                     undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?s=9999',                     undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?s=0',                        undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?s=-5',                       undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?s=abc',                      undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?s=064',                      undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?s=+64',                      undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?s=64.0',                     undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?s=0x40',                     undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?s=',                         undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?S=64',                       undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000?size=64',                    undef, 'jpeg',  64, 0, $LIVE],
    ['J', '/3000?size=100',                   undef, 'jpeg', 128, 0, $LIVE],
    ['J', '/3000?size=0',                     undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/avatar/3000?s=64',                undef, 'jpeg',  64, 0, $LIVE],
    ['J', '/avatar/3000?size=200',            undef, 'jpeg', 256, 0, $LIVE],
    ['J', '/3000.jpg?s=64',                   undef, 'jpeg',  64, 0, $LIVE],
    ['J', '/3000.png?s=64',                   undef, 'jpeg',  64, 0, $LIVE],
    ['J', '/3000.gif?s=100',                  undef, 'jpeg', 128, 0, $LIVE],
    ['J', '/3000?v=x&s=64',                   undef, 'jpeg',  64, 0, $YEAR],
    ['J', '/3000?s=64&v=x',                   undef, 'jpeg',  64, 0, $YEAR],
    ['J', '/avatar/3000.jpg?size=32&v=7',     undef, 'jpeg',  32, 0, $YEAR],
    ['J', '/3000.webp',                       undef, 'webp', 960, 0, $LIVE],
    ['J', '/3000.webp?s=64',                  undef, 'webp',  64, 0, $LIVE],
    ['J', '/3000.webp?size=600',              undef, 'webp', 512, 0, $LIVE],
    ['J', '/3000.webp?s=abc',                 undef, 'webp', 960, 0, $LIVE],
    ['J', '/3000.avif',                       undef, 'avif', 960, 0, $LIVE],
    ['J', '/3000.avif?s=32',                  undef, 'avif',  32, 0, $LIVE],
    ['J', '/avatar/3000.avif?s=100&v=2',      undef, 'avif', 128, 0, $YEAR],
    ['J', '/3000?s=64',                       $ALL,  'jpeg',  64, 0, $LIVE],
    ['J', '/3000',                    'image/webp',  'jpeg', 960, 0, $LIVE],
    ['P', '/3001',                            undef, 'png',  200, 0, $LIVE],
    ['P', '/3001?s=64',                       undef, 'png',   64, 0, $LIVE],
    ['P', '/3001?s=199',                      undef, 'png',  200, 0, $LIVE],
    ['P', '/3001?s=200',                      undef, 'png',  200, 0, $LIVE],
    ['P', '/3001?s=512',                      undef, 'png',  200, 0, $LIVE],
    ['P', '/3001.webp?s=128',                 undef, 'webp', 128, 0, $LIVE],
    ['P', '/3001.webp?s=256',                 undef, 'webp', 200, 0, $LIVE],
    ['P', '/3001.avif?s=512',                 undef, 'avif', 200, 0, $LIVE],
    ['P', '/3001.avif?s=9999',                undef, 'avif', 200, 0, $LIVE],
    ['S', '/3002?s=1',                        undef, 'png',   32, 0, $LIVE],
    ['S', '/3002?s=32',                       undef, 'png',   32, 0, $LIVE],
    ['S', '/3002?s=64',                       undef, 'png',   40, 0, $LIVE],
    ['S', '/3002.webp?s=64',                  undef, 'webp',  40, 0, $LIVE],
    ['S', '/3002.avif?s=512',                 undef, 'avif',  40, 0, $LIVE],
    ['O', '/1000?s=32',                       undef, 'png',   32, 0, $LIVE],
    ['O', '/1000?s=128',                      undef, 'png',   64, 0, $LIVE],
    ['O', '/1000.webp?s=32',                  undef, 'webp',  32, 0, $LIVE],
    ['D', '/3999',                            undef, 'png',  256, 0, $SHORT],
    ['D', '/3999?s=32',                       undef, 'png',   32, 0, $SHORT],
    ['D', '/3999?s=64',                       undef, 'png',   64, 0, $SHORT],
    ['D', '/3999?s=200',                      undef, 'png',  256, 0, $SHORT],
    ['D', '/3999?s=512',                      undef, 'png',  256, 0, $SHORT],
    ['D', '/avatar/3999.webp?s=64',           undef, 'webp',  64, 0, $SHORT],
    ['D', '/3999.avif?s=128&v=3',             undef, 'avif', 128, 0, $SHORT],
    ['D', '/1003?s=64',                       undef, 'png',   64, 0, $SHORT],
    ['D', '/1004.webp?s=32',                  undef, 'webp',  32, 0, $SHORT],
    ['D', '/1007?s=64',                       undef, 'png',   64, 0, $SHORT],
);

# --formats webp,avif --negotiate on: only an extensionless URL negotiates.
my @negotiate = (
    ['J', '/3000',                            $ALL,  'avif', 960, 1, $LIVE],
    ['J', '/3000?s=64',                       $ALL,  'avif',  64, 1, $LIVE],
    ['J', '/3000?s=64',               'image/avif',  'avif',  64, 1, $LIVE],
    ['J', '/3000?s=64',        'image/webp,*/*',     'webp',  64, 1, $LIVE],
    ['J', '/3000?s=64',               'image/webp',  'webp',  64, 1, $LIVE],
    ['J', '/3000?s=64',                      '*/*',  'jpeg',  64, 1, $LIVE],
    ['J', '/3000?s=64',                       undef, 'jpeg',  64, 1, $LIVE],
    ['J', '/avatar/3000?s=100&v=1',           $ALL,  'avif', 128, 1, $YEAR],
    ['J', '/3000.jpg',                        $ALL,  'jpeg', 960, 0, $LIVE],
    ['J', '/3000.png?s=64',                   $ALL,  'jpeg',  64, 0, $LIVE],
    ['J', '/3000.webp?s=64',          'image/avif',  'webp',  64, 0, $LIVE],
    ['J', '/3000.avif?s=64',          'image/webp',  'avif',  64, 0, $LIVE],
    ['S', '/3002?s=512',                      $ALL,  'avif',  40, 1, $LIVE],
    ['D', '/3999?s=64',                       $ALL,  'avif',  64, 1, $SHORT],
    ['D', '/3999',                    'image/webp',  'webp', 256, 1, $SHORT],
);

# The defaults: --formats webp (AVIF not configured), --negotiate off.
my @defaults = (
    ['J', '/3000.avif',                       undef, 'jpeg', 960, 0, $LIVE],
    ['J', '/3000.avif?s=64',                  undef, 'jpeg',  64, 0, $LIVE],
    ['J', '/3000?s=64',                       $ALL,  'jpeg',  64, 0, $LIVE],
    ['J', '/3000',                    'image/avif',  'jpeg', 960, 0, $LIVE],
    ['J', '/3000.webp?s=64',                  $ALL,  'webp',  64, 0, $LIVE],
    ['D', '/3999.avif?s=32',                  undef, 'png',   32, 0, $SHORT],
);

# ---- one server and mode ----------------------------------------------------------------

sub upload {
    my ($st, $id, $file, $status) = @_;
    my $r = put_file($st->{url}, $id, sign_cli(PUT => $id), $file);
    is $r->{status}, $status, "PUT /$id (" . ($file =~ s{.*/}{}r) . "): $status"
        or diag "$r->{head}\n$r->{body}";
    return $r;
}

# The header the responder hands the front server for /3000?s=64, by raw
# FastCGI on its socket: the variant file, under the internal location
# (x-accel) or the avatars directory (x-sendfile); the bytes themselves in
# bytes mode.
sub handoff {
    my ($st, $av, $mode) = @_;
    my $name = '.v/64/3000.' . tag_of(orig_of($av, 3000)) . '.jpg';
    my $out = qx('$CLIENT' '$st->{run}/avatar.sock' REQUEST_METHOD=GET DOCUMENT_URI=/3000 \\
        'REQUEST_URI=/3000?s=64' QUERY_STRING=s=64 SERVER_PROTOCOL=HTTP/1.1 REMOTE_ADDR=127.0.0.1);
    my ($head, $body) = split /\r?\n\r?\n/, $out, 2;
    $head //= '';
    subtest "$mode: the responder hands over $name" => sub {
        if ($mode eq 'x-accel') {
            like $head, qr{^X-Accel-Redirect: /_avatars/\Q$name\E\r?$}m, 'X-Accel-Redirect names the variant';
        } elsif ($mode eq 'x-sendfile') {
            like $head, qr{^X-Sendfile: \Q$av/$name\E\r?$}m, 'X-Sendfile names the variant';
        } else {
            unlike $head, qr/^X-(Accel-Redirect|Sendfile):/mi, 'no hand-off header';
            ok defined $body && $body eq slurp("$av/$name"), 'the variant\'s bytes';
        }
        like $head, qr{^Content-Type: image/jpeg\r?$}m, 'Content-Type: image/jpeg';
    } or diag $head;
}

# Client paths that name a variant file: never its bytes, never a 5xx,
# and the server answers a good request afterwards.
sub hostile {
    my ($st, $av, $label) = @_;
    # A variant that is a copy of an original (no upscaling) may be served
    # as that original: only the bytes no original has count.
    my %orig = map { sha256_hex(slurp($_)) => 1 } grep { -f && !-l } glob "$av/*";
    my %variant = map { sha256_hex(slurp($_)) => $_ } grep { -f } glob "$av/.v/*/*";
    delete @variant{ keys %orig };
    ok keys(%variant) > 0, "$label: there are variant files to aim at";
    my $n = '3000.' . tag_of(orig_of($av, 3000)) . '.jpg';
    my $w = '3000.' . tag_of(orig_of($av, 3000)) . '.webp';
    my @paths = (
        "/.v/64/$n", "/_avatars/.v/64/$n", "/avatar/.v/64/$n", "/.v/full/$w", "/_avatars/.v/full/$w",
        "/$n", "/avatar/$n", "/.v%2F64%2F$n", "/%2Ev/64/$n", "/%2e%76/64/$n", "/x/../.v/64/$n",
        "/avatar/..%2F.v%2F64%2F$n", "/_avatars/../_avatars/.v/64/$n", "/_avatars%2F.v%2F64%2F$n",
        "/.v/64/$n?s=64", "/_avatars/.v/64/$n?v=1", "/_avatars/3000.jpg", "/.v/64/", "/.v",
    );
    for my $path (@paths) {
        my $r = get($st, $path);
        ok $r->{status} && $r->{status} < 500 && !$variant{ sha256_hex($r->{body}) },
            "$label: GET $path: $r->{status}, not a variant file"
            or diag "$r->{head}\nbody: " . ($variant{ sha256_hex($r->{body}) } // length($r->{body}) . ' bytes');
    }
    my $r = get($st, '/3000?s=64');
    ok $r->{status} == 200 && probe($r->{body})->{w} == 64, "$label: GET /3000?s=64 still answered";
}

# A variant file removed by hand: the same-size variant of the stored
# format answers at once (short lifetime), and the missing one is made.
sub lazy_one {
    my ($st, $av, $label) = @_;
    my $tag = tag_of(orig_of($av, 3001));
    my $gone = "$av/.v/64/3001.$tag.webp";
    ok unlink($gone), "$label: removed .v/64/3001.TAG.webp by hand";
    check_case($st, $av, ['P', '/3001.webp?s=64', undef, 'png', 64, 0, $SHORT],
        "$label, variant missing: the 64 px PNG at once");
    ok poll_until(sub { -s $gone }, 30), "$label: .v/64/3001.TAG.webp is made again";
    check_case($st, $av, ['P', '/3001.webp?s=64', undef, 'webp', 64, 0, $LIVE], "$label, made again");
}

# What the upload processes are doing, for a failure's diagnostics: each
# one's state, kernel wait channel and CPU ticks, the load, and the log's
# end (a starved process is R with ticks rising; a hung one S, still).
sub upload_state {
    my ($st) = @_;
    my @out;
    for my $p (upload_pids($st)) {
        my $wchan = slurp_or_empty("/proc/$p/wchan");
        push @out, "upload process $p: state " . ((proc_stat($p))[0] // 'gone') . ", wchan $wchan, CPU ticks "
            . cpu_ticks($p) . ', ' . scalar(() = glob "/proc/$p/task/*") . ' threads';
    }
    push @out, 'load average: ' . slurp_or_empty('/proc/loadavg');
    my @log = split /\n/, slurp_or_empty("$st->{run}/avatar.log");
    return join "\n", @out, 'avatar.log ends:', @log[($#log > 15 ? $#log - 15 : 0) .. $#log];
}

# 50 concurrent requests for a hand-filled original that has no variant.
sub burst {
    my ($st, $av, $label) = @_;
    my $n = 50;
    hand_fill($av, 3005, $HAND);
    my $orig = slurp("$av/3005.png");
    my ($count0, $log0) = (made_count($st), length slurp("$st->{run}/avatar.log"));
    my $jobs0 = metric($st, 'avatar_variant_jobs_total') // 0;
    pipe(my $gate_r, my $gate_w) or die "pipe: $!";
    my @kids;
    for my $i (1 .. $n) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $gate_w;
            <$gate_r>;    # every child starts when the gate closes
            # No die may reach the END blocks here: they stop the stacks.
            eval {
                my $r = get($st, '/3005?s=64');
                spew("$UTMP/burst.$$.$i", join("\n", $r->{status}, hdr($r, 'Content-Type') // '',
                    hdr($r, 'Cache-Control') // '') . "\n\n" . $r->{body});
            };
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    close $gate_r;
    close $gate_w;
    waitpid $_, 0 for @kids;
    my $file;
    # Waits longer than --job-limit (60 s): an upload process that hangs
    # holding 3005's lock is killed and the other one makes the variants;
    # that is the product at work, and said below, not a failure.
    ok poll_until(sub { ($file) = grep { -s } glob "$av/.v/64/3005.*.png"; $file && made_lines($st, 3005, $log0) }, 90),
        "$label: the variants of the hand-filled 3005 are made" or diag upload_state($st);
    # Sentinels: two more ids queued after the burst's jobs, one per upload
    # process; when both are made, every job queued before them is done.
    hand_fill($av, $_, $HAND2) for 3006, 3007;
    get($st, "/$_?s=32") for 3006, 3007;
    ok poll_until(sub { made_lines($st, 3006, $log0) && made_lines($st, 3007, $log0) }, 90),
        "$label: the sentinel ids are made" or diag upload_state($st);
    my @hung = substr(slurp("$st->{run}/avatar.log"), $log0) =~ /^(.*ran over --job-limit.*)$/mg;
    diag "$label: an upload process hung during the burst and was replaced:\n" . join "\n", @hung, upload_state($st)
        if @hung;
    my $variant = $file ? slurp($file) : '';
    my ($ok, @bad) = (0);
    for my $i (1 .. $n) {
        my ($f) = glob "$UTMP/burst.*.$i";
        my ($head, $body) = split /\n\n/, slurp($f // ''), 2;
        unlink $f if $f;
        my ($status, $ct, $cc) = split /\n/, $head // '', 3;
        $body //= '';
        my $p = probe($body);
        # The original at once (short lifetime), or the variant once made.
        if ($status == 200 && $ct eq 'image/png' && $p->{type} eq 'image/png' && $p->{whole}
            && (($body eq $orig && $p->{w} == 300 && $cc eq $SHORT)
                || ($body eq $variant && $p->{w} == 64 && $cc eq $LIVE))) {
            $ok++;
        } else {
            push @bad, "$status $ct $cc $p->{w}x$p->{h} " . length($body) . ' bytes';
        }
    }
    is $ok, $n, "$label: all $n concurrent answers are 200 and a whole image (the original, short, or the variant)"
        or diag join "\n", @bad[0 .. ($#bad < 4 ? $#bad : 4)];
    my @made = made_lines($st, 3005, $log0);
    note "$label: the read workers sent " . ((metric($st, 'avatar_variant_jobs_total') // 0) - $jobs0)
        . ' jobs for the burst and the two sentinels';
    is scalar(@made), 1, "$label: the variants of 3005 were made once (one \"variants: 3005: made\" line)"
        or diag join "\n", @made;
    my $count1 = made_count($st);
    ok defined $count0 && defined $count1, "$label: /metrics has avatar_variants_made_total";
    # Every file written since the burst began is in a logged making (a
    # second making of 3005 would write files too, and log them).
    my $logged = files_written(made_lines($st, '-?\d+', $log0));
    ok $logged > 0 && ($count1 // 0) - ($count0 // 0) == $logged,
        "$label: avatar_variants_made_total grew by the $logged files those makings wrote"
        or diag "grew by " . (($count1 // 0) - ($count0 // 0));
    check_case($st, $av, ['H', '/3005?s=64', undef, 'png', 64, 0, $LIVE], "$label, after the burst")
        if $file;
}

sub mode_run {
    my (%o) = @_;
    my $label = "$o{server} $o{mode}";
    my $tmp = tempdir('e2e-var-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $av = make_avatars($tmp);
    copy($DEF, "$av/-1.png") or die "copy: $!";
    utime $MTIME, $MTIME, "$av/-1.png";

    # The batch command over the hand-filled files (the default among them).
    my $out = qx('$BIN' variants --dir '$av' --formats webp,avif 2>&1);
    is $?, 0, "$label: avatar.fcgi variants --dir DIR --formats webp,avif exits 0" or diag $out;
    ok -s "$av/.v/64/-1." . tag_of("$av/-1.png") . '.png', "$label: it made the default's 64 px variant";

    my @args = ('--key-file', key_file(), '--upload-workers', 2);
    my $st = start_stack(%o, avatars => $av, args => [@args, '--formats', 'webp,avif']);
    note "$label on $st->{url}";
    # What the batch command did not make is made lazily: one request each
    # sends the job; the table below needs every variant of both.
    for my $id (-1, 1000) {
        my $last = "$av/.v/512/$id." . tag_of(orig_of($av, $id)) . '.avif';
        get($st, "/$id?s=32") unless -s $last;
        ok poll_until(sub { -s $last }, 30), "$label: every variant of $id is there";
    }
    upload($st, 3000, $JPEG, 201);
    ok -s "$av/.v/64/3000." . tag_of(orig_of($av, 3000)) . '.jpg',
        "$label: the 64 px variant of 3000 exists when the PUT has answered";
    upload($st, 3001, $PNG, 201);
    upload($st, 3002, $SMALL, 201);

    check_case($st, $av, $_, "$label, --formats webp,avif") for @formats;
    handoff($st, $av, $o{mode});
    hostile($st, $av, $label);
    lazy_one($st, $av, $label);
    burst($st, $av, $label);

    # Replace: the new picture's variants at once, the old ones gone.
    my $old_tag = tag_of(orig_of($av, 3001));
    my $old64 = get($st, '/3001?s=64')->{body};
    upload($st, 3001, $NEW, 200);
    my @left = grep {/\Q$old_tag\E/} variant_files($av, 3001);
    is_deeply \@left, [], "$label: no variant of the replaced 3001 is left";
    isnt get($st, '/3001?s=64')->{body}, $old64, "$label: /3001?s=64 has other bytes after the replace";
    # who path                   Accept type   side vary Cache-Control
    check_case($st, $av, $_, "$label, replaced") for (
        ['P', '/3001?s=64',          undef, 'png',   64, 0, $LIVE],
        ['P', '/3001?s=128',         undef, 'png',  120, 0, $LIVE],
        ['P', '/3001.webp',          undef, 'webp', 120, 0, $LIVE],
        ['P', '/3001.avif?s=32',     undef, 'avif',  32, 0, $LIVE],
    );

    # Delete: the default avatar's variant at every size.
    is delete_id($st->{url}, 3001, sign_cli(DELETE => 3001))->{status}, 204, "$label: DELETE /3001: 204";
    is_deeply [variant_files($av, 3001)], [], "$label: no variant of the deleted 3001 is left";
    for my $s (@SIZES) {
        check_case($st, $av, ['D', "/3001?s=$s", undef, 'png', $s < 256 ? $s : 256, 0, $SHORT], "$label, deleted");
    }
    check_case($st, $av, ['D', '/3001.webp?s=64', undef, 'webp', 64, 0, $SHORT], "$label, deleted");
    stop_stack($st);

    $st = start_stack(%o, avatars => $av, args => [@args, '--formats', 'webp,avif', '--negotiate', 'on']);
    check_case($st, $av, $_, "$label, --negotiate on") for @negotiate;
    stop_stack($st);

    # The defaults are the responder's own choice, the same behind every
    # front server: one mode is enough (each stack stop takes seconds).
    return unless $o{defaults};
    $st = start_stack(%o, avatars => $av, args => \@args);
    check_case($st, $av, $_, "$label, defaults") for @defaults;
    stop_stack($st);
}

mode_run(server => 'nginx',    mode => 'x-accel');
mode_run(server => 'nginx',    mode => 'bytes');
mode_run(server => 'lighttpd', mode => 'x-sendfile', defaults => 1);

done_testing();

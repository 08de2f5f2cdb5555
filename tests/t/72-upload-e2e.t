#!/usr/bin/perl
# 72-upload-e2e: the write path of issue 11 through the real front servers,
# nginx (x-accel and bytes) and lighttpd (x-sendfile and bytes), with curl.
# Upload, replace (also by another format), delete, and read every result
# back: its true type by magic bytes, its dimensions, a whole decode, the
# very bytes stored, at once under the returned versioned URL. Then every
# way a signature can be wrong (expired, too far ahead, other id, other
# method, tampered, foreign, missing, malformed) and key rotation; writes
# over symlinks; no key file (405); the limits (411, 413 at the limit and
# one byte over, 415, 422 for undecodable, --max-pixels, --max-frames), each
# with a JSON error naming it; and the Python and PHP recipes of
# docs/signing.md signing real uploads and deletes.
use strict;
use warnings;
use FindBin;
use Digest::SHA qw(sha256_hex);
use Test::More;
BEGIN { require "$FindBin::Bin/../lib/upload.pl" }
our ($ROOT, $BIN, $UTMP, $KEY1, $KEY2, $FOREIGN, $MTIME);

need_tools(qw(curl spawn-fcgi nginx lighttpd convert identify));

my $MAX_TTL = 3600;    # the default --max-ttl

# The images uploaded: name, what convert draws, and what must come back
# (type, width, height: cropped to a square, never scaled up, at most 1024).
my %img = (
    png    => [draw('wide.png', '-size', '300x200', 'gradient:crimson-blue'), 'image/png', 200, 200],
    png2   => [draw('small.png', '-size', '64x64', 'gradient:yellow-black'), 'image/png', 64, 64],
    jpeg   => [draw('photo.jpg', '-size', '400x400', 'gradient:white-navy', '-quality', '90'), 'image/jpeg', 400, 400],
    gif    => [draw('anim.gif', '-delay', '10', '-size', '50x50', 'xc:crimson', 'xc:lime', 'xc:blue', '-loop', '0'),
        'image/gif', 50, 50],
    webp   => [draw('pic.webp', '-size', '120x120', 'gradient:orange-purple'), 'image/webp', 120, 120],
    big    => [draw('big.jpg', '-size', '2000x1500', 'gradient:crimson-green', '-quality', '80'), 'image/jpeg', 1024, 1024],
);
my %ext = ('image/png' => 'png', 'image/jpeg' => 'jpg', 'image/gif' => 'gif', 'image/webp' => 'webp');

# A successful write's answer: status, JSON fields, a versioned URL.
sub is_stored {
    my ($r, $id, $status, $want, $name) = @_;
    my ($file, $type, $w, $h) = @$want;
    my $j = $r->{json} // {};
    subtest $name => sub {
        is $r->{status}, $status, "status $status" or diag "$r->{head}\n$r->{body}";
        like hdr($r, 'Content-Type') // '', qr{^application/json\b}, 'a JSON answer';
        is $j->{id}, $id, 'id';
        is $j->{type}, $type, 'type';
        is "$j->{width}x$j->{height}", "${w}x$h", 'width x height' if defined $j->{width};
        like $j->{bytes} // '', qr/^[1-9]\d*$/, 'bytes';
        like $j->{url} // '', qr{^/\Q$id\E\?v=[0-9a-f]+$}, 'url /ID?v=HEX';
    };
    return $j;
}

# What the stack now serves for the id, by the returned URL and by /ID:
# the stored file's very bytes, whose magic, dimensions and decode match
# the answer; the one name of the id on disk; no temporary file.
sub is_served {
    my ($st, $av, $id, $j, $name) = @_;
    return fail("$name: nothing was stored to read back") unless $j->{type} && $ext{ $j->{type} };
    subtest $name => sub {
        my $type = $j->{type} // 'none';
        my $want = "$id.$ext{$type}";
        my @names = id_files($av, $id);
        is "@names", $want, "the id has one file, $want";
        my $disk = -f "$av/$want" ? slurp("$av/$want") : '';
        is length($disk), $j->{bytes}, 'the stored file has the answered size';
        is_deeply [tmp_files($av)], [], 'no temporary file';
        for my $path ($j->{url} // "/$id", "/$id") {
            my $g = get_url($st->{url}, $path);
            is $g->{status}, 200, "GET $path: 200";
            is hdr($g, 'Content-Type'), $type, "GET $path: Content-Type";
            ok $g->{body} eq $disk, "GET $path: the stored bytes"
                or diag 'got ' . length($g->{body}) . ' bytes, want ' . length $disk;
        }
        my $i = image_info($disk);
        is $i->{type}, $type, 'the bytes are what the answer says (magic)';
        is "$i->{width}x$i->{height}", "$j->{width}x$j->{height}", 'dimensions as answered';
        ok $i->{whole}, 'decodes whole, without a warning';
        is $i->{exif}, '', 'no EXIF';
    };
}

sub is_error {
    my ($r, $status, $like, $name) = @_;
    subtest $name => sub {
        is $r->{status}, $status, "status $status" or diag $r->{head} . "\n" . $r->{body};
        ok defined $r->{json} && defined $r->{json}{error}, 'a JSON error' or diag $r->{body};
        like $r->{json}{error} // '', $like, "the error names it ($like)" if $like;
    };
}

# ---- upload, replace, delete, read back: every server and mode ---------------------

sub flow {
    my (%o) = @_;
    my $tmp = tempdir('e2e-up-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $av = make_avatars($tmp);
    my $st = start_stack(%o, avatars => $av, args => ['--key-file', key_file()]);
    my $u = $st->{url};
    my $default = slurp("$av/-1.png");
    note "$o{server} $o{mode} on $u";

    ok get_url($u, '/2000')->{body} eq $default, 'GET /2000 before: the default avatar';
    my $j = is_stored(put_file($u, 2000, sign_cli(PUT => 2000), $img{png}[0]), 2000, 201, $img{png},
        'PUT /2000 (PNG 300x200): 201, cropped to 200x200');
    is_served($st, $av, 2000, $j, 'PUT /2000: served');

    my $j2 = is_stored(put_file($u, 2000, sign_cli(PUT => 2000), $img{png2}[0]), 2000, 200, $img{png2},
        'PUT /2000 again (PNG 64x64): 200 replaced');
    isnt $j2->{url}, $j->{url}, 'a new image, a new versioned URL';
    is_served($st, $av, 2000, $j2, 'replaced: the new image at once, by its URL and by /2000');

    my $j3 = is_stored(put_file($u, 2000, sign_cli(PUT => 2000), $img{jpeg}[0]), 2000, 200, $img{jpeg},
        'PUT /2000 with a JPEG over the PNG: 200');
    ok !-e "$av/2000.png", 'the old 2000.png is gone';
    is_served($st, $av, 2000, $j3, 'replaced by a JPEG: served as image/jpeg');

    for my $k (qw(gif webp big png)) {
        my $jk = is_stored(put_file($u, 2000, sign_cli(PUT => 2000), $img{$k}[0]), 2000, 200, $img{$k},
            "PUT /2000 with $k");
        is_served($st, $av, 2000, $jk, "$k: served");
        is image_info(slurp_or_empty("$av/2000.gif"))->{frames}, 3, 'the GIF keeps its 3 frames' if $k eq 'gif';
    }

    # A chunked upload: no Content-Length from the client; the front server
    # buffers the body and passes its length on.
    my $jc = is_stored(put_file($u, 2001, sign_cli(PUT => 2001), $img{jpeg}[0], '-H', 'Transfer-Encoding: chunked'),
        2001, 201, $img{jpeg}, 'PUT /2001 with Transfer-Encoding: chunked: 201');
    is_served($st, $av, 2001, $jc, 'chunked: served');

    # An id that had a file before the store: 200, and the old bytes are gone.
    my $j1000 = is_stored(put_file($u, 1000, sign_cli(PUT => 1000), $img{webp}[0]), 1000, 200, $img{webp},
        'PUT /1000 over the shipped 1000.png: 200');
    is_served($st, $av, 1000, $j1000, '1000: served as WebP');

    # Symlinks: a write replaces the link itself and never writes through it.
    {
        my $secret = slurp("$tmp/secret.png");
        my $jl = put_file($u, 1005, sign_cli(PUT => 1005), $img{png2}[0]);
        ok $jl->{status} == 200 || $jl->{status} == 201, "PUT /1005 (a symlink out of the directory): 2xx ($jl->{status})";
        ok slurp("$tmp/secret.png") eq $secret, 'the link target is untouched';
        ok !-l "$av/1005.png" && -f "$av/1005.png", '1005.png is now a regular file';
        is_served($st, $av, 1005, $jl->{json} // {}, '1005: the upload is served');
        spew("$tmp/secret2.png", $secret);
        symlink "$tmp/secret2.png", "$av/1099.png" or die "symlink: $!";
        my $d = delete_id($u, 1099, sign_cli(DELETE => 1099));
        is $d->{status}, 204, 'DELETE /1099 (a symlink out of the directory): 204';
        ok !-e "$av/1099.png" && !-l "$av/1099.png", 'the link is gone';
        ok -f "$tmp/secret2.png" && slurp("$tmp/secret2.png") eq $secret, 'its target is untouched';
    }

    # Delete: 204, the default avatar again, 404 the second time.
    my $d = delete_id($u, 2000, sign_cli(DELETE => 2000));
    subtest 'DELETE /2000: 204' => sub {
        is $d->{status}, 204, 'status 204' or diag "$d->{head}\n$d->{body}";
        is $d->{body}, '', 'no body';
        is_deeply [id_files($av, 2000)], [], 'no file left for the id';
        is_deeply [tmp_files($av)], [], 'no temporary file';
    };
    for my $path ('/2000', grep {defined} $j->{url}, $j3->{url}) {
        my $g = get_url($u, $path);
        ok $g->{status} == 200 && $g->{body} eq $default, "GET $path after the delete: the default avatar";
    }
    is_error(delete_id($u, 2000, sign_cli(DELETE => 2000)), 404, undef, 'DELETE /2000 again: 404');
    is_error(delete_id($u, 2999, sign_cli(DELETE => 2999)), 404, undef, 'DELETE /2999 (never there): 404');

    signatures($st, $av);
    stop_stack($st);
}

# ---- signatures: one case a line -------------------------------------------------------

sub signatures {
    my ($st, $av) = @_;
    my $u = $st->{url};
    my $now = time;
    my $e300 = $now + 300;
    my $good = sign_with($KEY1, PUT => 1001, $now + 300);
    (my $tampered = $good) =~ s/sig=(.)/'sig=' . ($1 eq 'a' ? 'b' : 'a')/e;
    (my $upper = $good) =~ s/sig=(.*)/'sig=' . uc $1/e;
    # method   query                                               status  error     what
    my @cases = (
        ['PUT',    undef,                                               400, qr/\S/, 'no query'],
        ['PUT',    "expires=$e300",                                     400, qr/\S/, 'no sig'],
        ['PUT',    $good =~ s/expires=\d+&//r,                          400, qr/\S/, 'no expires'],
        ['PUT',    $good =~ s/sig=[0-9a-f]+/sig=abc/r,                  400, qr/\S/, 'short sig'],
        ['PUT',    $upper,                                              400, qr/\S/, 'uppercase sig'],
        ['PUT',    $good =~ s/expires=/expires=0/r,                     400, qr/\S/, 'expires with a leading zero'],
        ['PUT',    $good =~ s/expires=/expires=+/r,                     400, qr/\S/, 'expires with a plus'],
        ['PUT',    $good =~ s/expires=\d+/expires=soon/r,               400, qr/\S/, 'expires not a number'],
        ['PUT',    $tampered,                                           403, qr/signature/, 'tampered sig'],
        ['PUT',    sign_with($KEY1, PUT => 1001, $now + 301) =~ s/expires=\d+/expires=$e300/r,
                                                                        403, qr/signature/, 'expires changed after signing'],
        ['PUT',    sign_with($KEY1, PUT => 1000, $e300),                403, qr/signature/, 'signed for another id'],
        ['PUT',    sign_with($KEY1, DELETE => 1001, $e300),             403, qr/signature/, 'signed for DELETE'],
        ['PUT',    sign_with($KEY1, put => 1001, $e300),                403, qr/signature/, 'signed for "put"'],
        ['PUT',    sign_with($FOREIGN, PUT => 1001, $e300),             403, qr/signature/, 'signed with a foreign key'],
        ['PUT',    sign_with($KEY1, PUT => 1001, $now - 5),             403, qr/expired/, 'expired'],
        ['PUT',    sign_with($KEY2, PUT => 1001, $now - 5),             403, qr/expired/, 'expired, second key'],
        ['PUT',    sign_with($KEY1, PUT => 1001, $now + $MAX_TTL + 300), 403, qr/too far|ahead|max-ttl/, 'too far ahead'],
        ['DELETE', undef,                                               400, qr/\S/, 'no query'],
        ['DELETE', $good =~ s/expires=\d+&//r,                          400, qr/\S/, 'no expires'],
        ['DELETE', sign_with($KEY1, PUT => 1001, $e300),                403, qr/signature/, 'signed for PUT'],
        ['DELETE', sign_with($KEY1, DELETE => 1000, $e300),             403, qr/signature/, 'signed for another id'],
        ['DELETE', sign_with($KEY1, DELETE => 1001, $now - 5),          403, qr/expired/, 'expired'],
        ['DELETE', sign_with($KEY1, DELETE => 1001, $now + $MAX_TTL + 300), 403, qr/too far|ahead|max-ttl/, 'too far ahead'],
        ['DELETE', sign_with($FOREIGN, DELETE => 1001, $e300),          403, qr/signature/, 'signed with a foreign key'],
    );
    my $before = slurp("$av/1001.png");
    for my $c (@cases) {
        my ($m, $q, $status, $like, $what) = @$c;
        my $r = $m eq 'PUT' ? put_file($u, 1001, $q, $img{png}[0]) : delete_id($u, 1001, $q);
        is_error($r, $status, $like, "$m /1001, $what: $status") or note "query: " . ($q // '');
    }
    ok slurp_or_empty("$av/1001.png") eq $before && id_files($av, 1001) == 1,
        'after every refused write, 1001.png is untouched';
    ok get_url($u, '/1001')->{body} eq $before, 'and served as before';

    # Key rotation: the second line of the key file verifies too.
    my $r2 = put_file($u, 1001, sign_with($KEY2, PUT => 1001, $now + 300), $img{png2}[0]);
    is_stored($r2, 1001, 200, $img{png2}, 'PUT signed with the key file\'s second line: 200');
    my $d2 = delete_id($u, 1001, sign_with($KEY2, DELETE => 1001, $now + 300));
    is $d2->{status}, 204, 'DELETE signed with the second line: 204';
    # The longest TTL accepted: exactly --max-ttl ahead (a second of slack
    # for the clock moving between here and the server).
    my $r3 = put_file($u, 1001, sign_with($KEY1, PUT => 1001, time + $MAX_TTL - 1), $img{png}[0]);
    is $r3->{status}, 201, 'PUT expiring --max-ttl seconds from now: 201';
}

flow(server => 'nginx',    mode => 'x-accel');
flow(server => 'nginx',    mode => 'bytes');
flow(server => 'lighttpd', mode => 'x-sendfile');
flow(server => 'lighttpd', mode => 'bytes');

# ---- no key file: writes disabled --------------------------------------------------------

{
    my $tmp = tempdir('e2e-nokey-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $av = make_avatars($tmp);
    for my $o ([nginx => 'bytes'], [lighttpd => 'x-sendfile']) {
        my $st = start_stack(server => $o->[0], mode => $o->[1], avatars => $av);
        my $before = slurp("$av/1000.png");
        my $p = put_file($st->{url}, 1000, sign_with($KEY1, PUT => 1000, time + 300), $img{png}[0]);
        my $d = delete_id($st->{url}, 1000, sign_with($KEY1, DELETE => 1000, time + 300));
        for ([PUT => $p], [DELETE => $d]) {
            my ($m, $r) = @$_;
            subtest "$o->[0] $o->[1], no --key-file: $m /1000 is 405" => sub {
                is $r->{status}, 405, 'status 405';
                unlike hdr($r, 'Allow') // '', qr/PUT|DELETE/, 'Allow does not offer writes';
            };
        }
        ok slurp_or_empty("$av/1000.png") eq $before && id_files($av, 1000) == 1, '1000.png untouched';
        stop_stack($st);
    }
}

# ---- limits and refusals, each with a JSON error naming it ----------------------------

# --upload-max 2M: the front servers' own body limits are larger (they match
# the default 8 MiB), so the responder's limit is the one that answers.
my $LIMIT = 2 * 1024 * 1024;
if (has_options(qw(upload-max max-pixels max-frames))) {
    my $tmp = tempdir('e2e-lim-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $av = make_avatars($tmp);
    my $png = slurp($img{png2}[0]);
    spew("$UTMP/exact.png", png_of_size($png, $LIMIT));
    spew("$UTMP/over.png", png_of_size($png, $LIMIT + 1));
    spew("$UTMP/half.png", substr(slurp($img{png}[0]), 0, int(length(slurp($img{png}[0])) / 2)));
    spew("$UTMP/text.txt", "hello, this is not an image\n");
    spew("$UTMP/empty", "");
    spew("$UTMP/script.svg", qq{<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>\n});
    spew("$UTMP/page.html", "<!DOCTYPE html><html><body><script>alert(1)</script></body></html>\n");
    my $pixels = draw('pixels.png', '-size', '2100x2100', 'xc:white');      # 4.41 MP
    my $under = draw('under.png', '-size', '1900x1900', 'xc:white');        # 3.61 MP
    my $frames = draw('frames.gif', '-delay', '5', '-size', '16x16', map({ "xc:gray" . ($_ * 8) } 1 .. 12));
    my $tenframes = draw('ten.gif', '-delay', '5', '-size', '16x16', map({ "xc:gray" . ($_ * 8) } 1 .. 10));
    for my $o ([nginx => 'bytes'], [lighttpd => 'bytes']) {
        my $st = start_stack(server => $o->[0], mode => $o->[1], avatars => $av,
            args => ['--key-file', key_file(), '--upload-max', $LIMIT, '--max-pixels', 4000000, '--max-frames', 10]);
        my $u = $st->{url};
        my $before = id_bytes($av, 1000);
        my $q = sub { sign_cli(PUT => 1000) };
        note "limits: $o->[0] $o->[1]";
        # file                  status  error names
        my @refused = (
            ["$UTMP/over.png",      413, qr/upload-max|max-bytes|size|large/],
            ["$UTMP/text.txt",      415, qr/type/],
            ["$UTMP/script.svg",    415, qr/type/],
            ["$UTMP/page.html",     415, qr/type/],
            ["$UTMP/half.png",      422, qr/decode/],
            [$pixels,               422, qr/max-pixels/],
            [$frames,               422, qr/max-frames/],
        );
        for my $c (@refused) {
            my ($f, $status, $like) = @$c;
            is_error(put_file($u, 1000, $q->(), $f), $status, $like,
                "$o->[0]: PUT " . ($f =~ s{.*/}{}r) . ' (' . (-s $f) . " bytes): $status");
            ok id_bytes($av, 1000) eq $before && !tmp_files($av), 'avatar 1000 untouched, no temporary file';
        }
        # What is just inside each limit is stored.
        for my $c (["$UTMP/exact.png", $img{png2}], [$under, ['', 'image/png', 1024, 1024]],
            [$tenframes, ['', 'image/gif', 16, 16]]) {
            my ($f, $want) = @$c;
            my $r = put_file($u, 1000, $q->(), $f);
            is_stored($r, 1000, 200, $want, "$o->[0]: PUT " . ($f =~ s{.*/}{}r) . ' (' . (-s $f) . ' bytes): 200');
            is_served($st, $av, 1000, $r->{json} // {}, 'served');
        }
        # 411: a PUT with neither Content-Length nor chunked encoding.
        # nginx passes it on with no CONTENT_LENGTH and the responder
        # answers 411; lighttpd gives every request a CONTENT_LENGTH (0
        # here), so the responder sees an empty body, which is not an
        # image (415). Content-Length: 0 is a length: an empty body, 415.
        {
            my $r = http($st->{port}, PUT => '/1000?' . $q->());
            $r->{json} = json_of($r->{body});
            if ($o->[0] eq 'nginx') {
                is_error($r, 411, qr/length/i, "$o->[0]: PUT without a length: 411");
            } else {
                is_error($r, 415, qr/type/, "$o->[0]: PUT without a length: an empty body, 415");
            }
            is_error(put_file($u, 1000, $q->(), "$UTMP/empty"), 415, qr/type/, "$o->[0]: PUT with Content-Length: 0: 415");
        }
        # A body far over every limit: refused, and the front server and the
        # responder still serve.
        {
            spew("$UTMP/huge.bin", "\x89PNG\r\n\x1a\n" . ("\0" x (12 * 1024 * 1024)));
            my $r = put_file($u, 1000, $q->(), "$UTMP/huge.bin");
            is $r->{status}, 413, "$o->[0]: a 12 MiB body: 413";
            is get_url($u, '/1001')->{status}, 200, 'a good GET afterwards: 200';
        }
        stop_stack($st);
    }
}

# ---- the signing recipes of docs/signing.md, against a real server ------------------

{
    my $doc = slurp("$ROOT/docs/signing.md");
    my %code;
    while ($doc =~ /^```(\w+)\n(.*?)^```$/msg) { $code{$1} = $2 }
    my $tmp = tempdir('e2e-rcp-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $av = make_avatars($tmp);
    my $st = start_stack(server => 'nginx', mode => 'bytes', avatars => $av, args => ['--key-file', key_file()]);
    # language  interpreter         file
    my @recipes = (['python', '/usr/bin/python3', 'sign.py'], ['php', 'php', 'sign.php']);
    my $id = 4000;
    for my $rc (@recipes) {
        my ($l, $interp, $file) = @$rc;
        ok defined $code{$l}, "docs/signing.md has a $l recipe" or next;
        spew("$tmp/$file", $code{$l});
        my $sign = sub {
            my ($m, $i) = @_;
            open my $p, '-|', $interp, "$tmp/$file", $m, $i, time + 600, key_file() or die "$interp: $!";
            my $q = <$p> // '';
            close $p;
            chomp $q;
            return $q;
        };
        my $r = put_file($st->{url}, $id, $sign->(PUT => $id), $img{jpeg}[0]);
        is_stored($r, $id, 201, $img{jpeg}, "$l recipe: PUT /$id: 201");
        is_served($st, $av, $id, $r->{json} // {}, "$l recipe: served");
        my $d = delete_id($st->{url}, $id, $sign->(DELETE => $id));
        is $d->{status}, 204, "$l recipe: DELETE /$id: 204";
        is_deeply [id_files($av, $id)], [], "$l recipe: deleted";
        # A negative id: the canonical decimal with its sign.
        my $rn = put_file($st->{url}, -7, $sign->(PUT => -7), $img{png2}[0]);
        is $rn->{status}, 201, "$l recipe: PUT /-7: 201";
        is delete_id($st->{url}, -7, $sign->(DELETE => -7))->{status}, 204, "$l recipe: DELETE /-7: 204";
        $id++;
    }
    stop_stack($st);
}

done_testing();

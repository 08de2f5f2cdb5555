#!/usr/bin/perl
# 73-upload-hostile: the hostile upload corpus (tests/corpus/uploads/, its
# expected statuses in MANIFEST) through a real server, nginx in bytes mode:
# every file gets its status; what is stored is served as the very bytes
# stored, of the type its magic says, whole, square, at most 1024 a side and
# without any metadata; what is refused leaves the previous avatar as it
# was; no temporary file is ever left; and after each upload the server
# still answers a good GET (redis' PING after each attack). Then clients
# that stop in the middle of a body: curl killed while nginx buffers it, and
# raw FastCGI peers talking to the responder's socket that close, abort or
# go silent mid-body, or announce a body over --upload-max.
use strict;
use warnings;
use FindBin;
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX qw(WNOHANG);
BEGIN { require "$FindBin::Bin/../lib/upload.pl" }
our ($ROOT, $BIN, $UTMP);

need_tools(qw(curl spawn-fcgi nginx convert identify));

my $corpus = "$ROOT/tests/corpus/uploads";
my $TIMEOUT = 3;    # --timeout of the stack: a silent peer is dropped after it

# MANIFEST (H5's, also read by tests/unit/test_image.c): one case a line,
# "FILE STATUS EXPECT [OPTION...]". STATUS is ok, 413, 415 or 422; EXPECT
# is TYPE:WxHxFRAMES for ok, else the limit the JSON error names. A file
# may have several lines, with limits other than the defaults; the server
# here runs with the defaults, so the one line without such a limit counts.
# Options that are checks (alpha, opaque, nometa, clean, pixel=) leave a
# line usable; every stored image here is checked for no metadata and
# clean bytes anyway.
my %LIMIT_OPTION = map { $_ => 1 } qw(max_bytes max_pixels max_frames max_side crop);
sub manifest {
    my (@m, %seen);
    open my $fh, '<', "$corpus/MANIFEST" or return ();
    while (<$fh>) {
        next if /^\s*(#|$)/;
        my ($name, $status, $expect, @opt) = split ' ';
        next if grep { /^(\w+)=/ && $LIMIT_OPTION{$1} } @opt;
        next if $seen{$name}++;
        push @m, [$name, $status, $expect];
    }
    return @m;
}

my %MIME = (png => 'image/png', jpg => 'image/jpeg', gif => 'image/gif', webp => 'image/webp');

my $tmp = tempdir('e2e-hostile-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $av = make_avatars($tmp);
my $st = start_stack(server => 'nginx', mode => 'bytes', avatars => $av, args => ['--key-file', key_file()]);
my ($u, $port) = ($st->{url}, $st->{port});
my $good = slurp("$av/1001.png");

# The PING: a good GET answered with the right bytes.
sub ping {
    my ($what) = @_;
    my $g = get_url($u, '/1001');
    ok $g->{status} == 200 && $g->{body} eq $good, "after $what: a good GET is answered";
}

# ---- the corpus ---------------------------------------------------------------------------

my @m = manifest();
ok @m >= 50, 'MANIFEST gives at least 50 files a status at the default limits (' . scalar(@m) . ')';
if (opendir my $dh, $corpus) {
    my %listed = map { $_->[0] => 1 } @m;
    my @unlisted = grep { !/^\./ && $_ ne 'MANIFEST' && !$listed{$_} } readdir $dh;
    is "@unlisted", '', 'every file of the corpus has a status at the default limits';
}

my $ID = 3000;
for my $c (@m) {
    my ($name, $want, $expect) = @$c;
    my $f = "$corpus/$name";
    ok -f $f, "MANIFEST: $name is in the corpus" or next;
    my $before = id_bytes($av, $ID);
    my $r = put_file($u, $ID, sign_cli(PUT => $ID), $f);
    subtest "$name: $want $expect" => sub {
        if ($want eq 'ok') {
            my ($ext, $w, $h, $frames) = $expect =~ /^(\w+):(\d+)x(\d+)x(\d+)$/ or die "MANIFEST: $name: $expect";
            # 201 or 200 only says whether the id had an avatar before.
            ok $r->{status} == 200 || $r->{status} == 201, "stored (got $r->{status})"
                or diag "$r->{head}\n$r->{body}";
            my $j = $r->{json} // {};
            is "$j->{type} $j->{width}x$j->{height}", "$MIME{$ext} ${w}x$h", 'answered type and size' if $j->{type};
            my $disk = id_bytes($av, $ID) // '';
            ok length($disk) && length($disk) == ($j->{bytes} // -1), 'one file, of the answered size';
            my $g = get_url($u, $j->{url} // "/$ID");
            ok $g->{status} == 200 && $g->{body} eq $disk, 'served by its URL: the stored bytes';
            is hdr($g, 'Content-Type'), $MIME{$ext}, 'served as ' . $MIME{$ext};
            my $i = image_info($disk);
            is "$i->{type} $i->{width}x$i->{height}x$i->{frames}", "$MIME{$ext} ${w}x${h}x$frames",
                'the bytes are that type, size and frame count';
            ok $i->{whole}, 'decodes whole';
            is $i->{exif}, '', 'no EXIF';
            unlike $disk, qr/Exif\0\0|GPS|<x:xmpmeta|<script|<html|PK\x03\x04/i, 'no metadata, markup or archive bytes';
        } else {
            is $r->{status}, $want, "status $want" or diag "$r->{head}\n$r->{body}";
            like $r->{json}{error} // '', qr/\Q$expect\E/, "a JSON error naming $expect" or diag $r->{body};
            ok((id_bytes($av, $ID) // '') eq ($before // ''), 'the previous avatar is as it was');
        }
        is_deeply [tmp_files($av)], [], 'no temporary file';
    };
    ping($name);
}

# ---- clients that stop in the middle of a body -----------------------------------------

# A stack whose --timeout is short, so a silent peer is dropped soon (the
# corpus ran with the default: --timeout also bounds the wait for a job).
stop_stack($st);
$st = start_stack(server => 'nginx', mode => 'bytes', avatars => $av,
    args => ['--key-file', key_file(), '--timeout', $TIMEOUT]);
($u, $port) = ($st->{url}, $st->{port});

my $big = png_of_size(slurp(draw('base.png', '-size', '64x64', 'gradient:cyan-black')), 1_000_000);
spew("$UTMP/big.png", $big);
my $old = slurp("$av/1000.png");
my $sock = "$st->{run}/avatar.sock";

sub intact {
    my ($what) = @_;
    subtest "$what: the old avatar is intact, no temporary file" => sub {
        is_deeply [id_files($av, 1000)], ['1000.png'], 'still 1000.png alone';
        ok((id_bytes($av, 1000) // '') eq $old, 'the same bytes');
        ok get_url($u, '/1000')->{body} eq $old, 'and served';
        is_deeply [tmp_files($av)], [], 'no temporary file';
    };
    ping($what);
}

# curl sending 1 MB at 100 KB/s, killed after half a second: nginx holds
# the partial body and drops it.
{
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        { exec 'curl', '-s', '--limit-rate', '100k', '-T', "$UTMP/big.png", "$u/1000?" . sign_cli(PUT => 1000) }
        POSIX::_exit(127);
    }
    sleep 0.5;
    kill 'KILL', $pid;
    waitpid $pid, 0;
    intact('curl killed mid-body');
}

# Raw FastCGI peers on the responder's socket: the responder reads the
# body itself here, with no front server to buffer it.
{
    my $half = substr($big, 0, 400_000);
    my $s = fcgi_put_start($sock, 1000, sign_cli(PUT => 1000), length $big, $half);
    close $s;
    sleep 0.3;
    intact('FastCGI peer closed mid-body');

    $s = fcgi_put_start($sock, 1000, sign_cli(PUT => 1000), length $big, $half);
    $s->syswrite(fcgi_record(2, ''));    # ABORT_REQUEST
    my ($out, $closed) = fcgi_drain($s, 10);
    close $s;
    my ($stdout) = fcgi_stdout($out);
    isnt cgi_status($stdout), 200, 'ABORT_REQUEST mid-body: no success answered';
    intact('FastCGI peer aborted mid-body');

    # Silent mid-body: the responder drops it after --timeout, and serves
    # everyone else meanwhile.
    my $t0 = time;
    $s = fcgi_put_start($sock, 1000, sign_cli(PUT => 1000), length $big, $half);
    ping('a peer gone silent mid-body (while it is silent)');
    ($out, $closed) = fcgi_drain($s, 4 * $TIMEOUT + 10);
    ok $closed, sprintf('the silent peer is dropped (after %.1f s; --timeout %d)', time - $t0, $TIMEOUT);
    close $s;
    intact('FastCGI peer silent mid-body');

    # A body announced over --upload-max (default 8 MiB): 413 before a
    # byte of it is sent.
    $s = fcgi_put_start($sock, 1000, sign_cli(PUT => 1000), 8 * 1024 * 1024 + 1, '');
    ($out, $closed) = fcgi_drain($s, 10);
    close $s;
    my ($o413, $end) = fcgi_stdout($out);
    is cgi_status($o413), 413, 'CONTENT_LENGTH over --upload-max: 413 at once, no body sent';
    like $o413, qr/"error"/, 'with a JSON error';
    intact('a body announced over the limit');

    # A PUT without CONTENT_LENGTH: 411, with a JSON error.
    $s = fcgi_put_start($sock, 1000, sign_cli(PUT => 1000), undef, '');
    $s->syswrite(fcgi_record(5, ''));
    ($out, $closed) = fcgi_drain($s, 10);
    close $s;
    my ($o411) = fcgi_stdout($out);
    is cgi_status($o411), 411, 'a PUT without CONTENT_LENGTH: 411';
    like $o411, qr/"error":"[^"]*length/i, 'with a JSON error naming the length';
    intact('a PUT without a length');

    # A body longer than announced, and one shorter (ended early by an
    # empty STDIN record): refused, never stored.
    for my $c (['longer', 1000, substr($big, 0, 5000)], ['shorter', 400_000, substr($big, 0, 5000)]) {
        my ($what, $claim, $part) = @$c;
        $s = fcgi_put_start($sock, 1000, sign_cli(PUT => 1000), $claim, $part);
        $s->syswrite(fcgi_record(5, ''));
        ($out, $closed) = fcgi_drain($s, 10);
        close $s;
        my ($o) = fcgi_stdout($out);
        my $status = cgi_status($o);
        ok $status >= 400 && $status < 500, "a body $what than CONTENT_LENGTH: a 4xx (got $status)";
        intact("a body $what than announced");
    }
}

stop_stack($st);

# ---- a peer that hangs up while its answer arrives -------------------------------------

# The read workers are stopped (SIGSTOP) while the upload process works,
# so the reply and the peer's hang-up wait together and come out of one
# epoll_wait: the worker must handle the second event of a connection the
# first one closed without closing it again (a double close underflows
# the connection count and frees the connection twice), and must never
# act on another connection that reused it.
{
    my $st3 = start_stack(server => 'nginx', mode => 'bytes', avatars => $av, args => ['--key-file', key_file()]);
    my $sock3 = "$st3->{run}/avatar.sock";
    my $img = slurp(draw('hangup.jpg', '-size', '1600x1600', 'gradient:navy-orange', '-quality', '90'));
    my @ups = upload_pids($st3);
    my $c0 = cpu_ticks(@ups);
    my $s = fcgi_put_start($sock3, 1000, sign_cli(PUT => 1000), length $img, $img);
    $s->syswrite(fcgi_record(5, ''));
    ok poll_until(sub { cpu_ticks(@ups) > $c0 }, 30), 'the upload process works on the job';
    my @readers = grep { !kids_of($_) } kids_of(responder_pid($st3));
    kill 'STOP', @readers;
    ok poll_until(sub { slurp("$st3->{run}/avatar.log") =~ /upload: PUT 1000 /m }, 30),
        'the job is done while the read workers are stopped';
    close $s;
    sleep 0.2;
    kill 'CONT', @readers;
    my $g = get_url($st3->{url}, '/1001');
    ok $g->{status} == 200 && $g->{body} eq $good, 'afterwards a good GET is answered';
    # A reply and a hang-up in one epoll batch once closed the connection
    # twice (count below zero, a use after free at stop).
    stop_stack($st3);
    unlike slurp("$st3->{run}/avatar.log"), qr/stopping with \d{6,} connections/,
        'the connection count never goes below zero';
}

done_testing();

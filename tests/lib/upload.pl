# Helpers for the end-to-end tests of the write path (issue 11): key files
# and signed links, uploads with curl and with raw sockets, a raw FastCGI
# client that can stop in the middle of a body, test images drawn with
# ImageMagick, and what a served image really is (type by magic bytes,
# dimensions, frames, whether it decodes whole). Builds on e2e.pl (stacks,
# http, hdr, slurp, spew); nothing here knows how the responder works
# inside: only what a client, a browser or the directory shows.
use strict;
use warnings;
use Test::More;
use Digest::SHA qw(hmac_sha256_hex sha256_hex);
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use JSON::PP ();
use POSIX ();
use Time::HiRes ();

BEGIN { require Cwd; my $d = Cwd::abs_path(__FILE__); $d =~ s{[^/]+$}{}; require "${d}e2e.pl" }
use Util qw(kids_of);
our ($ROOT, $BIN);

# Two keys of a rotated key file: line 1 signs, both verify.
our $KEY1 = 'k1-' . ('4f' x 20);
our $KEY2 = 'k2-an-older-key-that-still-verifies-0002';
our $FOREIGN = 'k9-a-key-this-server-has-never-seen-00009';
our $UTMP = tempdir('upload-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# The key file of every stack with writes enabled.
sub key_file {
    my $f = "$UTMP/keys";
    spew($f, "$KEY1\n$KEY2\n") unless -e $f;
    return $f;
}

# "expires=E&sig=S" made here, for expiries the CLI would not sign.
sub sign_with {
    my ($key, $method, $id, $expires) = @_;
    return "expires=$expires&sig=" . hmac_sha256_hex("$method\n$id\n$expires", $key);
}

# "expires=E&sig=S" from `avatar.fcgi sign`, the way a site's operator makes one.
sub sign_cli {
    my ($method, $id, $ttl) = @_;
    my @cmd = ($BIN, 'sign', '--key-file', key_file(), $method, $id, defined $ttl ? $ttl : ());
    open my $p, '-|', @cmd or die "sign: $!";
    my $q = <$p> // '';
    close $p;
    chomp $q;
    $q =~ /^expires=\d+&sig=[0-9a-f]{64}$/ or die "avatar.fcgi sign @cmd[3..$#cmd]: \"$q\" (status $?)";
    return $q;
}

# Which options this avatar.fcgi knows, from --help. A test that needs an
# option the binary lacks fails with that reason instead of a stack that
# will not start.
sub has_options {
    my @want = @_;
    my $help = qx('$BIN' --help 2>&1);
    my @missing = grep { $help !~ /^\s*--\Q$_\E\b/m } @want;
    return 1 unless @missing;
    fail("$BIN --help lists " . join(', ', map {"--$_"} @missing));
    return 0;
}

# ---- requests -----------------------------------------------------------------

# Parses a header dump (curl -D): the last block, after any 100 Continue.
sub parse_head {
    my ($text) = @_;
    my @blocks = grep {/\S/} split /\r?\n\r?\n/, $text;
    my $r = { status => 0, headers => {}, head => $blocks[-1] // '' };
    my @lines = split /\r?\n/, $r->{head};
    my $first = shift(@lines) // '';
    $r->{status} = $1 if $first =~ m{^HTTP/\S+ (\d{3})};
    for (@lines) {
        push @{ $r->{headers}{ lc $1 } }, $2 if /^([^:]+):\s*(.*?)\s*$/;
    }
    return $r;
}

# Runs curl against $url with @args; returns {status, headers, head, body,
# json (decoded when the body is JSON)}. Never waits more than 60 s.
sub curl {
    my ($url, @args) = @_;
    # Per process: the race tests run many at once.
    my ($h, $b) = ("$UTMP/curl.$$.head", "$UTMP/curl.$$.body");
    unlink $h, $b;
    my @cmd = ('curl', '-sS', '-m', 60, '-o', $b, '-D', $h, @args, $url);
    open my $p, '-|', @cmd or die "curl: $!";
    local $/;
    my $out = <$p>;
    close $p;
    my $r = parse_head(slurp_or_empty($h));
    $r->{body} = slurp_or_empty($b);
    $r->{json} = json_of($r->{body});
    $r->{curl_status} = $?;
    return $r;
}

sub slurp_or_empty { -e $_[0] ? slurp($_[0]) : '' }

sub json_of {
    my ($body) = @_;
    return undef unless defined $body && $body =~ /^\s*\{/;
    return eval { JSON::PP->new->decode($body) };
}

# PUT FILE to $url/ID?QUERY with curl -T, as the README shows.
sub put_file {
    my ($url, $id, $query, $file, @args) = @_;
    return curl("$url/$id" . (defined $query ? "?$query" : ''), '-T', $file, @args);
}

sub delete_id {
    my ($url, $id, $query) = @_;
    return curl("$url/$id" . (defined $query ? "?$query" : ''), '-X', 'DELETE');
}

sub get_url { curl($_[0] . $_[1]) }

# Polls $cond every 20 ms for at most $secs seconds; returns whether it
# came true.
sub poll_until {
    my ($cond, $secs) = @_;
    my $end = Time::HiRes::time() + $secs;
    while (Time::HiRes::time() < $end) {
        return 1 if $cond->();
        Time::HiRes::sleep(0.02);
    }
    return $cond->() ? 1 : 0;
}

# ---- what is on disk and what is served ------------------------------------------

sub tmp_files {
    my ($dir) = @_;
    opendir my $dh, $dir or die "$dir: $!";
    my @f = sort grep {/^\.tmp-/} readdir $dh;
    return @f;    # a count in scalar context
}

# The names of an id in the directory (ID.png, ID.jpg...).
sub id_files {
    my ($dir, $id) = @_;
    opendir my $dh, $dir or die "$dir: $!";
    my @f = sort grep {/^\Q$id\E\.[a-z]+$/} readdir $dh;
    return @f;    # a count in scalar context
}

# The bytes of an id's one file; undef when it has none or several.
sub id_bytes {
    my ($dir, $id) = @_;
    my @f = id_files($dir, $id);
    return @f == 1 ? slurp("$dir/$f[0]") : undef;
}

sub magic_type {
    my ($b) = @_;
    return 'image/png'  if $b =~ /^\x89PNG\r\n\x1a\n/;
    return 'image/jpeg' if $b =~ /^\xff\xd8\xff/;
    return 'image/gif'  if $b =~ /^GIF8[79]a/;
    return 'image/webp' if $b =~ /^RIFF....WEBP/s;
    # An ISO-BMFF file whose major brand is AVIF (still image or sequence).
    return 'image/avif' if $b =~ /^....ftypavi[fs]/s;
    return 'unknown';
}

# What some bytes really are: {type (by magic), width, height, frames,
# whole (decodes without any warning), exif (EXIF properties, '' if none)}.
sub image_info {
    my ($bytes) = @_;
    my $f = "$UTMP/probe";
    spew($f, $bytes);
    my $i = { type => magic_type($bytes), width => 0, height => 0, frames => 0 };
    my @frames = grep {/\S/} split /\n/, qx(identify -format '%w %h\\n' '$f' 2>/dev/null);
    ($i->{width}, $i->{height}) = split ' ', $frames[0] if @frames;
    $i->{frames} = @frames;
    system("convert -regard-warnings '$f' null: >/dev/null 2>&1");
    $i->{whole} = $? == 0 && @frames > 0;
    $i->{exif} = qx(identify -format '%[EXIF:*]' '$f' 2>/dev/null) // '';
    return $i;
}

# Draws a test image into $UTMP with ImageMagick's convert; returns its path.
sub draw {
    my ($name, @args) = @_;
    my $f = "$UTMP/$name";
    system('convert', @args, $f) == 0 or die "convert @args $f: $?";
    return $f;
}

# A PNG of exactly $size bytes: $png with one tEXt chunk of padding before
# IEND (a valid PNG, so only its size can refuse it).
sub png_of_size {
    my ($png, $size) = @_;
    require Compress::Zlib;
    my $iend = substr($png, -12);
    my $head = substr($png, 0, -12);
    my $n = $size - length($png) - 12;
    die "png_of_size: $size is too small" if $n < 8;
    my $data = "Comment\0" . ('x' x ($n - 8));
    my $chunk = pack('N', length $data) . "tEXt$data" . pack('N', Compress::Zlib::crc32("tEXt$data"));
    my $out = $head . $chunk . $iend;
    die 'png_of_size: arithmetic' unless length($out) == $size;
    return $out;
}

# ---- raw FastCGI ---------------------------------------------------------------------

sub fcgi_record {
    my ($type, $content) = @_;
    my $pad = (8 - length($content) % 8) % 8;
    return pack('CCnnCx', 1, $type, 1, length $content, $pad) . $content . ("\0" x $pad);
}

sub fcgi_pairs {
    my (@kv) = @_;
    my $out = '';
    while (my ($k, $v) = splice @kv, 0, 2) {
        $out .= join '', map { length($_) < 128 ? chr(length $_) : pack('N', length($_) | 0x80000000) } $k, $v;
        $out .= $k . $v;
    }
    return $out;
}

# Opens a FastCGI connection to the responder's socket and sends a PUT's
# BEGIN_REQUEST and PARAMS announcing $claimed body bytes (no CONTENT_LENGTH
# when undef), then $part of the
# body in STDIN records. Returns the socket, still open: the caller stops
# there (closes it, sends ABORT_REQUEST, or just waits).
sub fcgi_put_start {
    my ($sock, $id, $query, $claimed, $part) = @_;
    my $s = IO::Socket::UNIX->new(Type => IO::Socket::UNIX::SOCK_STREAM(), Peer => $sock)
        or die "connect $sock: $!";
    my $p = fcgi_pairs(REQUEST_METHOD => 'PUT', REQUEST_URI => "/$id?$query", DOCUMENT_URI => "/$id",
        QUERY_STRING => $query, (defined $claimed ? (CONTENT_LENGTH => $claimed) : ()),
        SERVER_PROTOCOL => 'HTTP/1.1', REMOTE_ADDR => '127.0.0.1');
    my $msg = fcgi_record(1, pack('nCx5', 1, 0)) . fcgi_record(4, $p) . fcgi_record(4, '');
    for (my $o = 0; $o < length $part; $o += 32768) {
        $msg .= fcgi_record(5, substr($part, $o, 32768));
    }
    $s->syswrite($msg) == length $msg or die "fcgi write: $!";
    return $s;
}

# Waits at most $secs for the peer to close $s; returns whatever it sent
# and whether it closed.
sub fcgi_drain {
    my ($s, $secs) = @_;
    my ($buf, $sel, $end) = ('', IO::Select->new($s), Time::HiRes::time() + $secs);
    while (Time::HiRes::time() < $end) {
        next unless $sel->can_read(0.2);
        my $n = $s->sysread($buf, 65536, length $buf);
        return ($buf, 1) unless $n;
    }
    return ($buf, 0);
}

# The STDOUT stream of the records in $buf, and whether END_REQUEST came.
sub fcgi_stdout {
    my ($buf) = @_;
    my ($out, $end) = ('', 0);
    while (length($buf) >= 8) {
        my ($v, $type, $id, $len, $pad) = unpack('CCnnC', $buf);
        last if length($buf) < 8 + $len + $pad;
        $out .= substr($buf, 8, $len) if $type == 6;
        $end = 1 if $type == 3;
        substr($buf, 0, 8 + $len + $pad) = '';
    }
    return ($out, $end);
}

# The status of a responder's answer ("Status: 413 ..." or 200 when absent).
sub cgi_status {
    my ($out) = @_;
    return 0 if $out eq '';
    return $out =~ /^Status:\s*(\d{3})/mi ? $1 : 200;
}

# ---- processes -------------------------------------------------------------------

# The responder's pid (spawn-fcgi -n execs it: the first line of avatar.pid).
sub responder_pid {
    my ($st) = @_;
    open my $fh, '<', "$st->{run}/avatar.pid" or die "avatar.pid: $!";
    my ($pid) = split ' ', scalar <$fh>;
    return $pid;
}

# Upload processes: the children of the upload manager, which is the one
# child of the responder that has children of its own (read workers have
# none).
# A killed one that its manager has not reaped yet (a zombie) is not
# counted: it holds no job and will not run again.
sub upload_pids {
    my ($st) = @_;
    return grep { alive_pid($_) } map { kids_of($_) } kids_of(responder_pid($st));
}

# Whether a process exists and is not a zombie.
sub alive_pid {
    my ($state) = proc_stat($_[0]);
    return defined $state && $state ne 'Z' && $state ne 'X' ? 1 : 0;
}

# The fields of /proc/PID/stat after the command name (state first), or
# an empty list when the process is gone.
sub proc_stat {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return ();
    my $stat = <$fh> // return ();
    $stat =~ s/^.*\) //;
    return split ' ', $stat;
}

# CPU time (ticks) the processes have used so far.
sub cpu_ticks {
    my $t = 0;
    for my $pid (@_) {
        my @f = proc_stat($pid) or next;
        $t += $f[11] + $f[12];
    }
    return $t;
}

# Seconds a process has been running.
sub age_of {
    my ($pid) = @_;
    my $start = (proc_stat($pid))[19] // return -1;
    open my $up, '<', '/proc/uptime' or return -1;
    my ($uptime) = split ' ', scalar <$up>;
    return $uptime - $start / POSIX::sysconf(POSIX::_SC_CLK_TCK());
}

1;

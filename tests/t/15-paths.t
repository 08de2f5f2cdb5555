#!/usr/bin/perl
# Paths, spoken to avatar.fcgi directly over FastCGI (issue 9, defects 6-8):
#  - a symlinked avatar (to a file inside the directory) is served from the
#    cache like a plain file: strace counts the opens of its name; a link
#    retargeted outside the directory, directly or through a directory link
#    on the way, is refused at the very next request;
#  - the longest absolute --dir the responder accepts still gives a whole
#    X-Sendfile answer; one byte more stops start-up with exit 2 and one line
#    naming --dir and the limit;
#  - X-Sendfile names the file under --dir as the admin wrote it (made
#    absolute against the logical start-up directory), never the path with
#    symlinks resolved, so a front server's docroot written the same way
#    accepts it; a --dir whose "." / ".." cannot be read lexically is refused.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use Cwd qw(getcwd);
use POSIX qw(WNOHANG);
use Responder qw(bin start stop fcgi parse_response write_file wait_for children);

my ($STRACE) = map { "$_/strace" } grep { -x "$_/strace" } split /:/, $ENV{PATH};
plan skip_all => 'strace is not installed (tests/lib/ensure-deps test)' unless $STRACE;
plan skip_all => bin() . ' is not built' unless -x bin();
# Some responders below start in another directory.
$ENV{AVATAR_BIN} = Cwd::abs_path(bin());

my $tmp = tempdir('avatar-paths-XXXXXX', TMPDIR => 1, CLEANUP => 1);
# The read path refuses images cut short (sniff_whole): each ends with its
# format's end marker (PNG IEND chunk, JPEG EOI, GIF trailer).
my $IEND = "\0\0\0\0IEND\xae\x42\x60\x82";
my $PNG = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR" . ('p' x 100) . $IEND;
my $JPG = "\xff\xd8\xff\xe0\0\x10JFIF" . ('j' x 200) . "\xff\xd9";
my $GIF = "GIF89a\1\0\1\0" . ('g' x 50) . ';';
my $SECRET = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR SECRET" . ('s' x 40) . $IEND;

sub request {    # responder, uri -> (status, headers, body, client exit)
    my ($r, $uri) = @_;
    my ($raw, $rc) = fcgi($r, 'REQUEST_METHOD=GET', "DOCUMENT_URI=$uri", "REQUEST_URI=$uri");
    return (parse_response($raw), $rc);
}

# ---- defect 6: symlinked avatars are cached ---------------------------------

my $av = "$tmp/av";
my $out = "$tmp/outside";
mkdir $_ or die "$_: $!" for $av, $out, "$av/sub", "$out/sub";
write_file("$av/1000.png", $PNG);
write_file("$av/1001.png", $GIF);
write_file("$av/-1.png", $JPG);
write_file("$av/sub/x.png", $PNG);
write_file("$out/secret.png", $SECRET);
write_file("$out/sub/x.png", $SECRET);
symlink '1000.png', "$av/1006.png" or die;      # a link to a file beside it
symlink 'sub/x.png', "$av/1007.png" or die;     # through a directory inside
# The same file as 1000.png, reached from outside: a link retargeted there
# leads to the very file that was opened, yet it leads outside.
link "$av/1000.png", "$out/hard.png" or die "link: $!";

# The responder under strace: every openat/openat2 goes to a log, one line each.
my $trace = "$tmp/trace";
my $wrap = "$tmp/strace-avatar";
write_file($wrap, "#!/bin/sh\nexec $STRACE -f -qq -o \"\$TRACE\" -e trace=openat,openat2 " . bin() . " \"\$@\"\n");
chmod 0755, $wrap;

sub opens_of {    # trace file, name -> how many opens named it
    my ($file, $name) = @_;
    open my $fh, '<', $file or return -1;
    return scalar grep { /openat2?\(.*"\Q$name\E"/ } <$fh>;
}

my $N = 20;
my @traced;    # stopped at exit too, should a check die first
END { my $rc = $?; stop_traced($_) for grep { kill 0, $_->{pid} } @traced; $? = $rc }
for my $mode (qw(bytes x-sendfile)) {
    local $ENV{AVATAR_BIN} = $wrap;
    local $ENV{TRACE} = "$trace.$mode";
    # LeakSanitizer cannot run under ptrace; the other tests look for leaks.
    local $ENV{ASAN_OPTIONS} = 'detect_leaks=0:abort_on_error=0';
    my $r = start(dir => $av, args => ['--mode', $mode]);
    push @traced, $r;
    my %want = (1000 => $PNG, 1006 => $PNG, 1007 => $PNG);
    for my $id (sort keys %want) {
        my @got = map { [request($r, "/$id")] } 1 .. $N;
        my $good = grep {
            $_->[0] == 200 && ($mode eq 'bytes' ? $_->[2] eq $want{$id}
                : ($_->[1]{'x-sendfile'} // '') eq "$av/$id.png")
        } @got;
        is $good, $N, "$mode: $N x /$id answered with $id.png";
    }
    # id          what it becomes                                     answer
    my @retarget = (
        [1006, sub { relink("$out/hard.png", "$av/1006.png") },        '-1.png',   $JPG],
        [1006, sub { relink('1001.png', "$av/1006.png") },             '1006.png', $GIF],
        [1006, sub { relink("$out/secret.png", "$av/1006.png") },      '-1.png',   $JPG],
        [1007, sub { rename "$av/sub", "$av/sub.old" or die;
                     symlink "$out/sub", "$av/sub" or die },           '-1.png',   $JPG],
    );
    # Opens expected: one for the first answer; a served link is cached, a
    # refused one is not, so each request while it leads outside opens it.
    my %want_opens = (1000 => 1, 1006 => 1, 1007 => 1);
    my %refused;
    for my $c (@retarget) {
        my ($id, $change, $file, $body) = @$c;
        request($r, "/$id") for 1 .. 3;    # surely cached, if it ever is
        $want_opens{$id} += 3 if $refused{$id};
        $change->();
        $want_opens{$id}++;
        $refused{$id} = $file eq '-1.png';
        my ($st, $h, $b) = request($r, "/$id");
        my $ok = $st == 200 && ($mode eq 'bytes' ? $b eq $body : ($h->{'x-sendfile'} // '') eq "$av/$file");
        ok $ok, "$mode: /$id retargeted, the very next answer is $file"
            or diag "status $st, " . ($mode eq 'bytes' ? length($b) . ' bytes' : "X-Sendfile $h->{'x-sendfile'}");
        ok index($b, 'SECRET') < 0, "$mode: /$id: nothing from outside the directory";
    }
    # Restore for the next mode.
    unlink "$av/sub";
    rename "$av/sub.old", "$av/sub" or die;
    relink('1000.png', "$av/1006.png");
    is stop_traced($r), 0, "$mode: SIGTERM -> exit 0";
    unlike $r->{log_text}, qr/AddressSanitizer|LeakSanitizer|runtime error/, "$mode: no sanitizer report";
    like $r->{log_text}, qr/1006\.png: refused: leads outside/, "$mode: the refused link is logged";
    for my $id (qw(1000 1006 1007)) {
        my $got = opens_of("$trace.$mode", "$id.png");
        is $got, $want_opens{$id}, "$mode: $id.png opened $want_opens{$id} times: once for $N answers, "
            . 'then once a change or a refused request';
    }
}

# ---- defect 7: the longest --dir still gives a whole X-Sendfile answer ---------

my $LIMIT = 951;    # CONF_XSENDFILE_DIR_MAX: 1024 - "/" - a 71-byte variant name - NUL

sub long_dir {    # an existing directory whose absolute path is $len bytes
    my ($len) = @_;
    my $d = "$tmp/long";
    mkdir $d;
    while (length($d) < $len) {
        my $room = $len - length($d) - 1;    # for the next name
        my $n = $room <= 200 ? $room : $room - 200 >= 2 ? 200 : 150;
        $d .= '/' . ('d' x $n);
        mkdir $d;
    }
    die "long_dir: " . length($d) . " != $len" unless length($d) == $len;
    write_file("$d/1000.png", $PNG);
    write_file("$d/-1.png", $JPG);
    return $d;
}

sub startup {    # args, cwd, env -> (exit status, stderr lines)
    my ($args, $cwd, $env) = @_;
    my $pid = open(my $fh, '-|') // die;
    if ($pid == 0) {
        chdir $cwd or exit 98 if $cwd;
        $ENV{$_} = $env->{$_} for keys %{ $env // {} };
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        exec bin(), @$args or exit 99;
    }
    my @lines = <$fh>;
    close $fh;
    return ($? >> 8, @lines);
}

{
    my $d = long_dir($LIMIT);
    my $r = start(dir => $d, args => ['--mode', 'x-sendfile']);
    my ($st, $h, $b, $rc) = request($r, '/1000');
    ok $rc == 0 && $st == 200 && ($h->{'x-sendfile'} // '') eq "$d/1000.png",
        "x-sendfile, a $LIMIT-byte --dir: a whole answer naming DIR/1000.png"
        or diag "client exit $rc, status $st";
    ($st, $h, $b, $rc) = request($r, '/999');
    ok $rc == 0 && ($h->{'x-sendfile'} // '') eq "$d/-1.png", "x-sendfile, a $LIMIT-byte --dir: the default avatar too";
    is stop($r), 0, "x-sendfile, a $LIMIT-byte --dir: SIGTERM -> exit 0";
    unlike $r->{log_text}, qr/header|AddressSanitizer|runtime error/, 'nothing logged about headers';

    my $d2 = long_dir($LIMIT + 1);
    my ($code, @lines) = startup(['--mode', 'x-sendfile', '--dir', $d2]);
    is $code, 2, 'x-sendfile, a ' . ($LIMIT + 1) . '-byte --dir: exit 2';
    ok @lines == 1 && $lines[0] =~ /--dir/ && $lines[0] =~ /\b$LIMIT\b/, '... one line naming --dir and the limit'
        or diag @lines;
    # The limit is x-sendfile's: bytes mode serves from a longer --dir.
    my $d3 = long_dir(1020);
    $r = start(dir => $d3, args => ['--mode', 'bytes']);
    ($st, $h, $b, $rc) = request($r, '/1000');
    ok $rc == 0 && $st == 200 && $b eq $PNG, 'bytes, a 1020-byte --dir: served';
    is stop($r), 0, 'bytes, a 1020-byte --dir: SIGTERM -> exit 0';
}

# ---- defect 8: X-Sendfile names the file under --dir as written ----------------

{
    my $real = "$tmp/real";
    mkdir $real;
    mkdir "$real/inner";
    write_file("$real/1000.png", $PNG);
    write_file("$real/-1.png", $JPG);
    symlink $real, "$tmp/link" or die;
    symlink $tmp, "$tmp/cwdlink" or die;
    symlink "$real/inner", "$tmp/up" or die;
    # --dir                  cwd              PWD                X-Sendfile of /1000
    my @cases = (
        ["$tmp/link",          undef,           undef,             "$tmp/link/1000.png"],
        ["$tmp/link/",         undef,           undef,             "$tmp/link/1000.png"],
        ["$tmp//link/./",      undef,           undef,             "$tmp/link/1000.png"],
        ["$tmp/link/../real",  undef,           undef,             "$tmp/real/1000.png"],
        ['link',               $tmp,            $tmp,              "$tmp/link/1000.png"],
        ['./link/.',           $tmp,            $tmp,              "$tmp/link/1000.png"],
        ['link',               "$tmp/cwdlink",  "$tmp/cwdlink",    "$tmp/cwdlink/link/1000.png"],
        ['link',               "$tmp/cwdlink",  '/nonexistent',    "$tmp/link/1000.png"],
        ['real',               "$tmp/cwdlink",  "$tmp/cwdlink",    "$tmp/cwdlink/real/1000.png"],
    );
    my $here = getcwd();
    for my $c (@cases) {
        my ($d, $cwd, $pwd, $want) = @$c;
        chdir $cwd or die "$cwd: $!" if $cwd;
        my $r = start(dir => $d, args => ['--mode', 'x-sendfile'], env => { $pwd ? (PWD => $pwd) : () });
        chdir $here;
        my ($st, $h) = request($r, '/1000');
        is $h->{'x-sendfile'}, $want, "--dir $d" . ($cwd ? " from $cwd (PWD=$pwd)" : '') . ": X-Sendfile as written";
        stop($r);
    }
    # Read lexically, "$tmp/up/.." is $tmp; the kernel reads $real. A front
    # server would look in the wrong place: refused at start-up.
    my ($code, @lines) = startup(['--mode', 'x-sendfile', '--dir', "$tmp/up/.."]);
    ok $code == 2 && @lines == 1 && $lines[0] =~ /^avatar\.fcgi: --dir: \Q$tmp\E\/up\/\.\.: .*another directory/,
        '--dir with ".." after a symlink: exit 2, one line naming --dir' or diag "exit $code: @lines";
    ($code, @lines) = startup(['--mode', 'bytes', '--dir', "$tmp/up/..", '--socket', "$tmp/never/a.sock"]);
    unlike "@lines", qr/another directory/, '... only x-sendfile mode cares';
}

# strace outlives a SIGTERM of its own: stop the responder under it, and
# strace ends with the responder's exit status.
sub stop_traced {
    my ($r) = @_;
    my ($kid) = children($r->{pid});
    kill 'TERM', $kid if $kid;
    my $st = -1;
    wait_for(sub { my $w = waitpid($r->{pid}, WNOHANG); $st = $? if $w == $r->{pid}; $w == $r->{pid} }, 30)
        or kill 'KILL', $r->{pid}, $kid // ();
    $r->{log_text} = do { local $/; open my $fh, '<', $r->{log}; <$fh> // '' };
    return $st;
}

sub relink {    # target, link: replaced atomically, as ln -sfn with rename does
    my ($target, $link) = @_;
    unlink "$link.new";
    symlink $target, "$link.new" or die "$link.new: $!";
    rename "$link.new", $link or die "$link: $!";
}

done_testing();

#!/usr/bin/perl
# 76-variants-batch: "avatar.fcgi variants" over a small tree. Every
# variant an original needs is made, with its exact pixel size and the
# current original's tag in its name; a re-run makes nothing; a refused
# original is named and does not stop the others; --prune removes the
# variants of gone and changed originals and old temporary files, and
# nothing else (never through a symlink, never outside DIR/.v); the bar
# appears on a terminal only; Ctrl-C stops cleanly and the next run
# resumes; bad options exit 2 with one line.
use strict;
use warnings;
use lib 'tests/lib';
use File::Temp qw(tempdir);
use POSIX ();
use Test::More;
use Responder qw(bin);
use Util qw(ROOT slurp spew wait_for wait_exit);

my $bin = bin();
-x $bin or BAIL_OUT("$bin is not built; run make test");
my $tmp = tempdir('avatar-variants-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $dir = "$tmp/av";
mkdir $dir or die "$dir: $!";

# Runs the command; returns (exit status, stdout, stderr).
sub run_cmd {
    my @args = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', "$tmp/out" or die;
        open STDERR, '>', "$tmp/err" or die;
        exec $bin, 'variants', @args or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    return ($? >> 8, slurp("$tmp/out"), slurp("$tmp/err"));
}

sub vips { system('vips', @_) == 0 or die "vips @_: failed" }

# The originals: id, file, stored type's extension, width, height.
my @orig = (
    [ -1,   '-1.png',   '.png',  64,  64 ],
    [ 1000, '1000.png', '.png',  64,  64 ],
    [ 1001, '1001.png', '.jpg',  64,  64 ],	# a JPEG named .png
    [ 1002, '1002.gif', '.gif',  48,  48 ],
    [ 10,   '10.jpg',   '.jpg', 512, 512 ],
    [ 11,   '11.png',   '.png', 200, 100 ],	# not square: fitted, not cropped
    [ 12,   '12.webp',  '.webp', 100, 100 ],
);
for my $f (qw(-1.png 1000.png 1001.png 1002.gif)) {
    spew("$dir/$f", slurp(ROOT . "/avatars/$f"));
}
vips('resize', ROOT . '/avatars/1001.png', "$dir/10.jpg", '8');
vips('resize', ROOT . '/avatars/1000.png', "$dir/11.png", '3.125', '--vscale', '1.5625');
vips('resize', ROOT . '/avatars/1000.png', "$dir/12.webp", '1.5625');
# A JPEG cut short: refused at decode.
my $jpeg = slurp("$dir/10.jpg");
spew("$dir/77.jpg", substr($jpeg, 0, int(length($jpeg) * 0.6)));
# A second name of id 10, after 10.jpg in the read path's order: one
# original, made from 10.jpg.
spew("$dir/10.webp", slurp("$dir/12.webp"));
# Not originals: a dot file, a directory, a name that is no canonical id.
spew("$dir/.5.png", slurp("$dir/1000.png"));
mkdir "$dir/6.png";
spew("$dir/007.png", slurp("$dir/1000.png"));
spew("$dir/8.PNG", slurp("$dir/1000.png"));

my @sizes = (32, 64, 128);
my @opts = ('--dir', $dir, '--sizes', join(',', @sizes), '--formats', 'webp', '--jobs', '2');

sub tag_of {
    my ($file) = @_;
    my ($size, $sec, $ns) = qx{stat -c '%s %.9Y' '$file'} =~ /^(\d+) (\d+)\.(\d{9})$/
        or die "stat $file";
    return sprintf('%x-%x', $size, $sec * 1000000000 + $ns);
}

# Every file an original needs: [name under .v, width, height].
sub wanted {
    my ($o) = @_;
    my ($id, $file, $ext, $w, $h) = @$o;
    my $tag = tag_of("$dir/$file");
    my @fmts = $ext eq '.webp' ? ('.webp') : ($ext, '.webp');
    my @want;
    for my $s (@sizes) {
        my $long = $w > $h ? $w : $h;
        my ($vw, $vh) = $s >= $long ? ($w, $h) :
            (int($w * $s / $long + 0.5), int($h * $s / $long + 0.5));
        push @want, [ "$s/$id.$tag$_", $vw, $vh ] for @fmts;
    }
    push @want, [ "full/$id.$tag.webp", $w, $h ] if $ext ne '.webp';
    return @want;
}

# "WxH" of each file, from one vipsheader run ("FILE: WxH uchar, ...");
# a file it cannot read has no entry.
sub dims {
    my %d;
    open(my $p, '-|', 'vipsheader', @_) or die "vipsheader: $!";
    while (<$p>) {
        $d{$1} = "$2x$3" if /^(.*): (\d+)x(\d+) /;
    }
    close($p);
    return \%d;
}

sub check_all {
    my ($label) = @_;
    my @want = map { wanted($_) } @orig;
    my $d = dims(grep { -e } map { "$dir/.v/$_->[0]" } @want);
    for my $v (@want) {
        my ($name, $w, $h) = @$v;
        is($d->{"$dir/.v/$name"}, "${w}x$h", "$label: .v/$name is ${w}x$h");
    }
    return scalar(@want);
}

my $summary = qr/^variants: (\d+) originals, (\d+) made, (\d+) kept, (\d+) failed, (\d+) refused in \d+\.\d s \(\d+ variants\/s, \d+\/s per core\)\n\z/;

# The first run: everything made, the truncated JPEG named.
my $total = 0;
$total += scalar(wanted($_)) for @orig;
{
    my ($rc, $out, $err) = run_cmd(@opts);
    is($rc, 0, 'first run: exit 0 (a refused original does not fail the run)');
    like($out, $summary, 'first run: the summary line') or diag($out);
    my @n = $out =~ $summary;
    is_deeply(\@n, [ 8, $total, 0, 0, 1 ], "first run: 8 originals, $total made, 1 refused");
    like($err, qr{^avatar\.fcgi: variants: \Q$dir\E/77\.jpg: refused: \S+ \(\d{3}\)\n\z},
        'first run: one stderr line names the refused file and why') or diag($err);
    unlike($err, qr/\r|ETA/, 'first run: no bar when stderr is not a terminal');
    is(check_all('first run'), $total, "first run: all $total variants checked");
    my @made = glob("$dir/.v/*/77.*");
    is(scalar(@made), 0, 'first run: nothing made for the refused file');
}

# The re-run only looks.
{
    my ($rc, $out) = run_cmd(@opts);
    my @n = $out =~ $summary;
    is($rc, 0, 're-run: exit 0');
    is_deeply(\@n, [ 8, 0, $total, 0, 1 ], "re-run: 0 made, $total kept") or diag($out);
}

# --prune: 1002 deleted, 1000 rewritten (a new tag), planted old and
# foreign files; only the gone and stale variants and the old temporary
# file may go.
{
    my @gone = map { $_->[0] } wanted($orig[3]);
    unlink "$dir/1002.gif" or die;
    my @old1000 = map { $_->[0] } wanted($orig[1]);
    @orig = grep { $_->[0] != 1002 } @orig;
    system('touch', '-d', '2001-02-03 04:05:06', "$dir/1000.png") == 0 or die;
    spew("$dir/.v/64/1000.71-1.png", 'old');		# an old tag of 1000
    spew("$dir/.v/64/.tmp-1000-x-1-old", 'x');
    system('touch', '-d', '-2 minutes', "$dir/.v/64/.tmp-1000-x-1-old") == 0 or die;
    spew("$dir/.v/64/.tmp-1000-x-1-new", 'x');		# a writer may still hold it
    spew("$dir/.v/64/notes.txt", 'not a variant name');
    mkdir "$tmp/outside";
    spew("$tmp/outside/5.1-1.png", 'outside');
    symlink("$tmp/outside/5.1-1.png", "$dir/.v/64/5.1-1.png") or die;	# a variant name, no original
    symlink("$tmp/outside", "$dir/.v/999") or die;		# never walked into
    spew("$dir/5.1-1.png", 'beside DIR/.v');

    my ($rc, $out, $err) = run_cmd(@opts, '--prune');
    is($rc, 0, 'prune: exit 0');
    my ($first, $second) = split /\n/, $out, 2;
    my @n = "$first\n" =~ $summary;
    my $new = scalar(@old1000);
    is_deeply(\@n, [ 7, $new, $total - 2 * $new, 0, 1 ], "prune: 1000's $new new variants made first")
        or diag($out);
    my $stale = @gone + @old1000 + 2;
    is($second, "prune: " . ($stale + 1) . " removed ($stale stale variants, 1 temporary files)\n",
        'prune: the count line');
    ok(!-e "$dir/.v/$_", "prune: removed .v/$_") for @gone, @old1000, '64/1000.71-1.png',
        '64/5.1-1.png', '64/.tmp-1000-x-1-old';
    ok(-e $_, "prune: kept $_") for "$dir/.v/64/.tmp-1000-x-1-new", "$dir/.v/64/notes.txt",
        "$tmp/outside/5.1-1.png", "$dir/5.1-1.png", "$dir/.v/999";
    check_all('after prune');
}

# The bar, on a terminal (script gives the command a pty).
{
    my $cmd = join ' ', map { "'$_'" } $bin, 'variants', @opts;
    my $pty = qx{script -qec "$cmd" /dev/null 2>&1};
    is($? >> 8, 0, 'bar: exit 0 under a pty');
    like($pty, qr/\r\[#{20}\] 7\/7 100%  \d+\.\d ids\/s  0 made  ETA 0:00:00\e\[K\r?\nvariants: 7 originals, 0 made/,
        'bar: the full bar, counts, rate and ETA stay above the summary') or diag($pty);
    like($pty, qr/\r\e\[Kavatar\.fcgi: variants: \Q$dir\E\/77\.jpg: refused/,
        'bar: cleared before a message');
}

# Ctrl-C (SIGINT to the whole process group, as a terminal sends it):
# each worker finishes its id, nothing is left half written, the next
# run resumes.
{
    my $big = "$tmp/big";
    mkdir $big;
    vips('resize', ROOT . '/avatars/1001.png', "$tmp/big.jpg", '16');
    spew("$big/$_.jpg", slurp("$tmp/big.jpg")) for 1 .. 12;
    my $pid = fork // die;
    if ($pid == 0) {
        POSIX::setsid();
        open STDOUT, '>', "$tmp/int.out" or die;
        open STDERR, '>', "$tmp/int.err" or die;
        exec $bin, 'variants', '--dir', $big, '--jobs', '2' or POSIX::_exit(127);
    }
    ok(wait_for(sub { my @f = glob("$big/.v/*/*"); @f > 0 }, 30), 'interrupt: the run has started');
    kill 'INT', -$pid;
    my $st = wait_exit($pid, 60);
    is($st >> 8, 1, 'interrupt: exit 1');
    my ($done) = slurp("$tmp/int.out") =~ /^variants: interrupted after (\d+) of 12 originals, /;
    ok(defined $done && $done < 12, 'interrupt: the summary says so, and no new id was started')
        or diag(slurp("$tmp/int.out"));
    like(slurp("$tmp/int.err"), qr/stopping: each worker finishes its current id/,
        'interrupt: one line on stderr');
    my @left = glob("$big/.v/*/.tmp-*");
    is(scalar(@left), 0, 'interrupt: no temporary file left');
    my ($rc, $out) = run_cmd('--dir', $big, '--jobs', '2');
    my @n = $out =~ $summary;
    is($rc, 0, 'resume: exit 0');
    ok(@n && $n[2] > 0 && $n[1] + $n[2] == 12 * 11, 'resume: kept what was made, made the rest')
        or diag($out);
}

# Bad options: exit 2, one line naming the problem, nothing on stdout.
my @bad = (
    [ [qw(--jobs 0)],        '--jobs' ],
    [ [qw(--jobs 65)],       '--jobs' ],
    [ [qw(--jobs two)],      '--jobs' ],
    [ [qw(--jobs)],          '--jobs' ],
    [ [qw(--sizes 0)],       '--sizes' ],
    [ [qw(--formats gif)],   '--formats' ],
    [ [qw(--bogus)],         '--bogus' ],
    [ [qw(--prune=yes)],     '--prune' ],
    [ [qw(stray)],           'stray' ],
    [ ['--dir', "$tmp/none"], "$tmp/none" ],
    [ ['--dir', "$dir/1000.png"], '--dir' ],
);
for my $c (@bad) {
    my ($args, $text) = @$c;
    my @args = ('--dir', $dir, @$args);
    my ($rc, $out, $err) = run_cmd(@args);
    is($rc, 2, "bad: @$args: exit 2");
    like($err, qr/^avatar\.fcgi: [^\n]*\Q$text\E[^\n]*\n\z/, "bad: @$args: one line naming $text")
        or diag($err);
    is($out, '', "bad: @$args: nothing on stdout");
}
{
    my ($rc, $out) = run_cmd('--help');
    is($rc, 0, '--help: exit 0');
    like($out, qr/--jobs N.*--prune.*--sizes LIST/s, '--help: its own options, then the shared ones');
}

done_testing();

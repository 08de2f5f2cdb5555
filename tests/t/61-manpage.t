#!/usr/bin/perl
# 61-manpage: fcgi/avatar.fcgi.1 lints clean (mandoc -T lint, groff -ww)
# on every machine, renders with man -l, and documents exactly the options
# "avatar.fcgi --help" lists: the same flags in the same order, each with
# the same argument name, environment variable and default, and the same
# flags in the SYNOPSIS.
use strict;
use warnings;
use File::Temp qw(tempdir);
use FindBin;
use Test::More;

my $root = "$FindBin::Bin/../..";
# The shipped binary, as a user runs it (AVATAR_BIN overrides).
my $bin  = $ENV{AVATAR_BIN} // "$root/avatar.fcgi";
my $page = "$root/fcgi/avatar.fcgi.1";

-x $bin or BAIL_OUT("$bin is not built; run make test");
-f $page or BAIL_OUT("$page is missing");

sub run {
	my @cmd = @_;
	my $out = qx{@cmd 2>&1};
	return ($? >> 8, $out);
}

# Lint. "mandoc -W style" reports each cross reference (.Xr) it cannot find
# in the manual path, so against the system's path its verdict depends on
# which other packages the machine has (it once passed only where multiwatch
# happened to be installed). So it runs against a private manual path that
# holds an empty page for each reference below, one a line: the verdict is
# the same on every machine, and a reference not in this table (a typo, or
# a new one: add it here) is still reported. mandoc also notes that this
# private path has no mandoc.db ("outdated mandoc.db lacks"): those lines
# say nothing about the page and are ignored.
my @xr = map { [split] } grep { /\S/ } split /\n/, <<'EOT';
nginx          8
lighttpd       8
spawn-fcgi     1
multiwatch     1
cgi-fcgi       1
epoll          7
epoll_create1  2
listen         2
systemd.exec   5
systemd.socket 5
EOT
my $manpath = tempdir(CLEANUP => 1);
for (@xr) {
	my ($name, $sec) = @$_;
	mkdir "$manpath/man$sec";
	open(my $fh, '>', "$manpath/man$sec/$name.$sec") or die "$manpath: $!";
	close $fh;
}
{
	local $ENV{MANPATH} = $manpath;
	my ($rc, $out) = run('mandoc', '-T', 'lint', '-W', 'style', $page);
	my @msgs = grep { !/outdated mandoc\.db lacks / } split /\n/, $out;
	is($rc, 0, 'mandoc -T lint exits 0');
	is(join("\n", @msgs), '', 'mandoc -T lint -W style has nothing to say');
}
my ($grc, $gout) = run('groff', '-ww', '-z', '-mdoc', '-Tutf8', $page);
is("$grc:$gout", '0:', 'groff -ww -mdoc prints no warning');
my ($mrc, $mout) = run('env', 'MANWIDTH=80', 'man', '-l', $page);
ok($mrc == 0 && $mout =~ /^NAME\n\s+avatar\.fcgi .* FastCGI responder/m,
    'man -l renders the page') or diag($mout);

# --help: "  --flag ARG   text" then "  (ENV, default VALUE)".
my ($hrc, $help) = run($bin, '--help');
is($hrc, 0, '--help exits 0');
my (@hflags, %hopt);
my $last;
for (split /\n/, $help) {
	if (/^  (--[a-z][a-z-]*)(?: ([A-Z]+))?(?:\s|$)/) {
		push @hflags, $1;
		$hopt{$1} = { arg => lc($2 // ''), env => '', def => '' };
		$last = $1;
	} elsif (defined $last && /^\s+\((AVATAR_[A-Z_]+), default (.+)\)$/) {
		@{ $hopt{$last} }{qw(env def)} = ($1, $2);
	}
}
cmp_ok(scalar @hflags, '>=', 10, 'parsed the options of --help')
    or diag($help);

# The page, rendered without wrapping so each option's text is one line.
my $text = qx{mandoc -T ascii -O width=1000 '$page'};
$text =~ s/.\x08//g;
my ($opts) = $text =~ /^OPTIONS\n(.*?)^\S/ms;
my ($syn)  = $text =~ /^SYNOPSIS\n(.*?)^\S/ms;
ok(defined $opts && defined $syn, 'page has OPTIONS and SYNOPSIS');
$opts //= '';
$syn  //= '';
my (@mflags, %mopt);
undef $last;
for (split /\n/, $opts) {
	if (/^ {5}(--[a-z][a-z-]*)(?: (\S+))?\s*(.*)$/) {
		push @mflags, $1;
		$mopt{$1} = { arg => $2 // '', env => '', def => '' };
		$last = $1;
		$_ = $3;	# "--help  Print ..." keeps its text on the tag line
	}
	if (defined $last && /\b(AVATAR_[A-Z_]+), default (.+?)\.$/) {
		@{ $mopt{$last} }{qw(env def)} = ($1, $2);
	}
}

is_deeply(\@mflags, \@hflags, 'OPTIONS lists the --help flags, in order');
for my $f (@hflags) {
	is_deeply($mopt{$f}, $hopt{$f},
	    "$f: same argument name, variable and default");
}
my @sflags = $syn =~ /(--[a-z][a-z-]*)/g;
is_deeply([sort @sflags], [sort @hflags], 'SYNOPSIS names every flag once');

# Every variable the page names under OPTIONS is one --help names.
my %henv = map { $_->{env} => 1 } grep { $_->{env} } values %hopt;
my @stray = grep { !$henv{$_} } $opts =~ /\b(AVATAR_[A-Z_]+)/g;
is("@stray", '', 'no variable in the page that --help does not know');

# The sections an admin looks for.
for my $sec ('SYNOPSIS', 'OPTIONS', 'MODES', 'SIGNALS', 'EXIT STATUS',
    'FILES', 'EXAMPLES', 'SECURITY CONSIDERATIONS', 'STATUS AND METRICS') {
	like($text, qr/^\Q$sec\E$/m, "section $sec");
}
for my $needle ('spawn-fcgi -s', 'multiwatch -f', '"bin-path"',
    'X-Accel-Redirect', 'X-Sendfile', 'SIGHUP', 'LISTEN_FDS',
    'FCGI_WEB_SERVER_ADDRS', 'add_header X-Content-Type-Options nosniff always') {
	like($text, qr/\Q$needle\E/, "page mentions $needle");
}

done_testing();

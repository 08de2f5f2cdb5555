#!/usr/bin/perl
# 61-manpage: fcgi/avatar.fcgi.1 lints clean (mandoc -T lint, groff -ww),
# renders with man -l, and documents exactly the options "avatar.fcgi --help"
# lists: the same flags in the same order, each with the same argument name,
# environment variable and default, and the same flags in the SYNOPSIS.
use strict;
use warnings;
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

# Lint. mandoc also reports cross references missing from this host's
# mandoc.db ("outdated mandoc.db lacks nginx(8) entry"): that is a fact
# about the machine, not the page, so those lines alone are ignored.
SKIP: {
	skip 'mandoc is not installed (apt-get install mandoc)', 2
	    unless system('command -v mandoc >/dev/null') == 0;
	my ($rc, $out) = run('mandoc', '-T', 'lint', '-W', 'style', $page);
	my @msgs = grep { !/outdated mandoc\.db lacks / } split /\n/, $out;
	is($rc, 0, 'mandoc -T lint exits 0');
	is(join("\n", @msgs), '', 'mandoc -T lint -W style has nothing to say');
}
SKIP: {
	skip 'groff is not installed', 1
	    unless system('command -v groff >/dev/null') == 0;
	my ($rc, $out) = run('groff', '-ww', '-z', '-mdoc', '-Tutf8', $page);
	is("$rc:$out", '0:', 'groff -ww -mdoc prints no warning');
}
SKIP: {
	skip 'man is not installed', 1
	    unless system('command -v man >/dev/null') == 0;
	my ($rc, $out) = run('env', 'MANWIDTH=80', 'man', '-l', $page);
	ok($rc == 0 && $out =~ /^NAME\n\s+avatar\.fcgi .* FastCGI responder/m,
	    'man -l renders the page') or diag($out);
}

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

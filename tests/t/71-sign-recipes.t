#!/usr/bin/perl
# 71-sign-recipes: the signing recipes of docs/signing.md (Python, PHP,
# Node.js, Go), run exactly as the page shows them, print what
# "avatar.fcgi sign" prints for the same key file, method, id and expiry,
# and the page's test vector. A recipe that drifts from the server's
# message format, or a page edit that breaks one, fails here.
use strict;
use warnings;
use FindBin;
use File::Temp qw(tempdir);
use Test::More;

my $root = "$FindBin::Bin/../..";
my $bin  = $ENV{AVATAR_BIN} // "$root/avatar.fcgi";
my $page = "$root/docs/signing.md";

-x $bin or BAIL_OUT("$bin is not built; run make test");
open(my $fh, '<', $page) or BAIL_OUT("$page: $!");
my $doc = do { local $/; <$fh> };
close($fh);

my $tmp = tempdir('sign-recipes.XXXXXX', TMPDIR => 1, CLEANUP => 1);

# The fenced blocks, one per language, written out as the page has them.
my %lang = (
	# Debian's python3 (ensure-deps installs it), not whatever a version
	# manager's shim puts first in PATH.
	python => { file => 'sign.py',  cmd => ['/usr/bin/python3'] },
	php    => { file => 'sign.php', cmd => ['php'] },
	js     => { file => 'sign.js',  cmd => ['node'] },
	go     => { file => 'sign.go',  cmd => undef },	# built once below
);
my %code;
while ($doc =~ /^```(\w+)\n(.*?)^```$/msg) {
	$code{$1} = $2 if exists $lang{$1};
}
for my $l (sort keys %lang) {
	ok(defined $code{$l}, "docs/signing.md has a $l recipe") or next;
	my $path = "$tmp/$lang{$l}{file}";
	open(my $out, '>', $path) or die "$path: $!";
	print $out $code{$l};
	close($out);
	$lang{$l}{path} = $path;
}

# Go compiles once; its caches stay in the temporary directory.
$ENV{GOCACHE} = "$tmp/gocache";
$ENV{GOPATH}  = "$tmp/gopath";
$ENV{GOFLAGS} = '-mod=mod';
{
	my $out = qx{go build -o '$tmp/sign-go' '$tmp/sign.go' 2>&1};
	is($?, 0, 'the Go recipe builds with the standard library alone') or diag($out);
	$lang{go}{cmd} = ["$tmp/sign-go"];
	$lang{go}{path} = undef;
}

sub run {
	my @cmd = @_;
	open(my $p, '-|', @cmd) or return "cannot run $cmd[0]: $!";
	local $/;
	my $out = <$p> // '';
	close($p);
	return $? == 0 ? $out : "exit $?: $out";
}

sub recipe {
	my ($l, @args) = @_;
	my @cmd = (@{ $lang{$l}{cmd} }, grep { defined } $lang{$l}{path});
	return run(@cmd, @args);
}

sub keyfile {
	my ($name, $text) = @_;
	my $path = "$tmp/$name";
	open(my $out, '>:raw', $path) or die "$path: $!";
	print $out $text;
	close($out);
	return $path;
}

# The page's test vector, through every recipe.
my $vkey = keyfile('vector', "0123456789abcdef0123456789abcdef\n");
for my $v (['PUT', 1000, '87b4d8928ff06f40e017227698d499528ebcaa0731e39e7d40a36a4225c69e66'],
    ['DELETE', -1, '23bc533c833527d9adf5352da0643163b2ce2db83ab0657d20325224b6a60e0b']) {
	my ($m, $id, $sig) = @$v;
	like($doc, qr/\Q$sig\E/, "the page lists the vector for $m $id");
	for my $l (sort keys %lang) {
		is(recipe($l, $m, $id, 1700000000, $vkey), "expires=1700000000&sig=$sig\n",
		    "$l: test vector $m $id");
	}
}

# Key files a site may really have, and the requests signed with them.
my $k1 = '5f0c' . ('9a' x 30);			# openssl rand -hex 32
my $k2 = 'an-older-key-still-verifying-here-0001';
my @keyfiles = (
	['one hex key', "$k1\n"],
	['no final newline', $k1],
	['rotation, CRLF, blank lines', "\r\n\n$k1\r\n$k2\r\n\r\n"],
	['bytes beyond ASCII', "\xc3\xa9t\xc3\xa9-key-with-bytes-beyond-ascii\xc2\xa0\n$k2\n"],
);
my @requests = (['PUT', '1000'], ['DELETE', '-1'], ['PUT', '0'],
    ['DELETE', '9223372036854775807'], ['PUT', '-9223372036854775808']);

# Every request with the first file, one with each other file: each
# recipe start costs a fraction of a second.
for my $i (0 .. $#keyfiles) {
	my ($what, $text) = @{ $keyfiles[$i] };
	my $path = keyfile('keys', $text);
	for my $r ($i == 0 ? @requests : $requests[$i % @requests]) {
		my ($m, $id) = @$r;
		my $want = run($bin, 'sign', '--key-file', $path, $m, $id, '300');
		my ($e) = $want =~ /^expires=(\d+)&sig=[0-9a-f]{64}\n\z/;
		ok(defined $e, "avatar.fcgi sign $m $id ($what)") or do { diag($want); next };
		for my $l (sort keys %lang) {
			is(recipe($l, $m, $id, $e, $path), $want, "$l: $m $id, $what");
		}
	}
}

# The subcommand refuses what it cannot sign, with one line and status 2.
my $short = keyfile('short', "too-short\n");
for my $bad ([[$short, 'PUT', 1], 'line 1: key is 9 bytes'],
    [[$vkey, 'GET', 1], 'PUT and DELETE'],
    [[$vkey, 'PUT', '01'], 'not a canonical decimal id'],
    [[$vkey, 'PUT', 1, 0], 'TTL'],
    [["$tmp/none", 'PUT', 1], "$tmp/none: No such file"]) {
	my ($args, $msg) = @$bad;
	my ($kf, @rest) = @$args;
	my $out = qx{'$bin' sign --key-file '$kf' @rest 2>&1};
	ok($? >> 8 == 2 && $out =~ /\Q$msg\E/ && ($out =~ tr/\n//) == 1,
	    "sign refuses: $msg") or diag($out);
}

# The server itself: a bad key file or --max-ttl stops it at start-up with
# one line naming the option, the file and the problem, status 2.
for my $bad ([['--key-file', $short], "--key-file: $short: line 1: key is 9 bytes"],
    [['--key-file', "$tmp/none"], "--key-file: $tmp/none: No such file"],
    [['--key-file', $tmp], "--key-file: $tmp: not a regular file"],
    [['--key-file', $vkey, '--max-ttl', '0'], '--max-ttl: "0" is not an integer']) {
	my ($args, $msg) = @$bad;
	my $out = qx{'$bin' --dir '$tmp' @$args 2>&1 </dev/null};
	ok($? >> 8 == 2 && $out =~ /\Q$msg\E/ && ($out =~ tr/\n//) == 1,
	    "server refuses: $msg") or diag($out);
}

done_testing();

#!/usr/bin/perl
# 64-logging: stderr log lines are "avatar.fcgi[PID]: LEVEL: message" with
# the pid of the worker that wrote them; --log-level filters them; at info
# and above a successful request (hit, default, 304, HEAD) or a 405 writes
# nothing; request data (CR, LF, ESC, backslash, bytes above 0x7e) reaches
# the log only as \xNN, so a request can neither forge a line nor drive a
# terminal. Each case runs a fresh responder and compares its log with that
# of a run at the same level without requests.
use strict;
use warnings;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/../lib";
use Responder qw(built children wait_exit);
use POSIX qw(:sys_wait_h);
use Test::More;

my ($root, $bin, $client) = built();

my $tmp = tempdir(CLEANUP => 1);
my $dir = "$tmp/avatars";
mkdir $dir or die;
system('cp', "$root/avatars/-1.png", "$root/avatars/1000.png", "$dir/") == 0 or die;
# Not an image: served as missing, and worth a warning.
open my $fh, '>', "$dir/5.png" or die;
print $fh "<html>not an image</html>\n";
close $fh;

my $evil = "/a\r\nb\e[31mc\\d\x7f\xff";
my $evil_logged = '/a\x0d\x0ab\x1b[31mc\x5cd\x7f\xff';

# One case a line: --log-level, --workers, requests (method, DOCUMENT_URI,
# parameters...), and the lines the requests must add to the log (LEVEL and
# message; PID is checked separately). ETAG is the ETag of /1000.
my @cases = (
	[ 'info',  0, [[GET => '/1000'], [GET => '/424242'], [HEAD => '/1000'], [GET => '/abc'],
	               [GET => '/1000', 'HTTP_IF_NONE_MATCH=ETAG'], [POST => '/1000'], [GET => $evil]], [] ],
	[ 'info',  2, [[GET => '/1000'], [GET => '/424242'], [POST => '/1000']], [] ],
	[ 'warn',  0, [[GET => '/1000'], [GET => '/424242']], [] ],
	[ 'error', 0, [[GET => '/1000'], [GET => '/5']], [] ],
	[ 'info',  0, [[GET => '/5']], [ 'warn: 5\.png: refused: not a PNG, JPEG, GIF or WebP image' ] ],
	[ 'warn',  0, [[GET => '/5']], [ 'warn: 5\.png: refused: not a PNG, JPEG, GIF or WebP image' ] ],
	[ 'debug', 0, [[GET => '/1000'], [POST => '/1000']], [ 'debug: GET /1000 -> 200', 'debug: \S+ /1000 -> 405' ] ],
	[ 'debug', 0, [[GET => $evil]], [ 'debug: GET ' . quotemeta($evil_logged) . ' -> 200' ] ],
	[ 'debug', 2, [[GET => $evil]], [ 'debug: GET ' . quotemeta($evil_logged) . ' -> 200' ] ],
);

# Whatever happens, stop what this test started, workers included.
my %live;
END { kill 'KILL', $_, children($_) for keys %live; }
$SIG{$_} = sub { exit 1 } for qw(INT TERM HUP PIPE);


sub fcgi {
	my ($sock, $method, $uri, @params) = @_;
	open my $f, '-|', $client, '-t', '10', $sock, "REQUEST_METHOD=$method",
	    "DOCUMENT_URI=$uri", @params or die "$client: $!";
	binmode $f;
	local $/;
	my $out = <$f> // '';
	close $f;
	return $out;
}

# Runs the responder, sends the requests, stops it with SIGTERM and returns
# (its log lines, its pid, the pids of its workers, exit status).
sub session {
	my ($level, $workers, $requests) = @_;
	my $sock = "$tmp/s.sock";
	my $log = "$tmp/log";
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDERR, '>', $log or die;
		exec $bin, '--dir', $dir, '--socket', $sock, '--workers', $workers,
		    '--log-level', $level or die "exec: $!";
	}
	$live{$pid} = 1;
	for (1 .. 100) {
		last if -S $sock && children($pid) == $workers;
		select(undef, undef, undef, 0.05);
	}
	my @kids = children($pid);
	my $etag = '';
	for my $r (@$requests) {
		my ($method, $uri, @params) = @$r;
		if (grep { /ETAG/ } @params) {
			($etag) = fcgi($sock, 'GET', '/1000') =~ /^ETag: (.*?)\r$/m;
			s/ETAG/$etag \/\/ ''/e for @params;
		}
		fcgi($sock, $method, $uri, @params);
	}
	kill 'TERM', $pid;
	my $rc = wait_exit($pid, 10);
	kill 'KILL', $pid, children($pid) if $rc == -1;
	delete $live{$pid};
	open my $f, '<', $log or die;
	binmode $f;
	my $text = do { local $/; <$f> } // '';
	return ($text, $pid, \@kids, $rc);
}

my %baseline;
for my $case (@cases) {
	my ($level, $workers, $requests, $want) = @$case;
	my $name = "--log-level $level --workers $workers, "
	    . join(', ', map { my @r = @$_; $r[1] =~ s/([^\x21-\x7e])/sprintf '\\x%02x', ord $1/ge; "@r" } @$requests);

	# What this level writes without any request: start-up and stop lines.
	my $bkey = "$level $workers";
	unless ($baseline{$bkey}) {
		my ($text) = session($level, $workers, []);
		$baseline{$bkey} = { map { s/^avatar\.fcgi\[\d+\]: //r => 1 } split /\n/, $text };
	}

	my ($text, $pid, $kids, $rc) = session($level, $workers, $requests);
	is($rc, 0, "$name: exits 0 on SIGTERM");
	unlike($text, qr/[\x00-\x09\x0b-\x1f\x7f-\xff]/,
	    "$name: no control or 8-bit byte in the log");
	my @lines = split /\n/, $text;
	my @bad = grep { !/^avatar\.fcgi\[\d+\]: (?:error|warn|info|debug): \S/ } @lines;
	is(join("\n", @bad), '', "$name: every line is avatar.fcgi[PID]: LEVEL: message");

	my @added = grep { !$baseline{$bkey}{ s/^avatar\.fcgi\[\d+\]: //r } } @lines;
	my $ok = @added == @$want;
	for my $i (0 .. $#$want) {
		$ok &&= $added[$i] =~ /^avatar\.fcgi\[(\d+)\]: $want->[$i]$/;
	}
	ok($ok, "$name: logs exactly " . (@$want ? join(' / ', @$want) : 'nothing'))
	    or diag("added lines:\n" . join("\n", @added));

	# The pid is the worker's, not the supervisor's.
	my %workers = map { $_ => 1 } ($workers ? @$kids : ($pid));
	my @foreign = grep { !$workers{$_} } map { /^avatar\.fcgi\[(\d+)\]/ ? $1 : () } @added;
	is("@foreign", '', "$name: lines carry the pid of the process that served");
}

done_testing();

#!/usr/bin/perl
# 63-status-metrics: /status (JSON) and /metrics (Prometheus text) count
# exactly what a pool of two workers answered: the table below sends a known
# number of hits, defaults, 304s and 405s; both scrapes must show those
# numbers, summed over both workers (the scrape is made to land on a worker
# that did not serve every request), in the Prometheus exposition format
# (# HELP, # TYPE, _total counters). A scrape counts as a request but not as
# a hit. Killing a worker counts one restart and loses no count; SIGHUP
# replaces the workers, counts no restart and loses no count either.
use strict;
use warnings;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/../lib";
use Responder qw(built children wait_exit);
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Test::More;

my ($root, $bin, $client) = built();

my $tmp  = tempdir(CLEANUP => 1);
my $sock = "$tmp/avatar.sock";
my $log  = "$tmp/stderr";

# The requests: method, DOCUMENT_URI, extra parameters, expected status,
# the counter it adds to, how many times. ETAG and LASTMOD stand for the
# validators of /1000 (fetched first, and counted as one hit).
my @cases = map { [split /\s+\|\s+/] } grep { /\S/ && !/^#/ } split /\n/, <<'EOT';
GET    | /1000          | -                                   | 200 | hits               | 2
HEAD   | /1001          | -                                   | 200 | hits               | 1
GET    | /1002.gif      | -                                   | 200 | hits               | 1
GET    | /avatar/1000   | -                                   | 200 | hits               | 1
GET    | /424242        | -                                   | 200 | defaults           | 2
GET    | /abc           | -                                   | 200 | defaults           | 1
GET    | /01            | -                                   | 200 | defaults           | 1
GET    | /1000          | HTTP_IF_NONE_MATCH=ETAG             | 304 | not_modified       | 2
GET    | /1000.png      | HTTP_IF_MODIFIED_SINCE=LASTMOD      | 304 | not_modified       | 1
POST   | /1000          | -                                   | 405 | method_not_allowed | 2
DELETE | /424242        | -                                   | 405 | method_not_allowed | 1
EOT

# JSON field and Prometheus family of each counter.
my %family = (
	requests           => 'avatar_requests_total',
	hits               => 'avatar_hits_total',
	defaults           => 'avatar_defaults_total',
	not_modified       => 'avatar_not_modified_total',
	not_found          => 'avatar_not_found_total',
	method_not_allowed => 'avatar_method_not_allowed_total',
	errors             => 'avatar_errors_total',
	worker_restarts    => 'avatar_worker_restarts_total',
);

my $sup;
my %stopped;
END {
	kill 'CONT', keys %stopped;
	if ($sup) {
		my @kids = children($sup);
		kill 'TERM', $sup;
		wait_exit($sup, 10) == -1 and kill 'KILL', $sup;
		kill 'KILL', @kids;
	}
}
$SIG{$_} = sub { exit 1 } for qw(INT TERM HUP PIPE);


# The one-letter state of a process (R, S, T...), '' if it is gone.
sub state {
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/stat" or return '';
	my $line = <$fh> // '';
	return $line =~ /^\d+ \(.*\) (\S) / ? $1 : '';
}

# Sends one request; returns (status, headers hash, body).
sub fcgi {
	my ($method, $uri, @params) = @_;
	open my $fh, '-|', $client, '-t', '10', $sock, "REQUEST_METHOD=$method",
	    "DOCUMENT_URI=$uri", "REQUEST_URI=$uri", @params
	    or die "$client: $!";
	binmode $fh;
	local $/;
	my $out = <$fh> // '';
	close $fh;
	my ($head, $body) = split /\r\n\r\n/, $out, 2;
	my %h;
	for (split /\r\n/, $head // '') {
		$h{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
	}
	my ($status) = ($h{status} // '') =~ /^(\d{3})/;
	return ($status // 0, \%h, $body // '');
}

sub log_lines {
	open my $fh, '<', $log or return ();
	return grep { /\S/ } split /\n/, do { local $/; <$fh> };
}

sub status_json {
	my ($st, $h, $body) = fcgi('GET', '/status');
	return eval { decode_json($body) } // {};
}

$sup = fork // die "fork: $!";
if ($sup == 0) {
	open STDERR, '>', $log or die;
	exec $bin, '--dir', "$root/avatars", '--socket', $sock, '--workers', '2',
	    '--log-level', 'debug' or die "exec: $!";
}
for (1 .. 100) {
	last if -S $sock && children($sup) == 2;
	select(undef, undef, undef, 0.1);
}
ok(-S $sock, 'the responder listens') or BAIL_OUT(join "\n", log_lines());
my @workers = children($sup);
is(scalar @workers, 2, 'two workers run');

my ($st, $h) = fcgi('GET', '/1000');
is($st, 200, 'GET /1000 for its validators');
my %want = map { $_ => 0 } keys %family;
$want{hits}++;
my $sent = 1;
for my $c (@cases) {
	my ($method, $uri, $param, $status, $counter, $times) = @$c;
	my @p = $param eq '-' ? () : ($param);
	s/ETAG/$h->{etag} \/\/ ''/e, s/LASTMOD/$h->{'last-modified'} \/\/ ''/e for @p;
	my $ok = 0;
	for (1 .. $times) {
		my ($got) = fcgi($method, $uri, @p);
		$ok++ if $got == $status;
	}
	is($ok, $times, "$method $uri @p: $status x $times");
	$want{$counter} += $times;
	$sent += $times;
}
$want{requests} = $sent;

# Debug logging has one line per request, naming the worker that served it.
my %served;
for (1 .. 50) {
	%served = ();
	$served{$_}++ for map { /^avatar\.fcgi\[(\d+)\]: debug: .* -> \d{3}$/ ? $1 : () } log_lines();
	my $n = 0;
	$n += $_ for values %served;
	last if $n >= $sent;
	select(undef, undef, undef, 0.1);
}
# Make the scrape land on a worker that did not serve everything, so only
# counters summed over both workers can be right: stop the one that did.
my @busy = grep { $served{$_} } @workers;
if (@busy == 1) {
	kill 'STOP', $busy[0];
	$stopped{$busy[0]} = 1;
	# Until it has really stopped it may still sit in epoll_wait, and with
	# EPOLLEXCLUSIVE take the wake-up for the scrape's connection.
	for (1 .. 100) {
		last if state($busy[0]) eq 'T';
		select(undef, undef, undef, 0.05);
	}
	is(state($busy[0]), 'T', "the busy worker is stopped for the scrape");
}
my ($jst, $jh, $jbody) = fcgi('GET', '/status');
my ($mst, $mh, $mbody) = fcgi('GET', '/metrics');
kill 'CONT', keys %stopped;
%stopped = ();

my %scraped_by;
for (1 .. 50) {
	%scraped_by = map { /^avatar\.fcgi\[(\d+)\]: debug: GET \/(status|metrics) -> / ? ($2 => $1) : () } log_lines();
	last if keys %scraped_by == 2;
	select(undef, undef, undef, 0.1);
}
for my $what ('status', 'metrics') {
	my $pid = $scraped_by{$what} // 0;
	ok($pid && grep({ $_ == $pid } @workers) && ($served{$pid} // 0) < $sent,
	    "/$what was answered by a worker that served only part of the requests")
	    or diag("served: @{[%served]}; scrape by $pid");
}

# /status
is($jst, 200, '/status answers 200');
like($jh->{'content-type'} // '', qr{^application/json}, '/status is JSON');
my $j = eval { decode_json($jbody) };
ok(ref $j eq 'HASH', '/status body parses as a JSON object') or diag($jbody);
$j //= {};
my ($version) = qx{'$bin' --version} =~ /^avatar\.fcgi (\S+)/;
is($j->{version}, $version, 'status: version');
like($j->{uptime_seconds} // '', qr/^\d+$/, 'status: uptime_seconds');
is($j->{workers_alive}, 2, 'status: workers_alive');
for my $k (sort keys %family) {
	is($j->{$k}, $want{$k}, "status: $k = $want{$k}");
}

# /metrics: the /status scrape before it is one more request, no more.
is($mst, 200, '/metrics answers 200');
like($mh->{'content-type'} // '', qr{^text/plain; version=0\.0\.4},
    '/metrics is Prometheus text 0.0.4');
like($mbody, qr/\n\z/, '/metrics ends with a newline');
my (%help, %type, %value, @bad);
for my $line (split /\n/, $mbody) {
	if ($line =~ /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S/) {
		push @bad, "second HELP: $line" if $help{$1}++;
	} elsif ($line =~ /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/) {
		push @bad, "second TYPE: $line" if $type{$1};
		$type{$1} = $2;
	} elsif ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$/) {
		push @bad, "sample before its HELP and TYPE: $line"
		    unless $help{$1} && $type{$1};
		$value{$1} = $3 unless $2;
	} else {
		push @bad, "not exposition format: $line";
	}
}
is(join("\n", @bad), '', 'every /metrics line is HELP, TYPE or a sample');
my @untotal = grep { $type{$_} eq 'counter' && !/_total$/ } keys %type;
is("@untotal", '', 'every counter is named *_total');
my @uncounted = grep { /_total$/ && $type{$_} ne 'counter' } keys %type;
is("@uncounted", '', 'every *_total is a counter');
is($value{avatar_workers}, 2, 'metrics: avatar_workers gauge');
my %mwant = (%want, requests => $want{requests} + 1);
for my $k (sort keys %family) {
	my $f = $family{$k};
	is($type{$f}, 'counter', "metrics: $f is a counter");
	is($value{$f}, $mwant{$k}, "metrics: $f = $mwant{$k}");
}

# A worker killed outright is restarted, counted once, and its counts stay.
kill 'KILL', $workers[0];
my $s = {};
for (1 .. 100) {
	$s = status_json();
	last if ($s->{worker_restarts} // 0) == 1 && ($s->{workers_alive} // 0) == 2
	    && children($sup) == 2;
	select(undef, undef, undef, 0.1);
}
is($s->{worker_restarts}, 1, 'a killed worker counts one restart');
is($s->{workers_alive}, 2, 'and is replaced');
for my $k (qw(hits defaults not_modified method_not_allowed)) {
	is($s->{$k}, $want{$k}, "its $k are kept");
}
my ($st2, $h2, $body2) = fcgi('GET', '/metrics');
like($body2, qr/^avatar_worker_restarts_total 1$/m, 'metrics: the restart');

# SIGHUP replaces both workers; that is no restart, and no count is lost.
my @before = children($sup);
kill 'HUP', $sup;
my @after;
for (1 .. 100) {
	@after = children($sup);
	my %old = map { $_ => 1 } @before;
	last if @after == 2 && !grep { $old{$_} } @after;
	select(undef, undef, undef, 0.1);
}
my %old = map { $_ => 1 } @before;
ok(@after == 2 && !grep({ $old{$_} } @after), 'SIGHUP: two new workers replace the old ones')
    or diag("before @before, after @after");
$s = {};
for (1 .. 50) {
	$s = status_json();
	last if ($s->{workers_alive} // 0) == 2;
	select(undef, undef, undef, 0.1);
}
is($s->{workers_alive}, 2, 'SIGHUP: workers_alive settles at 2');
is($s->{worker_restarts}, 1, 'SIGHUP: not counted as a restart');
for my $k (qw(hits defaults not_modified method_not_allowed)) {
	is($s->{$k}, $want{$k}, "SIGHUP: $k are kept");
}

# SIGTERM ends the pool cleanly, and the sanitizer build found nothing.
kill 'TERM', $sup;
my $rc = wait_exit($sup, 10);
is($rc, 0, 'SIGTERM stops the pool with status 0');
$sup = 0 if $rc != -1;
my @reports = grep { /Sanitizer|runtime error:/ } log_lines();
is(join("\n", @reports), '', 'no sanitizer report');

diag(join "\n", "workers @workers; the responder's stderr:", log_lines())
    unless Test::More->builder->is_passing;

done_testing();

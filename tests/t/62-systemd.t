#!/usr/bin/perl
# 62-systemd: conf/systemd/avatar-fcgi.{socket,service} pass
# "systemd-analyze verify" (with ExecStart pointed at the built binary and
# the man page findable), keep the hardening the issue asks for (table
# below), score as well hardened in "systemd-analyze security --offline",
# and the unit's ExecStart line really serves when the socket arrives both
# ways the service may hand it over: as LISTEN_FDS (systemd-socket-activate)
# and as fd 0 (StandardInput=socket, emulated with spawn-fcgi -n).
use strict;
use warnings;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/../lib";
use Responder qw(built children wait_exit);
use POSIX qw(:sys_wait_h);
use Test::More;

my ($root, $bin, $client) = built();
my $units = "$root/conf/systemd";

plan skip_all => 'systemd-analyze is not installed (apt-get install systemd)'
    unless system('command -v systemd-analyze >/dev/null') == 0;

# One required setting a line: unit, key, value.
my @want = map { [split ' ', $_, 3] } grep { /\S/ } split /\n/, <<'EOT';
socket  ListenStream        /run/avatar-fcgi/avatar.sock
socket  SocketGroup         www-data
socket  SocketMode          0660
socket  Accept              no
service Requires            avatar-fcgi.socket
service DynamicUser         yes
service NoNewPrivileges     yes
service ProtectSystem       strict
service ProtectHome         yes
service PrivateTmp          yes
service Restart             on-failure
service StandardInput       socket
service StandardOutput      journal
service CapabilityBoundingSet
EOT

sub unit {
	my ($name) = @_;
	my (%kv, $text);
	open my $fh, '<', "$units/avatar-fcgi.$name" or die "$units/avatar-fcgi.$name: $!";
	local $/;
	$text = <$fh>;
	for (split /\n/, $text) {
		next if /^\s*(#|;|\[|$)/;
		my ($k, $v) = /^(\w+)=(.*)$/ or next;
		push @{ $kv{$k} }, $v;
	}
	return ($text, \%kv);
}
my ($socket_text, $socket) = unit('socket');
my ($service_text, $service) = unit('service');
my %u = (socket => $socket, service => $service);

for my $w (@want) {
	my ($unit, $k, $v) = @$w;
	$v //= '';
	ok(grep({ $_ eq $v } @{ $u{$unit}{$k} // [] }), "$unit: $k=$v");
}
my ($exec) = @{ $service->{ExecStart} // [] };
ok(defined $exec, 'service has ExecStart') or BAIL_OUT('no ExecStart');
my @argv = split ' ', $exec;
my ($dir) = $exec =~ /--dir\s+(\S+)/;
ok(defined $dir, 'ExecStart names --dir');
ok(defined $dir && grep({ $_ eq $dir } map { split ' ' } @{ $service->{ReadOnlyPaths} // [] }),
    'ReadOnlyPaths= holds the --dir of ExecStart');
unlike($exec, qr/--socket/, 'ExecStart takes the socket from systemd, not --socket');

# Render the units with the built binary, which verify requires to exist,
# and put the man page where Documentation=man:avatar.fcgi(1) finds it.
my $tmp = tempdir(CLEANUP => 1);
mkdir "$tmp/units";
mkdir "$tmp/man";
mkdir "$tmp/man/man1";
system('cp', "$root/fcgi/avatar.fcgi.1", "$tmp/man/man1/") == 0 or die;
for (['socket', $socket_text], ['service', $service_text]) {
	my ($name, $text) = @$_;
	$text =~ s{^ExecStart=\S+}{ExecStart=$bin}m;
	open my $fh, '>', "$tmp/units/avatar-fcgi.$name" or die;
	print $fh $text;
	close $fh;
}
{
	local $ENV{MANPATH} = "$tmp/man";
	my $out = qx{systemd-analyze verify '$tmp/units/avatar-fcgi.socket' '$tmp/units/avatar-fcgi.service' 2>&1};
	is("$?:$out", '0:', 'systemd-analyze verify is silent and exits 0');
	# Exposure 2.0 or less ("OK") on systemd's 0-10 scale.
	$out = qx{systemd-analyze security --offline=yes --threshold=20 '$tmp/units/avatar-fcgi.service' 2>&1};
	is($? >> 8, 0, 'systemd-analyze security rates the service 2.0 or better')
	    or diag(join "\n", grep { /Overall/ } split /\n/, $out);
}

# Run ExecStart's own arguments with the repository's avatars.
my @args = @argv[1 .. $#argv];
s{^\Q$dir\E$}{$root/avatars} for @args;

# Whatever happens, stop what this test started: a supervisor first asks
# its workers to stop; anything left after 10 s is killed with them.
my %pids;
END {
	for my $pid (keys %pids) {
		my @kids = children($pid);
		kill 'TERM', $pid;
		exit_status($pid);
		kill 'KILL', @kids;
	}
}
$SIG{$_} = sub { exit 1 } for qw(INT TERM HUP PIPE);


# The wait status of $pid, or -1 (and it is killed) after 10 s.
sub exit_status {
	my ($pid) = @_;
	my $st = wait_exit($pid, 10);
	return $st if $st != -1;
	kill 'KILL', $pid, children($pid);
	waitpid($pid, 0);
	return -1;
}

sub request {
	my ($sock, $uri) = @_;
	my $out = '';
	for (1 .. 100) {	# the socket may need a moment to appear
		if (-S $sock) {
			$out = qx{'$client' -t 10 '$sock' REQUEST_METHOD=GET DOCUMENT_URI=$uri 2>&1};
			last;
		}
		select(undef, undef, undef, 0.1);
	}
	return $out;
}

# One handover a line: name, command before ExecStart's arguments.
my @ways = (
	[ 'LISTEN_FDS', sub { ('systemd-socket-activate', '-l', $_[0], '--', $bin) } ],
	[ 'fd 0',       sub { ('spawn-fcgi', '-n', '-s', $_[0], '-M', '0660', '--', $bin) } ],
);
for my $w (@ways) {
	my ($name, $cmd) = @$w;
	my $sock = "$tmp/$name.sock";
	$sock =~ s/ /_/g;
	SKIP: {
		my @c = $cmd->($sock);
		skip "$c[0] is not installed", 4
		    unless system("command -v $c[0] >/dev/null") == 0;
		my $pid = fork // die "fork: $!";
		if ($pid == 0) {
			open STDERR, '>', "$tmp/log" or die;
			exec @c, @args or die "exec: $!";
		}
		$pids{$pid} = 1;
		my $out = request($sock, '/1000');
		like($out, qr{^Status: 200 OK\r\n.*^Content-Type: image/png\r$}ms,
		    "$name: ExecStart serves /1000");
		$out = request($sock, '/status');
		like($out, qr/"workers_alive":\d+/, "$name: and /status");
		kill 'TERM', $pid;
		is(exit_status($pid), 0, "$name: SIGTERM ends it with status 0");
		delete $pids{$pid};
		open my $lf, '<', "$tmp/log" or die;
		my @reports = grep { /Sanitizer|runtime error:/ } <$lf>;
		is(join('', @reports), '', "$name: no sanitizer report");
	}
}

done_testing();

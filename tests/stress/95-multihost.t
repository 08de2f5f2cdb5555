#!/usr/bin/perl
# Many hosts, one store (issue 14): two responder hosts sharing one avatars
# directory on a real GlusterFS volume, an nginx load balancer in front, and
# Varnish in front as a CDN would be.
#
# Every machine is a network namespace made here, on one bridge that lives
# in a namespace of its own, with addresses from 198.18.0.0/15 that exist
# nowhere else: "s" runs glusterd and the volume's one brick; "a" and "b"
# each mount the volume (FUSE, entry and attribute timeouts 0) and run
# avatar.fcgi (bytes mode, signed uploads on) behind their own nginx; "f"
# (this test's own process, after setns) runs the balancing nginx, Varnish
# and every client. Mounts live in the machine's one mount namespace
# (nsenter --net, never ip netns exec), and this process is the child
# subreaper, so every daemon GlusterFS forks is reaped here.
#
#   1. uploads alternate between a and b while ab -c 50 and a checker read
#      through the balancer: every PUT's versioned URL gives the new bytes
#      at once, through the balancer and from both hosts; every read is a
#      stored version, whole; 0 failed, 0 non-2xx;
#   2. both hosts PUT the same id at once: one whole original and all of
#      its variants, tagged with it and showing its picture, nothing else;
#   3. both hosts asked for a missing variant at once: made once, whole;
#   4. files renamed over an id from both mounts under ab -c 50: no default
#      avatar, no error, every read one of the two files; the responders'
#      ESTALE retries counted in /metrics and logged at debug level;
#   5. a dead writer's temporary files in the avatars directory and in
#      .v/SIZE/ are removed by the other host's upload process;
#   6. Varnish: a replaced avatar at once by its versioned URL, by /ID only
#      while the copy is younger than --max-age; revalidation answered 304
#      by both hosts (their ETags are equal); the default avatar never older
#      than --default-max-age; the hit ratio;
#   7. host a's whole responder killed (kill -9 of its process group: the
#      supervisor alone would leave its workers serving), then, once it is
#      back, a's network link taken down: 0 failed, 0 non-2xx under ab.
# Also measured: bytes and files of one 1024 px avatar with its variants.
# Skips only where the kernel refuses namespaces or FUSE. STRESS_SECONDS
# (default 20) makes each load phase half that long.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Util qw(ROOT slurp spew wait_for);
use Digest::SHA qw(hmac_sha256_hex sha256_hex);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

my $SECS = $ENV{STRESS_SECONDS} // 20;
$SECS =~ /^\d+$/ && $SECS >= 12 or BAIL_OUT("STRESS_SECONDS=$SECS: want a whole number >= 12");
my $PHASE = int($SECS / 2);
my $BIN = ROOT . '/avatar.fcgi';
my $MAIN = $$;
my $T0 = time;

# The machines: name => address. The bridge's namespace has no address.
my $TAG = $$ % 100000;
my %NS = map { $_ => "av95$_$TAG" } qw(n s a b f);
my %IP = (s => '198.19.95.1', a => '198.19.95.2', b => '198.19.95.3', f => '198.19.95.10');
my $VOL = "av95v$TAG";
# The cache policy under test: short lifetimes, so that the CDN phase
# sees copies expire in seconds instead of minutes.
my ($MAXAGE, $DEFAGE) = (2, 1);

my (@netns, @mounts, %mpid, %resp, %nginx, $glusterd, %brick, $varnish, %downed);
my $TMP;

# ---- set-up checks --------------------------------------------------------------------

for my $t (qw(ip nsenter glusterd gluster glusterfs umount nginx varnishd varnishstat ab convert identify stat timeout)) {
    next if grep { -x "$_/$t" } split(/:/, $ENV{PATH}), '/usr/sbin', '/sbin';
    plan skip_all => "$t is not installed (tests/lib/ensure-deps test)";
}
$ENV{PATH} .= ':/usr/sbin:/sbin';
-x $BIN or BAIL_OUT("$BIN is not built (make stress builds it)");
$> == 0 or plan skip_all => 'needs root: network namespaces, FUSE mounts, glusterd';
-c '/dev/fuse' or plan skip_all => 'no /dev/fuse here: GlusterFS cannot be mounted';

require 'syscall.ph';
# PR_SET_CHILD_SUBREAPER: glusterd's brick daemon, double-forked, becomes
# our child and is reaped at the end instead of lingering as a zombie.
syscall(&SYS_prctl, 36, 1, 0, 0, 0) == 0 or diag "prctl(PR_SET_CHILD_SUBREAPER): $!";

END { cleanup() if $$ == $MAIN }
$SIG{INT} = $SIG{TERM} = sub { exit 1 };
$SIG{PIPE} = 'IGNORE';

$TMP = tempdir('mh95-XXXXXX', TMPDIR => 1, CLEANUP => 0);
# Varnish's and nginx's unprivileged processes read beneath it.
chmod 0755, $TMP;
mkdir "$TMP/$_" for qw(log run gd brick a b a/avatars b/avatars f varnish img);

# ---- helpers --------------------------------------------------------------------------

sub logf { "$TMP/log/$_[0]" }

# Runs a command (a list), output to a log; returns its exit status.
sub run {
    my ($log, @cmd) = @_;
    system("@{[ map { my $x = $_; $x =~ s/'/'\\''/g; \"'$x'\" } @cmd ]} >>'$log' 2>&1");
    return $? >> 8;
}

# Starts a daemon in its own session (so a signal to the test's group
# never reaches it, and its group can be killed whole); returns its pid.
sub spawn {
    my ($log, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        POSIX::setsid();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    return $pid;
}

sub in_ns { ('nsenter', "--net=/run/netns/$NS{$_[0]}", @_[1 .. $#_]) }

sub gluster {
    return run(logf('gluster-cli.out'), 'timeout', 60, 'gluster', "--glusterd-sock=$TMP/run/glusterd.socket",
        '--log-file=' . logf('gluster-cli.log'), '--mode=script', @_);
}

# One HTTP/1.1 exchange on a new connection: {status, h (lower-case
# names), body}; status 0 when the peer did not answer within 15 s.
sub http {
    my ($host, $port, $method, $path, $hdr, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 5)
        or return { status => 0, h => {}, body => '', err => "$!" };
    my $req = "$method $path HTTP/1.1\r\nHost: avatars.test\r\nConnection: close\r\n";
    $req .= "$_: $hdr->{$_}\r\n" for sort keys %{ $hdr // {} };
    $req .= 'Content-Length: ' . length($body) . "\r\n" if defined $body;
    $req .= "\r\n" . ($body // '');
    for (my $o = 0; $o < length $req;) {
        my $n = syswrite($s, $req, length($req) - $o, $o);
        return { status => 0, h => {}, body => '', err => "write: $!" } unless $n;
        $o += $n;
    }
    my ($raw, $sel, $end) = ('', IO::Select->new($s), time + 15);
    while (time < $end && $sel->can_read($end - time)) {
        my $n = sysread($s, my $chunk, 262144);
        last unless $n;
        $raw .= $chunk;
    }
    close $s;
    my ($head, $rest) = split /\r\n\r\n/, $raw, 2;
    my %h;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d{3})};
    for (split /\r\n/, $head // '') { $h{ lc $1 } = $2 if /^([^:]+):\s*(.*)$/ }
    return { status => $status // 0, h => \%h, body => $rest // '' };
}

sub via_lb { http($IP{f}, 80, 'GET', @_) }
sub via_cdn { http($IP{f}, 6081, 'GET', @_) }
sub direct { my $host = shift; http($IP{$host}, 80, 'GET', @_) }
sub sha16 { substr(sha256_hex($_[0]), 0, 16) }

# A host's counters from /metrics: name (without avatar_ and _total) => value.
sub metrics {
    my ($host) = @_;
    my $r = direct($host, '/metrics');
    my %m;
    $m{$1} = $2 while $r->{body} =~ /^avatar_(\w+?)(?:_total)? (\d+)$/mg;
    return \%m;
}

my $KEY = 'k1-' . ('95' x 20);
sub signed {
    my ($method, $id) = @_;
    my $e = int(time) + 600;
    return "expires=$e&sig=" . hmac_sha256_hex("$method\n$id\n$e", $KEY);
}

# PUT a file to one host; returns (status, v of the answer's URL or '').
sub put {
    my ($host, $id, $file) = @_;
    my $r = http($IP{$host}, 80, 'PUT', "/$id?" . signed(PUT => $id), {}, slurp($file));
    my $j = eval { JSON::PP->new->decode($r->{body}) } // {};
    my ($v) = ($j->{url} // '') =~ /\?v=([0-9a-f]+)$/;
    return ($r->{status}, $v // '', $r);
}

# Reads $path through the balancer for $secs seconds in a child process,
# writing what it saw to $out: "seen SHA16 COUNT" and "bad WHY" lines.
sub reader {
    my ($path, $secs, $out) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    my (%seen, %bad);
    my ($end, $n) = (time + $secs, 0);
    while (time < $end && $n++ < 200000) {
        my $r = via_lb($path);
        if ($r->{status} != 200) { $bad{"status $r->{status}"}++; next }
        if (length($r->{body}) == 0) { $bad{'empty body'}++; next }
        if (length($r->{body}) != ($r->{h}{'content-length'} // -1)) { $bad{'length differs from Content-Length'}++; next }
        $seen{ sha16($r->{body}) }++;
    }
    spew($out, join('', map({"seen $_ $seen{$_}\n"} sort keys %seen), map({"bad $_ ($bad{$_})\n"} sort keys %bad)));
    POSIX::_exit(0);
}

# What a reader saw: ({sha16 => count}, [bad lines]).
sub reader_result {
    my ($pid, $out) = @_;
    waitpid($pid, 0);
    my (%seen, @bad);
    for (split /\n/, slurp($out)) {
        $seen{$1} = $2 if /^seen (\S+) (\d+)/;
        push @bad, $1 if /^bad (.*)/;
    }
    return (\%seen, \@bad);
}

# ab in the background: returns its pid; ab_result parses its output.
sub ab_start {
    my ($url, $secs, $out) = @_;
    # -l: every upload changes the length, which is not a failure.
    return spawn($out, 'ab', '-l', '-r', '-c', 50, '-t', $secs, '-n', 100000000, $url);
}

sub ab_result {
    my ($pid, $out, $name) = @_;
    waitpid($pid, 0);
    my $o = slurp($out);
    my %r;
    ($r{complete}) = $o =~ /^Complete requests:\s+(\d+)/m;
    ($r{failed}) = $o =~ /^Failed requests:\s+(\d+)/m;
    ($r{non2xx}) = $o =~ /^Non-2xx responses:\s+(\d+)/m;
    ($r{max}) = $o =~ /^\s*100%\s+(\d+)/m;
    ($r{rps}) = $o =~ /^Requests per second:\s+([\d.]+)/m;
    $r{$_} //= 0 for qw(complete non2xx max rps);
    ok($r{complete} > 0, "$name: ab -c 50 completed $r{complete} requests");
    is($r{failed}, 0, "$name: 0 failed") or diag $o;
    is($r{non2xx}, 0, "$name: 0 non-2xx");
    diag "$name: $r{complete} requests ($r{rps}/s), longest $r{max} ms";
    return \%r;
}

# The tag (variant.h) of a file: its size and mtime in ns, in hex.
sub tag_of {
    my ($file) = @_;
    my ($size, $sec, $ns) = `stat --printf='%s %.9Y' '$file'` =~ /^(\d+) (\d+)\.(\d{9})$/ or return '';
    return sprintf('%x-%x', $size, $sec * 1000000000 + $ns);
}

# Every variant file of id under DIR/.v: [path, size directory, tag, ext].
sub variants_of {
    my ($dir, $id) = @_;
    my @v;
    for my $sub (glob("$dir/.v/*")) {
        opendir my $dh, $sub or next;
        my $size = $sub =~ s{.*/}{}r;
        for (readdir $dh) {
            push @v, ["$sub/$_", $size, $1, $2] if /^\Q$id\E\.([0-9a-f]+-[0-9a-f]+)\.(\w+)$/;
        }
    }
    return @v;
}

sub tmp_files {
    my ($dir) = @_;
    return grep { m{/\.tmp-[^/]*$} } glob("$dir/.tmp-*"), glob("$dir/.v/*/.tmp-*");
}

# The mean colour of an image as "r,g,b" (0..255), or '' when it does not
# decode without a warning.
sub colour {
    my ($file) = @_;
    my $c = `convert -regard-warnings '$file' -resize '1x1!' -format '%[fx:int(255*r)],%[fx:int(255*g)],%[fx:int(255*b)]' info: 2>/dev/null`;
    return $? == 0 ? $c : '';
}

sub near {
    my ($x, $y) = @_;
    my @x = split /,/, $x;
    my @y = split /,/, $y;
    return 0 unless @x == 3 && @y == 3;
    my $d = 0;
    $d += abs($x[$_] - $y[$_]) for 0 .. 2;
    return $d < 60;
}

# Whether dir is a mount point (from the mount table: a stat of a FUSE
# mount whose daemon died fails).
sub mounted {
    my ($dir) = @_;
    return scalar grep { (split ' ')[1] eq $dir } split /\n/, slurp('/proc/self/mounts');
}

# ---- the network --------------------------------------------------------------------

if (run(logf('ip.out'), 'ip', 'netns', 'add', $NS{n}) != 0) {
    plan skip_all => 'network namespaces are not allowed here: ' . slurp(logf('ip.out'));
}
push @netns, $NS{n};
for my $m (qw(s a b f)) {
    run(logf('ip.out'), 'ip', 'netns', 'add', $NS{$m}) == 0 or BAIL_OUT("ip netns add $NS{$m}");
    push @netns, $NS{$m};
}
sub ipn { run(logf('ip.out'), 'ip', '-n', @_) == 0 or BAIL_OUT("ip -n @_: " . slurp(logf('ip.out'))) }
ipn($NS{n}, qw(link add br0 type bridge));
ipn($NS{n}, qw(link set br0 up));
for my $m (qw(s a b f)) {
    # Made inside the bridge's namespace, so nothing ever appears in the
    # machine's own; one end then moves to the machine m.
    ipn($NS{n}, 'link', 'add', "p$m", 'type', 'veth', 'peer', 'name', "e$m");
    ipn($NS{n}, 'link', 'set', "e$m", 'netns', $NS{$m});
    ipn($NS{n}, 'link', 'set', "p$m", 'master', 'br0');
    ipn($NS{n}, 'link', 'set', "p$m", 'up');
    ipn($NS{$m}, 'addr', 'add', "$IP{$m}/24", 'dev', "e$m");
    ipn($NS{$m}, 'link', 'set', "e$m", 'up');
    ipn($NS{$m}, 'link', 'set', 'lo', 'up');
}
# This process becomes machine f: its sockets and its children's.
{
    open my $fh, '<', "/run/netns/$NS{f}" or BAIL_OUT("$NS{f}: $!");
    syscall(&SYS_setns, fileno($fh), 0x40000000) == 0 or BAIL_OUT("setns: $!");
}

# ---- GlusterFS ------------------------------------------------------------------------

spew("$TMP/glusterd.vol", <<VOL);
volume management
    type mgmt/glusterd
    option working-directory $TMP/gd
    option run-directory $TMP/run
    option glusterd-sockfile $TMP/run/glusterd.socket
    option transport-type socket
    option transport.socket.listen-port 24007
    option ping-timeout 0
    option event-threads 1
end-volume
VOL
$glusterd = spawn(logf('glusterd.out'), in_ns('s', 'glusterd', '-N', '-f', "$TMP/glusterd.vol",
    '-p', "$TMP/run/glusterd.pid", '-l', logf('glusterd.log')));
ok(wait_for(sub { gluster('volume', 'list') == 0 }, 30), 'glusterd answers')
    or BAIL_OUT('glusterd: ' . slurp(logf('glusterd.log')));
diag sprintf('glusterd answered after %.1f s', time - $T0);
# One brick at the storage machine's own address (glusterd refuses
# 127.0.0.1); force: the brick is a directory of the root file system.
gluster('volume', 'create', $VOL, "$IP{s}:$TMP/brick", 'force') == 0
    or BAIL_OUT('volume create: ' . slurp(logf('gluster-cli.out')));
# The caches that let a mount serve an old file after another host's
# rename (docs/scale-out.md says why each one).
my @off = qw(performance.quick-read performance.io-cache performance.read-ahead performance.stat-prefetch
    performance.open-behind performance.write-behind performance.readdir-ahead performance.nl-cache);
my $set = 0;
$set += gluster('volume', 'set', $VOL, $_, 'off') == 0 for @off;
is($set, scalar @off, 'the volume\'s performance caches are off: ' . join(' ', @off));
gluster('volume', 'start', $VOL) == 0 or BAIL_OUT('volume start: ' . slurp(logf('gluster-cli.out')));
for my $m (qw(a b)) {
    my $dir = "$TMP/$m/avatars";
    push @mounts, $dir;
    # Entry and attribute timeouts 0: the kernel asks the volume about
    # every name and every stat, so another host's rename shows at once
    # (with FUSE's default 1 s, 199 of 200 renames showed late in a trial).
    $mpid{$m} = spawn(logf("mount-$m.out"), in_ns($m, 'glusterfs', '-N', "--volfile-server=$IP{s}",
        "--volfile-id=$VOL", '--entry-timeout=0', '--attribute-timeout=0', '-l', logf("mount-$m.log"), $dir));
    ok(wait_for(sub { mounted($dir) }, 20), "host $m mounts the volume") or BAIL_OUT(slurp(logf("mount-$m.log")));
}
for (`timeout 30 gluster --glusterd-sock=$TMP/run/glusterd.socket --log-file=$TMP/log/gluster-cli.log --mode=script volume status $VOL detail 2>/dev/null`) {
    $brick{pid} = $1 if /^Pid\s*:\s*(\d+)/;
}
if ($brick{pid} && open my $cl, '<', "/proc/$brick{pid}/cmdline") {
    my @a = split /\0/, scalar <$cl>;
    for my $i (0 .. $#a - 1) {
        $brick{sock} = $a[$i + 1] if $a[$i] eq '-S';
        $brick{log} = $a[$i + 1] if $a[$i] eq '-l';
    }
}
diag sprintf('volume %s started and mounted twice after %.1f s (brick pid %s)', $VOL, time - $T0, $brick{pid} // '?');

# ---- the store, the hosts, the balancer -----------------------------------------------

my $A = "$TMP/a/avatars";    # host a's mount; b's shows the same tree
system('cp', ROOT . '/avatars/-1.png', ROOT . '/avatars/1000.png', "$A/") == 0 or BAIL_OUT('cp');
spew("$TMP/keys", "$KEY\n");
chmod 0600, "$TMP/keys";

sub start_responder {
    my ($m) = @_;
    $resp{$m} = spawn(logf("avatar-$m.log"), in_ns($m, 'env', 'FCGI_WEB_SERVER_ADDRS=127.0.0.1', $BIN,
        '--mode', 'bytes', '--socket', '127.0.0.1:9000', '--workers', 2, '--dir', "$TMP/$m/avatars",
        '--key-file', "$TMP/keys", '--max-age', $MAXAGE, '--stale-while-revalidate', 0,
        '--default-max-age', $DEFAGE, '--log-level', 'debug'));
    return wait_for(sub { direct($m, '/1000')->{status} == 200 }, 20);
}

my $SNIPPET = slurp(ROOT . '/conf/nginx/avatar-fastcgi.conf');
sub nginx_conf {
    my ($dir, $server) = @_;
    mkdir "$dir/tmp";
    chmod 0777, "$dir/tmp";
    spew("$dir/nginx.conf", <<CONF);
daemon off;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 2048; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    fastcgi_temp_path $dir/tmp/fastcgi;
    proxy_temp_path $dir/tmp/proxy;
    scgi_temp_path $dir/tmp/scgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    client_max_body_size 8m;
    client_body_buffer_size 8m;
$server
}
CONF
}

for my $m (qw(a b)) {
    my $dir = "$TMP/$m";
    spew("$dir/avatar-fastcgi.conf", $SNIPPET);
    # The shipped bytes-mode site, on this host's address; /metrics only
    # for the monitoring machine (f), which the balancer never forwards.
    nginx_conf($dir, <<SERVER);
    upstream avatar {
        server 127.0.0.1:9000 max_fails=0;
        server 127.0.0.1:9000 max_fails=0;
        keepalive 16;
    }
    server {
        listen $IP{$m}:80;
        location ~ "^/(?:avatar/)?(?:status|metrics)\$" {
            allow $IP{f};
            deny all;
            include $dir/avatar-fastcgi.conf;
        }
        location ~ "^/(?:avatar/)?[^/]+\$" {
            include $dir/avatar-fastcgi.conf;
            fastcgi_keep_conn on;
            fastcgi_buffer_size 16k;
            fastcgi_buffers 32 16k;
            fastcgi_max_temp_file_size 0;
        }
    }
SERVER
    $nginx{$m} = spawn(logf("nginx-$m.out"), in_ns($m, 'nginx', '-p', "$dir/", '-c', "$dir/nginx.conf", '-e', "$dir/error.log"));
    ok(start_responder($m), "host $m: avatar.fcgi answers through its nginx") or BAIL_OUT(slurp(logf("avatar-$m.log")));
}
# The balancer: a host that fails is skipped for 2 s; a connect is given
# 1 s, an answer 3 s; a GET that fails on one host is tried on the other.
nginx_conf("$TMP/f", <<SERVER);
    upstream hosts {
        server $IP{a}:80 max_fails=1 fail_timeout=2s;
        server $IP{b}:80 max_fails=1 fail_timeout=2s;
        keepalive 32;
    }
    server {
        listen $IP{f}:80;
        location ~ "^/(?:avatar/)?(?:status|metrics)\$" { return 404; }
        location ~ "^/(?:avatar/)?[^/]+\$" {
            proxy_pass http://hosts;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_connect_timeout 1s;
            proxy_read_timeout 3s;
            proxy_send_timeout 3s;
        }
    }
SERVER
$nginx{f} = spawn(logf('nginx-f.out'), 'nginx', '-p', "$TMP/f/", '-c', "$TMP/f/nginx.conf", '-e', "$TMP/f/error.log");
ok(wait_for(sub { via_lb('/1000')->{status} == 200 }, 20), 'the balancer answers');

# ---- the pictures ---------------------------------------------------------------------

my @hues = qw(crimson navy gold teal orchid olive tomato steelblue sienna plum lime slategray);
my @up;
for my $i (0 .. $#hues) {
    my $f = "$TMP/img/up$i." . ($i % 2 ? 'jpg' : 'png');
    system('convert', '-size', '160x160', "gradient:$hues[$i]-white", $f) == 0 or BAIL_OUT("convert $f");
    push @up, $f;
}
my %race = (a => "$TMP/img/reds.png", b => "$TMP/img/blues.jpg");
system('convert', '-size', '160x160', 'gradient:red-darkred', $race{a}) == 0 or BAIL_OUT('convert');
system('convert', '-size', '200x200', 'gradient:blue-navy', $race{b}) == 0 or BAIL_OUT('convert');

# ---- 1. uploads alternate between the hosts under load ---------------------------------

{
    my ($st0, $v0) = put('a', 2000, $up[0]);
    is($st0, 201, 'PUT /2000 on host a: 201');
    my %stored = ($v0 => 1);
    my $ab = ab_start("http://$IP{f}/2000", $PHASE, logf('ab-1.out'));
    my $rd = reader('/2000', $PHASE, logf('reader-1.out'));
    my ($n, @bad) = (0);
    my $end = time + $PHASE - 1;
    while (time < $end && $n < 40) {
        my $host = $n % 2 ? 'a' : 'b';
        my ($st, $v, $r) = put($host, 2000, $up[ ($n + 1) % @up ]);
        $n++;
        if ($st != 200 || $v eq '') { push @bad, "PUT $n on $host: $st $r->{body}"; next }
        $stored{$v} = 1;
        my $lb = via_lb("/2000?v=$v");
        push @bad, "PUT $n on $host: its URL through the balancer gave " . sha16($lb->{body}) if sha16($lb->{body}) ne $v;
        for my $o (qw(a b)) {
            my $d = direct($o, '/2000');
            push @bad, "PUT $n on $host: host $o served " . sha16($d->{body}) . " at /2000" if sha16($d->{body}) ne $v;
        }
    }
    ok($n >= 2, "$n uploads, alternating between host b and host a, during the load");
    is_deeply(\@bad, [], 'each upload: 200, and its new bytes at once by its versioned URL (balancer) and at /2000 on both hosts');
    ab_result($ab, logf('ab-1.out'), 'reads while uploads alternate');
    my ($seen, $rbad) = reader_result($rd, logf('reader-1.out'));
    my @foreign = grep { !$stored{$_} } keys %$seen;
    my $reads = 0;
    $reads += $_ for values %$seen;
    ok($reads > 0 && !@$rbad && !@foreign, "checker: $reads reads through the balancer, each a stored version, whole ("
        . scalar(keys %$seen) . ' versions seen)') or diag "bad: @$rbad; unknown: @foreign";
}

# ---- 2. both hosts upload the same id at once -------------------------------------------

{
    my @bad;
    for my $round (1 .. 3) {
        my %ans;
        my %kid;
        for my $m (qw(a b)) {
            my $file = $race{$m};
            pipe my $rfh, my $wfh or die;
            my $pid = fork // die;
            if ($pid == 0) {
                close $rfh;
                my ($st, $v) = put($m, 2001, $file);
                print $wfh "$st $v\n";
                close $wfh;
                POSIX::_exit(0);
            }
            close $wfh;
            $kid{$m} = [$pid, $rfh];
        }
        for my $m (qw(a b)) {
            my ($pid, $fh) = @{ $kid{$m} };
            my $line = <$fh> // '';
            waitpid($pid, 0);
            my ($st, $v) = split ' ', $line;
            push @bad, "round $round: host $m answered " . ($st // 'nothing') unless ($st // 0) =~ /^20[01]$/ && $v;
            $ans{ $v // '' } = $m;
        }
        my @orig = grep { m{/2001\.\w+$} } glob("$A/2001.*");
        if (@orig != 1) { push @bad, "round $round: originals @orig"; next }
        my $v = sha16(slurp($orig[0]));
        push @bad, "round $round: the original is neither upload ($v)" unless $ans{$v};
        my $winner = ($ans{$v} // '') eq 'a' ? 'reddish' : 'bluish';
        my $tag = tag_of($orig[0]);
        my $want = colour($orig[0]);
        my @v = variants_of($A, 2001);
        my @other = grep { $_->[2] ne $tag } @v;
        push @bad, "round $round: variants of another original: " . join(' ', map { $_->[0] =~ s{.*/\.v/}{}r } @other) if @other;
        # 5 sizes in the stored type and in WebP, and the full size in WebP.
        push @bad, "round $round: " . scalar(@v) . ' variants, want 11' if @v != 11;
        for (@v) {
            my $c = colour($_->[0]);
            push @bad, "round $round: $_->[1]/$_->[3] is $c, the $winner original $want" unless near($c, $want);
        }
        push @bad, "round $round: temporary files left: " . join(' ', tmp_files($A)) if tmp_files($A);
        for my $m (qw(a b)) {
            my $g = direct($m, "/2001?s=64");
            push @bad, "round $round: host $m ?s=64: $g->{status}" if $g->{status} != 200 || !length $g->{body};
        }
    }
    is_deeply(\@bad, [], 'same id PUT on both hosts at once, 3 rounds: one whole original, its 11 variants tagged with it, '
        . 'each of its picture, none of the other, no temporary file');
}

# ---- 3. a missing variant asked of both hosts at once ---------------------------------------

{
    # A hand-filled original: no variants yet.
    system('convert', '-size', '180x180', 'gradient:orange-black', "$TMP/img/2003.png") == 0 or BAIL_OUT('convert');
    system('cp', "$TMP/img/2003.png", "$A/.hand.tmp") == 0 && rename("$A/.hand.tmp", "$A/2003.png") or BAIL_OUT('cp 2003');
    my %made0 = map { $_ => metrics($_)->{variants_made} // 0 } qw(a b);
    my @pids;
    for my $m (qw(a b)) {
        my $pid = fork // die;
        if ($pid == 0) { my $r = direct($m, '/2003?s=64'); POSIX::_exit($r->{status} == 200 ? 0 : 1) }
        push @pids, $pid;
    }
    my $asked = 0;
    for (@pids) { waitpid($_, 0); $asked += $? == 0 }
    is($asked, 2, 'GET /2003?s=64 on both hosts at once: both answer at once (the original, short-lived)');
    ok(wait_for(sub { variants_of($A, 2003) == 11 && !tmp_files($A) }, 30), 'the variants appear: 11 files');
    sleep 0.5;
    my $made = 0;
    $made += (metrics($_)->{variants_made} // 0) - $made0{$_} for qw(a b);
    is($made, 11, "made once in all, not once per host ($made files written): the store's lock holds across hosts");
    my $want = colour("$A/2003.png");
    my @bad = grep { !near(colour($_->[0]), $want) } variants_of($A, 2003);
    is_deeply(\@bad, [], 'each variant decodes whole and shows the original');
    my ($ga, $gb) = (direct('a', '/2003?s=64'), direct('b', '/2003?s=64'));
    ok($ga->{status} == 200 && $ga->{body} eq $gb->{body} && length $ga->{body}
        && $ga->{body} eq slurp((grep { $_->[1] eq '64' && $_->[3] eq 'png' } variants_of($A, 2003))[0][0] // '/dev/null'),
        'both hosts now serve the one 64 px file');
}

# ---- 4. renames over an id from both mounts, under load ------------------------------------

{
    my @img = (slurp(ROOT . '/avatars/1000.png'), slurp($up[0]));
    my %ok = map { sha16($_) => 1 } @img;
    spew("$A/2002.png", $img[0]);
    spew("$A/.rename-$_", $img[$_]) for 0, 1;
    my %m0 = map { $_ => metrics($_) } qw(a b);
    my $ab = ab_start("http://$IP{f}/2002", $PHASE, logf('ab-4.out'));
    my $rd = reader('/2002', $PHASE, logf('reader-4.out'));
    my ($n, $end) = (0, time + $PHASE - 1);
    while (time < $end && $n < 2000) {
        # From each mount in turn: each host sees the other's renames. A
        # hard link of a ready file is renamed over the name: two quick
        # metadata calls, so renames come as fast as the volume allows.
        my $dir = "$TMP/" . ($n % 2 ? 'a' : 'b') . '/avatars';
        link("$dir/.rename-" . $n % 2, "$dir/.rename.tmp") && rename("$dir/.rename.tmp", "$dir/2002.png")
            or diag "rename: $!";
        $n++;
    }
    unlink "$A/.rename-0", "$A/.rename-1";
    ab_result($ab, logf('ab-4.out'), "reads during $n renames");
    my ($seen, $rbad) = reader_result($rd, logf('reader-4.out'));
    my @foreign = grep { !$ok{$_} } keys %$seen;
    my $reads = 0;
    $reads += $_ for values %$seen;
    ok($reads > 0 && !@$rbad && !@foreign, "checker: $reads reads, each one of the two files, whole")
        or diag "bad: @$rbad; other bodies: @foreign";
    my %m1 = map { $_ => metrics($_) } qw(a b);
    my ($def, $err, $retries) = (0, 0, 0);
    for (qw(a b)) {
        $def += ($m1{$_}{defaults} // 0) - ($m0{$_}{defaults} // 0);
        $err += ($m1{$_}{errors} // 0) - ($m0{$_}{errors} // 0);
        $retries += ($m1{$_}{estale_retries} // 0) - ($m0{$_}{estale_retries} // 0);
    }
    is($def, 0, 'no default avatar served in place of the renamed one (both hosts\' defaults counters)');
    is($err, 0, 'no server error (both hosts\' errors counters)');
    my $logged = 0;
    for (qw(a b)) { $logged += () = slurp(logf("avatar-$_.log")) =~ /debug: .*(?:looking it up again|made again)/g }
    my $total = 0;
    $total += $m1{$_}{estale_retries} // 0 for qw(a b);
    is($logged, $total, "every retry counted in /metrics is logged at debug level ($total)");
    diag "renames: $n over /2002 in $PHASE s; ESTALE retries counted: $retries (host a "
        . (($m1{a}{estale_retries} // 0) - ($m0{a}{estale_retries} // 0)) . ', host b '
        . (($m1{b}{estale_retries} // 0) - ($m0{b}{estale_retries} // 0)) . ')';
}

# ---- 5. a dead writer's temporary files ------------------------------------------------------

{
    my $B = "$TMP/b/avatars";
    # Named as another host's writer (host key 95...), which died two
    # minutes ago; and one that is still being written.
    my @dead = ("$B/.tmp-2000-9595959595959595-1-0000000000000001",
        "$B/.v/64/.tmp-2000-9595959595959595-1-0000000000000002",
        "$B/.v/full/.tmp-2000-9595959595959595-1-0000000000000003");
    my $live = "$B/.v/64/.tmp-2000-9595959595959595-2-0000000000000004";
    spew($_, 'half an image') for @dead, $live;
    utime time - 120, time - 120, @dead;
    # Host a's upload process restarts (as after a crash) and cleans.
    my ($mgr) = grep { slurp("/proc/$_/comm") =~ /^avatar-uploads/ } split ' ', slurp("/proc/$resp{a}/task/$resp{a}/children");
    my ($up) = $mgr ? split(' ', slurp("/proc/$mgr/task/$mgr/children")) : ();
    ok($up && kill('KILL', $up), "host a's upload process killed (pid " . ($up // '?') . ')');
    ok(wait_for(sub { !grep { -e $_ } @dead }, 15), 'its replacement removed the dead writer\'s files in the directory and in .v/64 and .v/full')
        or diag join ' ', grep { -e $_ } @dead;
    ok(-e $live, 'and kept the fresh one, whose writer may be alive');
    unlink $live;
}

# ---- measured: one 1024 px avatar and its variants -------------------------------------------

{
    my $photo = "$TMP/img/photo.jpg";
    system('convert', '-seed', '14', '-size', '1024x1024', 'plasma:fractal', '-blur', '0x3', '-quality', '92', $photo) == 0
        or BAIL_OUT('convert photo');
    my ($st) = put('a', 5000, $photo);
    is($st, 201, 'PUT a 1024 px JPEG: 201');
    my ($files, $bytes, $alloc) = (0, 0, 0);
    for my $f (glob("$TMP/brick/5000.*"), map { $_->[0] =~ s{^\Q$A\E}{$TMP/brick}r } variants_of($A, 5000)) {
        my @s = stat $f or next;
        $files++;
        $bytes += $s[7];
        $alloc += $s[12] * 512;
    }
    my @o = stat((glob("$TMP/brick/5000.*"))[0]);
    diag sprintf('one 1024 px avatar (JPEG %d bytes after cleaning) with its variants: %d files, %d bytes, '
        . '%d bytes allocated on the brick (ext4): %.1f million per TB, %d thousand per million inodes',
        $o[7] // 0, $files, $bytes, $alloc, $alloc ? 1e12 / $alloc / 1e6 : 0, $files ? 1000 / $files : 0);
}

# ---- 6. Varnish in front, as a CDN ----------------------------------------------------------

{
    spew("$TMP/f/cdn.vcl", <<VCL);
vcl 4.1;
import directors;
backend a { .host = "$IP{a}"; .port = "80"; .connect_timeout = 1s; .first_byte_timeout = 5s; }
backend b { .host = "$IP{b}"; .port = "80"; .connect_timeout = 1s; .first_byte_timeout = 5s; }
sub vcl_init {
    new hosts = directors.round_robin();
    hosts.add_backend(a);
    hosts.add_backend(b);
}
sub vcl_recv {
    set req.backend_hint = hosts.backend();
}
sub vcl_backend_response {
    # Keep an expired copy an hour to revalidate it with If-None-Match.
    set beresp.keep = 1h;
}
VCL
    # default_grace 0: no stale copy beyond what Cache-Control allows
    # (stale-while-revalidate, 0 here).
    $varnish = spawn(logf('varnishd.out'), 'varnishd', '-F', '-n', "$TMP/varnish", '-a', "$IP{f}:6081",
        '-f', "$TMP/f/cdn.vcl", '-s', 'malloc,64m', '-p', 'default_grace=0');
    ok(wait_for(sub { via_cdn('/1000')->{status} == 200 }, 60), 'Varnish answers') or diag slurp(logf('varnishd.out'));

    # ETags are the same on both hosts, so either answers 304 to the other's.
    my ($ea, $eb) = (direct('a', '/2000')->{h}{etag} // 'a', direct('b', '/2000')->{h}{etag} // 'b');
    is($ea, $eb, "both hosts give /2000 the same ETag ($ea)");
    my @c = map { http($IP{$_}, 80, 'GET', '/2000', { 'If-None-Match' => $ea })->{status} } qw(a b);
    is("@c", '304 304', 'a conditional GET with it: 304 from each host');

    # Polls $path through the CDN after its avatar changed from $old to
    # $new: every answer must be one of them, an old one only while the
    # copy is fresh (its Age below $life: RFC 9111's freshness; a stale
    # copy served would be at least $life old), and the new one must come.
    my $watch = sub {
        my ($path, $old, $new, $life, $name) = @_;
        my ($olds, $news, @bad) = (0, 0);
        for (1 .. 80) {
            my $r = via_cdn($path);
            my $s = sha16($r->{body});
            if ($s eq $old && !$news) {
                $olds++;
                push @bad, "old copy at Age $r->{h}{age}" if ($r->{h}{age} // 99) >= $life;
            } elsif ($s eq $new) {
                $news++;
                last if $news >= 3;
            } else {
                push @bad, "status $r->{status}, body " . ($s eq $old ? 'old after new' : $s);
            }
            sleep 0.25;
        }
        ok(!@bad && $news >= 3, "$name: the old copy only while its Age < $life s ($olds times), then the new one")
            or diag "@bad";
    };

    # An unversioned URL: cached for --max-age, then the replacement.
    my ($st, $v1) = put('a', 3000, $up[2]);
    via_cdn('/3000') for 1 .. 3;
    my ($st2, $v2) = put('b', 3000, $up[3]);
    my $vv = via_cdn("/3000?v=$v2");
    is(sha16($vv->{body}), $v2, 'replaced: the new avatar at once through its versioned URL');
    like($vv->{h}{'cache-control'} // '', qr/immutable/, 'and that URL is cached as immutable');
    $watch->('/3000', $v1, $v2, $MAXAGE, "replaced, /3000 through the CDN (max-age $MAXAGE)");

    # Revalidation: after max-age Varnish asks a host with If-None-Match
    # and gets a 304; round robin sends one to each host.
    my %nm0 = map { $_ => metrics($_)->{not_modified} // 0 } qw(a b);
    my @rv;
    for (1 .. 3) {
        sleep $MAXAGE + 0.3;
        push @rv, sha16(via_cdn('/3000')->{body});
    }
    is("@rv", "$v2 $v2 $v2", 'after each max-age, /3000 revalidated: the same avatar');
    my @nm = map { (metrics($_)->{not_modified} // 0) - $nm0{$_} } qw(a b);
    ok($nm[0] > 0 && $nm[1] > 0, "revalidations answered 304 by host a ($nm[0]) and host b ($nm[1])");

    # The default avatar: never cached longer than --default-max-age.
    my $dflt = sha16(slurp("$A/-1.png"));
    my $d = via_cdn('/3001');
    is(sha16($d->{body}), $dflt, 'a missing id: the default avatar');
    like($d->{h}{'cache-control'} // '', qr/^public, max-age=$DEFAGE$/, "with max-age=$DEFAGE");
    my $dv = via_cdn('/3001?v=0123456789abcdef');
    like($dv->{h}{'cache-control'} // '', qr/^public, max-age=$DEFAGE$/, 'also at a versioned URL: never immutable');
    via_cdn('/3001') for 1 .. 2;
    my ($st3, $v3) = put('b', 3001, $up[4]);
    is($st3, 201, 'the id is uploaded');
    $watch->('/3001', $dflt, $v3, $DEFAGE, "the default avatar through the CDN (default-max-age $DEFAGE)");
    $watch->('/3001?v=0123456789abcdef', $dflt, $v3, $DEFAGE, 'and at the versioned URL it was served at');

    my $ab = ab_start("http://$IP{f}:6081/3000", 5, logf('ab-cdn.out'));
    my $r = ab_result($ab, logf('ab-cdn.out'), 'through Varnish, /3000 for 5 s');
    my %vs;
    for (`varnishstat -n '$TMP/varnish' -1 -f MAIN.cache_hit -f MAIN.cache_miss -f MAIN.fetch_304 -f MAIN.backend_req 2>/dev/null`) {
        $vs{$1} = $2 if /^MAIN\.(\w+)\s+(\d+)/;
    }
    my $hm = ($vs{cache_hit} // 0) + ($vs{cache_miss} // 0);
    ok(($vs{fetch_304} // 0) > 0, "Varnish revalidated with 304s ($vs{fetch_304})");
    diag sprintf('CDN: hit ratio %.2f%% (%d hits, %d misses), %d requests to the hosts of which %d answered 304',
        $hm ? 100 * ($vs{cache_hit} // 0) / $hm : 0, $vs{cache_hit} // 0, $vs{cache_miss} // 0,
        $vs{backend_req} // 0, $vs{fetch_304} // 0);
}

# ---- 7. host a lost: its responder, then its link ----------------------------------------------

{
    my $ab = ab_start("http://$IP{f}/2000", $PHASE, logf('ab-7.out'));
    sleep $PHASE / 3;
    kill 'KILL', -$resp{a};
    waitpid($resp{a}, 0);
    my ($st, $v) = put('b', 2000, $up[5]);
    my $g = via_lb("/2000?v=$v");
    ok($st == 200 && sha16($g->{body}) eq $v, 'host a\'s responder dead: an upload to host b is read back through the balancer');
    ab_result($ab, logf('ab-7.out'), 'host a\'s responder killed (kill -9 of its process group)');
    ok(start_responder('a'), 'host a\'s responder started again');
    my $h0 = metrics('a')->{hits} // 0;
    ok(wait_for(sub { via_lb('/2000'); (metrics('a')->{hits} // 0) > $h0 + 5 }, 15), 'traffic returns to host a');

    $ab = ab_start("http://$IP{f}/2000", $PHASE, logf('ab-8.out'));
    sleep $PHASE / 3;
    run(logf('ip.out'), 'ip', '-n', $NS{n}, 'link', 'set', 'pa', 'down');
    $downed{pa} = 1;
    ($st, $v) = put('b', 2000, $up[6]);
    $g = via_lb("/2000?v=$v");
    ok($st == 200 && sha16($g->{body}) eq $v, 'host a cut off: an upload to host b is read back through the balancer');
    ab_result($ab, logf('ab-8.out'), 'host a\'s link down');
}

diag sprintf('whole test: %.0f s', time - $T0);
done_testing();

# ---- cleanup ----------------------------------------------------------------------------

sub stop_pid {
    my ($pid, $group) = @_;
    return unless $pid;
    kill 'TERM', $group ? -$pid : $pid;
    return if wait_for(sub { waitpid($pid, POSIX::WNOHANG()) == $pid }, 10);
    kill 'KILL', $group ? -$pid : $pid;
    waitpid($pid, 0);
}

sub cleanup {
    my $rc = $?;
    return unless $TMP;
    # A link taken down comes back first, or host a's mount would wait
    # for the volume until the client's ping timeout.
    run(logf('ip.out'), 'ip', '-n', $NS{n}, 'link', 'set', $_, 'up') for keys %downed;
    stop_pid($varnish, 1);
    stop_pid($nginx{$_}, 1) for grep { $nginx{$_} } qw(f a b);
    stop_pid($resp{$_}, 1) for grep { $resp{$_} } qw(a b);
    for my $dir (@mounts) {
        next unless mounted($dir);
        if (run(logf('umount.out'), 'timeout', 20, 'umount', $dir) != 0) {
            my ($m) = $dir =~ m{/(\w)/avatars$};
            kill 'TERM', $mpid{$m} if $m && $mpid{$m};
            run(logf('umount.out'), 'umount', '-l', $dir);
        }
    }
    stop_pid($mpid{$_}, 0) for keys %mpid;
    if ($glusterd) {
        gluster('volume', 'stop', $VOL, 'force');
        gluster('volume', 'delete', $VOL);
        stop_pid($glusterd, 1);
    }
    kill 'KILL', $brick{pid} if $brick{pid} && kill 0, $brick{pid};
    unlink grep { defined } $brick{sock}, $brick{log};
    run('/dev/null', 'ip', 'netns', 'del', $_) for reverse @netns;
    # Whatever was reparented to us (the subreaper) is reaped here.
    1 while waitpid(-1, POSIX::WNOHANG()) > 0;
    if (grep { mounted($_) } @mounts) {
        print "# left mounted, not removed: $TMP\n";
    } else {
        system('rm', '-rf', $TMP);
    }
    $? = $rc;
}

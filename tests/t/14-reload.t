#!/usr/bin/perl
# 14-reload: any sequence of SIGHUPs ends in exactly --workers workers, all
# started after the last SIGHUP (issue 9, defect 1: two SIGHUPs 0.1 s apart
# left 112 of 200 workers for good, and 0 of 256). Each case a line: the
# pool size, how many SIGHUPs, how far apart, and how many workers are
# killed with SIGKILL just before each SIGHUP. After the last one the pool
# must settle with exactly that many children (from /proc), none of them
# older than the last SIGHUP, /status must say the same (alive, current,
# none draining), it must stay so, answer, and stop with status 0.
# Large pools run the plain build (the ASan one needs about 13 MB a worker);
# the rest the ASan build. AVATAR_BIN runs every case with one binary.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use List::Util qw(shuffle);
use Time::HiRes qw(sleep time);
use Responder qw(start stop fcgi parse_response wait_for children);
use Util qw(ROOT);

my $dir = tempdir('avatar-rl-XXXXXX', TMPDIR => 1, CLEANUP => 1);
system('cp', ROOT . '/avatars/-1.png', ROOT . '/avatars/1000.png', $dir) == 0 or die "cp: $?";

# workers  sighups  apart (s)  kills before each  build
my @cases = map { [split] } grep { /\S/ && !/^#/ } split /\n/, <<'EOT';
200        2        0.1        0                  plain
256        2        0.1        0                  plain
200        10       0.1        0                  plain
200        4        0.1        20                 plain
8          10       0.1        2                  asan
16         5        0.2        16                 asan
3          20       0.05       1                  asan
EOT

my $plain = ROOT . '/avatar.fcgi';
my @started;
END { kill 'KILL', map { ($_, children($_)) } @started }

sub status {
    my ($r) = @_;
    my ($raw) = fcgi($r, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/status');
    my (undef, undef, $body) = parse_response($raw);
    return eval { decode_json($body) } // {};
}

for my $c (@cases) {
    my ($n, $hups, $apart, $kills, $build) = @$c;
    my $name = "--workers $n, $hups SIGHUPs $apart s apart, $kills killed before each";
    my $r = start(dir => $dir, args => [ '--workers', $n ],
        bin => $ENV{AVATAR_BIN} // ($build eq 'plain' ? $plain : undef));
    push @started, $r->{pid};
    ok(wait_for(sub { children($r->{pid}) == $n }, 60), "$name: $n workers at start")
        or next;

    my %old;    # every worker that was alive before the last SIGHUP
    for my $i (1 .. $hups) {
        my @c = children($r->{pid});
        $old{$_} = 1 for @c;
        kill 'KILL', grep { defined } (shuffle @c)[0 .. $kills - 1] if $kills;
        kill 'HUP', $r->{pid};
        sleep $apart if $i < $hups;
    }
    my $t0 = time;
    my (@now, $st);
    my $settled = wait_for(sub {
        @now = children($r->{pid});
        return 0 unless @now == $n && !grep { $old{$_} } @now;
        $st = status($r);
        return ($st->{workers_alive} // -1) == $n && ($st->{workers_current} // -1) == $n
            && ($st->{workers_draining} // -1) == 0;
    }, 90);
    my $took = time - $t0;
    my $young = grep { !$old{$_} } @now;
    ok(@now == $n && $young == $n, "$name: $n workers, all started after the last SIGHUP")
        or diag(scalar(@now) . " workers, $young of them new");
    ok($settled, "$name: /status says $n alive, $n current, 0 draining")
        or diag(encode_json($st // status($r)));
    diag(sprintf '%s: settled %.2f s after the last SIGHUP', $name, $took);

    # It stays that way: nobody left over, nobody started twice.
    sleep 0.5;
    is(join(' ', children($r->{pid})), join(' ', sort { $a <=> $b } @now), "$name: and stays so");
    my ($st200) = parse_response(scalar fcgi($r, 'REQUEST_METHOD=GET', 'DOCUMENT_URI=/1000'));
    is($st200, 200, "$name: answers");
    is(stop($r), 0, "$name: SIGTERM, status 0");
    unlike($r->{log_text}, qr/AddressSanitizer|runtime error|killing it/, "$name: no sanitizer report, no worker killed");
    @started = grep { $_ != $r->{pid} } @started;
}

done_testing();

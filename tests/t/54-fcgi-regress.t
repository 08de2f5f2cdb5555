#!/usr/bin/perl
# Regression inputs for the record parser (issue 5, item 8): every file in
# tests/corpus/fcgi-regress/*.bin (the libfcgi crash records, and any input
# a fuzzer found) is sent raw to a pooled responder, and a good request
# must be answered while the attacking connection is still open and after
# it; no worker may die. Each file is also run once through the fuzz_fcgi_in
# libFuzzer target when clang can build it.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use Responder qw(start stop wait_for write_file children);

my $hostile = './build/fcgi-hostile';
-x $hostile or BAIL_OUT("$hostile not built (make build/fcgi-hostile)");
my @files = sort glob 'tests/corpus/fcgi-regress/*.bin';
cmp_ok(scalar @files, '>=', 1, scalar(@files) . ' regression inputs');

my $dir = tempdir('avatar-rg-XXXXXX', TMPDIR => 1, CLEANUP => 1);
system('cp', 'avatars/-1.png', 'avatars/1000.png', $dir) == 0 or die;
my $r = start(dir => $dir, args => [ '--workers', '2', '--timeout', '2' ]);
sub workers { return join ' ', children($r->{pid}) }    # read workers only
wait_for(sub { (() = workers() =~ /\d+/g) == 2 }, 10) or BAIL_OUT('pool did not start');
my $pool = workers();

for my $f (@files) {
    my $out = `$hostile --wait 4 $r->{sock} raw:$f 2>&1`;
    chomp $out;
    is($? >> 8, 0, "$f: good requests answered ($out)");
    like($out, qr/reaction=(?:closed|reset|closed-while-sending) .*ping=200 .*ping=200/, "$f: refused, then served");
    is(workers(), $pool, "$f: no worker died");
}
is(stop($r), 0, 'SIGTERM: exit 0');
unlike($r->{log_text}, qr/AddressSanitizer|runtime error|restarting/, 'no sanitizer report, no restart');

SKIP: {
    skip 'clang cannot build build/fuzz_fcgi_in here', 1
        unless system('make -s build/fuzz_fcgi_in >/dev/null 2>&1') == 0;
    my $out = `build/fuzz_fcgi_in @files 2>&1`;
    is($? >> 8, 0, 'fuzz_fcgi_in runs every regression input without a finding') or diag $out;
}
done_testing();

#!/usr/bin/perl
# A symlinked --dir behind lighttpd in x-sendfile mode (issue 9, defect 8):
# the avatars directory is reached through a symlink, and both the
# responder's --dir and lighttpd's x-sendfile-docroot name the symlink, as
# an admin writes them. The X-Sendfile path must be under the docroot as
# written, or lighttpd refuses every avatar, the default included. The same
# for Apache's XSendFilePath is in tests/t/37-e2e-apache.t.
use strict;
use warnings;
use FindBin;
use Test::More;
BEGIN { require "$FindBin::Bin/../lib/e2e.pl" }
our ($LIVE, $SHORT);

need_tools(qw(curl spawn-fcgi lighttpd));
my $tmp = File::Temp::tempdir('e2e-symdir-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $av  = make_avatars($tmp);
symlink $av, "$tmp/link" or die "symlink: $!";

# path          file        Content-Type  Cache-Control
my @cases = (
    ['/1000',     '1000.png', 'image/png',  $LIVE],
    ['/1001.png', '1001.png', 'image/jpeg', $LIVE],
    ['/1002',     '1002.gif', 'image/gif',  $LIVE],
    ['/999',      '-1.png',   'image/png',  $SHORT],
);
for my $server (qw(lighttpd lighttpd-spawn)) {
    my $st = start_stack(server => $server, mode => 'x-sendfile', avatars => "$tmp/link");
    like slurp("$st->{run}/lighttpd/lighttpd.conf"), qr{"x-sendfile-docroot" *=> *\( *"\Q$tmp\E/link/" *\)},
        "$server: x-sendfile-docroot names the symlink";
    is_avatar(http($st->{port}, GET => $_->[0]), "$av/$_->[1]", $_->[2], $_->[3],
        "$server, symlinked --dir: GET $_->[0]") for @cases;
    stop_stack($st);
}

done_testing();

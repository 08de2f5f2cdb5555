#!/usr/bin/perl
# End to end through nginx's fast path (conf/nginx/avatar-fastpath.conf):
# nginx serves the published tree DIR/.pub itself and hands everything
# else to avatar.fcgi in bytes mode. The tables are in
# tests/lib/fastpath.pl, shared with the lighttpd fast path.
use strict;
use warnings;
use FindBin;
BEGIN { require "$FindBin::Bin/../lib/fastpath.pl" }
use Test::More;

# nginx's own validators for a published file: mtime (seconds) and size.
sub nginx_etag { my @s = stat $_[0]; sprintf '"%x-%x"', $s[9], $s[7] }

fastpath_e2e(server => 'nginx', mode => 'bytes', etag => \&nginx_etag, keep_conn => 1);
done_testing();

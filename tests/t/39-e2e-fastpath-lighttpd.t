#!/usr/bin/perl
# End to end through lighttpd's fast path (conf/lighttpd/avatar-fastpath.conf
# and avatar-fastpath.lua, mod_magnet): lighttpd serves the published tree
# DIR/.pub itself and hands everything else to avatar.fcgi in x-sendfile
# mode. The tables are in tests/lib/fastpath.pl, shared with nginx's fast
# path. lighttpd's ETag is a hash of mtime and size, so it is checked for
# being stable and for answering 304, not computed.
use strict;
use warnings;
use FindBin;
BEGIN { require "$FindBin::Bin/../lib/fastpath.pl" }
use Test::More;

fastpath_e2e(server => 'lighttpd', mode => 'x-sendfile', need => ['/usr/lib/lighttpd/mod_magnet.so']);
done_testing();

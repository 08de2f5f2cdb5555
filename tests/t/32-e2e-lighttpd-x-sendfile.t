#!/usr/bin/perl
# End to end through lighttpd in x-sendfile mode (conf/lighttpd/lighttpd.conf,
# external spawn-fcgi pool): avatar.fcgi names the file, lighttpd sends it,
# limited by x-sendfile-docroot. Paths outside /ID and /avatar/ID are 404, as with nginx.
# Tables in tests/lib/e2e.pl.
use strict;
use warnings;
use FindBin;
BEGIN { require "$FindBin::Bin/../lib/e2e.pl" }
e2e_mode(server => 'lighttpd', mode => 'x-sendfile', range => 206);

#!/usr/bin/perl
# End to end through lighttpd in bytes mode (conf/lighttpd/lighttpd-bytes.conf,
# external spawn-fcgi pool, x-sendfile disabled): avatar.fcgi sends the image.
# Tables in tests/lib/e2e.pl.
use strict;
use warnings;
use FindBin;
BEGIN { require "$FindBin::Bin/../lib/e2e.pl" }
e2e_mode(server => 'lighttpd', mode => 'bytes', range => 206);

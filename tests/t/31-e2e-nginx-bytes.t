#!/usr/bin/perl
# End to end through nginx in bytes mode (conf/nginx/avatar-bytes.conf):
# avatar.fcgi sends the image itself; nginx slices ranges (fastcgi_force_ranges)
# and has no internal location. Tables in tests/lib/e2e.pl.
use strict;
use warnings;
use FindBin;
BEGIN { require "$FindBin::Bin/../lib/e2e.pl" }
e2e_mode(server => 'nginx', mode => 'bytes', range => 206);

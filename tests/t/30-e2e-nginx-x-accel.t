#!/usr/bin/perl
# End to end through nginx in x-accel mode (conf/nginx/avatar-x-accel.conf):
# avatar.fcgi names the file, nginx's internal /_avatars/ location sends it.
# The tables (found, missing, HEAD, conditional, Range, methods, internal
# location, counters, hostile paths, replace by rename, ab load, --missing
# 404) are in tests/lib/e2e.pl.
use strict;
use warnings;
use FindBin;
BEGIN { require "$FindBin::Bin/../lib/e2e.pl" }
e2e_mode(server => 'nginx', mode => 'x-accel', range => 206);

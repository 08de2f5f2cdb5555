#!/usr/bin/perl
# End to end through lighttpd that starts avatar.fcgi itself
# (conf/lighttpd/lighttpd-spawn.conf: bin-path, max-procs, bin-environment),
# x-sendfile mode. Tables in tests/lib/e2e.pl.
use strict;
use warnings;
use FindBin;
BEGIN { require "$FindBin::Bin/../lib/e2e.pl" }
e2e_mode(server => 'lighttpd-spawn', mode => 'x-sendfile', range => 206);

#!/usr/bin/perl
# 74-upload-race: a short run of tests/lib/upload-race.pl for make test:
# 12 parallel uploads to one id while 2 readers fetch it (every answer one
# whole image among those uploaded), 3 kills -9 of the upload process at
# random instants (the old or the new avatar, no temporary file after the
# restart), and a flood of 12 uploads on one upload process (stored or 503
# with Retry-After). make stress runs the full numbers (tests/stress/45).
use strict;
use warnings;
use FindBin;
use Test::More;
BEGIN { require "$FindBin::Bin/../lib/upload-race.pl" }

upload_race(uploads => 12, readers => 2, kills => 3, flood => 12);
done_testing();

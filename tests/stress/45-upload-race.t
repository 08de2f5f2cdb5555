#!/usr/bin/perl
# 45-upload-race: issue 11's numbers for tests/lib/upload-race.pl: 50
# parallel uploads to one id while 4 readers fetch it (every answer one
# whole image among those uploaded, nothing torn, no temporary file left),
# 20 kills -9 of the upload process at random instants (the old or the new
# avatar each time, never neither, no temporary file after the restart),
# and a flood of 50 uploads on one upload process (stored or 503 with
# Retry-After).
use strict;
use warnings;
use FindBin;
use Test::More;
BEGIN { require "$FindBin::Bin/../lib/upload-race.pl" }

upload_race(uploads => 50, readers => 4, kills => 20, flood => 50);
done_testing();

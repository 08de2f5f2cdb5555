# Concurrent writes to one avatar, shared by tests/t/74-upload-race.t (a
# short run in make test) and tests/stress/45-upload-race.t (issue 11's
# full numbers). upload_race(%o) starts nginx in bytes mode (GET bodies are
# the responder's own bytes) and checks:
#   - many parallel uploads to one id (distinct images, PNG and JPEG) while
#     readers fetch it: every answer a reader gets is one whole image among
#     those uploaded, never torn, never the default; no temporary file;
#   - kill -9 of the upload process at random instants: the avatar is the
#     old one or the new one, never neither; no temporary file once the
#     upload process has been restarted, nor after a restart of the stack;
#   - with one upload process and a flood of uploads, each is stored or
#     refused with 503 and Retry-After.
#
# The oracle. Normalisation is a function of the input bytes: the same
# image uploaded twice is stored as the same bytes (checked first). So each
# test image is uploaded once, alone, to its own id, and the sha256 of what
# GET serves for it is recorded; during the race every GET body must have
# one of those digests, with the Content-Type and length that go with it.
# A torn file, a half-written temporary file or a mix of two images cannot
# have one of them.
use strict;
use warnings;
use Test::More;
use Digest::SHA qw(sha256_hex);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
BEGIN { require Cwd; my $d = Cwd::abs_path(__FILE__); $d =~ s{[^/]+$}{}; require "${d}upload.pl" }
our ($UTMP);

my $RACE_ID = 6000;

# Runs $code in a child process; returns its pid.
sub spawn {
    my ($code) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{INT} = $SIG{TERM} = 'DEFAULT';
        my $rc = eval { $code->(); 0 } // 1;
        POSIX::_exit($rc);
    }
    return $pid;
}

# Waits for every pid, at most $secs seconds in all; kills what is left.
# Returns the number that had to be killed.
sub reap {
    my ($secs, @pids) = @_;
    my %left = map { $_ => 1 } @pids;
    my $end = time + $secs;
    while (%left && time < $end) {
        for my $p (keys %left) {
            delete $left{$p} if waitpid($p, WNOHANG) == $p;
        }
        sleep 0.05 if %left;
    }
    for my $p (keys %left) {
        kill 'KILL', $p;
        waitpid $p, 0;
    }
    return scalar keys %left;
}

sub lines_of { my ($f) = @_; return -e $f ? split /\n/, slurp($f) : () }

sub append {
    my ($f, $line) = @_;
    open my $fh, '>>', $f or die "$f: $!";
    syswrite $fh, "$line\n";
    close $fh;
}

# The test images: distinct pictures, PNG and JPEG, different sizes, so a
# replacement often changes the extension too. The last one is the largest
# stored file.
sub race_images {
    return (
        draw('r0.png', '-size', '300x300', 'gradient:crimson-blue'),
        draw('r1.jpg', '-size', '640x480', 'gradient:white-green', '-quality', '90'),
        draw('r2.png', '-size', '500x500', 'gradient:yellow-purple'),
        draw('r3.jpg', '-size', '1600x1600', 'gradient:navy-orange', '-quality', '90'),
        draw('r4.png', '-size', '200x200', 'radial-gradient:black-white'),
        draw('r5.jpg', '-size', '2400x1800', 'radial-gradient:crimson-cyan', '-quality', '85'),
        # Noise does not compress: a 1.7 MB PNG stored as about as much, so
        # the store's temporary file is there long enough to be killed with.
        draw('r6.png', '-size', '768x768', '-seed', '6', 'xc:', '+noise', 'Random'),
    );
}

sub upload_race {
    my (%o) = @_;
    my ($uploads, $readers, $kills, $flood) = @o{qw(uploads readers kills flood)};
    need_tools(qw(curl spawn-fcgi nginx convert identify));
    my $tmp = tempdir('race-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $av = make_avatars($tmp);
    my $st = start_stack(server => 'nginx', mode => 'bytes', avatars => $av, args => ['--key-file', key_file()]);
    my ($u, $port) = ($st->{url}, $st->{port});
    my @img = race_images();
    my @body = @img;    # files, uploaded with curl -T

    # ---- the oracle: what each image is stored as ----------------------------------
    my (%who, @sha, @dur);    # digest -> image; image -> digest; image -> seconds to upload
    for my $i (0 .. $#img) {
        my $t0 = time;
        my $r = put_file($u, 7000 + $i, sign_cli(PUT => 7000 + $i), $body[$i]);
        $dur[$i] = time - $t0;
        my $g = http($port, GET => "/" . (7000 + $i));
        my $info = image_info($g->{body});
        unless ($r->{status} == 201 && $g->{status} == 200 && $info->{whole}
            && length($g->{body}) == ($r->{json}{bytes} // -1)) {
            fail("image $i: stored alone and served whole (PUT $r->{status}, GET $g->{status})");
            diag $r->{body};
            stop_stack($st);
            return;
        }
        $sha[$i] = sha256_hex($g->{body});
        $who{ $sha[$i] } = { i => $i, type => $info->{type}, len => length $g->{body} };
    }
    is scalar(keys %who), scalar(@img), 'each test image is stored as distinct bytes';
    {
        my $r = put_file($u, 7100, sign_cli(PUT => 7100), $body[0]);
        is sha256_hex(http($port, GET => '/7100')->{body}), $sha[0],
            'the same image uploaded again is stored as the same bytes (the oracle holds)';
    }

    # ---- parallel uploads to one id while readers fetch it ----------------------------
    my $q = sign_cli(PUT => $RACE_ID);
    is put_file($u, $RACE_ID, $q, $body[0])->{status}, 201, "the race id starts as image 0";
    my ($go, $stop) = ("$tmp/go", "$tmp/stop");
    my @rpids = map {
        my $n = $_;
        spawn(sub {
            my $deadline = time + 300;
            for (1 .. 1_000_000) {
                last if -e $stop || time > $deadline;
                my $g = http($port, GET => "/$RACE_ID");
                append("$tmp/read.$n", join ' ', $g->{status}, length $g->{body}, sha256_hex($g->{body}),
                    hdr($g, 'Content-Type') // '-', hdr($g, 'Content-Length') // '-');
            }
        });
    } 1 .. $readers;
    my @upids = map {
        my $k = $_;
        spawn(sub {
            my $i = $k % @img;
            for (1 .. 500) { last if -e $go; sleep 0.01 }
            my $r = put_file($u, $RACE_ID, $q, $body[$i]);
            append("$tmp/up.$k", join ' ', $i, $r->{status}, $r->{json}{bytes} // '-', $r->{json}{type} // '-',
                hdr($r, 'Retry-After') // '-', defined $r->{json}{error} ? 'error' : '-');
        });
    } 1 .. $uploads;
    sleep 0.3;
    spew($go, '');
    my $stuck = reap(180, @upids);
    is $stuck, 0, "$uploads parallel uploads all answered";
    ok settle($st, 300), 'the upload processes are idle again';
    spew($stop, '');
    reap(60, @rpids);

    # Any image sent may be what readers see: an upload answered 503
    # because it outlived --timeout may still complete ("it may still
    # complete", says its error), so a 503 does not rule its image out.
    my %ok_img = (0 => 1, map { ($_ % @img) => 1 } 1 .. $uploads);
    my %stored;
    my ($n503, $bad) = (0, 0);
    for my $k (1 .. $uploads) {
        my ($line) = lines_of("$tmp/up.$k");
        my ($i, $status, $bytes, $type, $retry, $err) = split ' ', $line // '- 0';
        if ($status == 200 || $status == 201) {
            my $w = $who{ $sha[$i] };
            if ($bytes eq $w->{len} && $type eq $w->{type}) { $stored{$i} = 1 }
            else { $bad++; diag "upload $k (image $i): answered $bytes bytes of $type, stored alone it was $w->{len} of $w->{type}" }
        } elsif ($status == 503) {
            $n503++;
            unless ($retry =~ /^\d+$/ && $err eq 'error') {
                $bad++;
                diag "upload $k: 503 without Retry-After or JSON error";
            }
        } else {
            $bad++;
            diag "upload $k (image $i): status $status";
        }
    }
    is $bad, 0, 'every upload answered 200/201 (with the stored size and type) or 503 (with Retry-After)';
    ok scalar(keys %stored), 'uploads were stored (' . scalar(keys %stored) . " distinct images; $n503 answered 503)";

    my ($reads, $torn, %seen) = (0, 0);
    for my $n (1 .. $readers) {
        for (lines_of("$tmp/read.$n")) {
            my ($status, $len, $sha, $ctype, $clen) = split ' ';
            $reads++;
            my $w = $who{$sha};
            if ($status == 200 && $w && $ok_img{ $w->{i} } && $ctype eq $w->{type} && $clen eq $len) {
                $seen{ $w->{i} }++;
            } else {
                $torn++;
                diag "reader $n: $status, $len bytes, $ctype, Content-Length $clen: not one of the images uploaded"
                    if $torn <= 10;
            }
        }
    }
    cmp_ok $reads, '>', 0, "readers fetched the id ($reads GETs)";
    is $torn, 0, 'every GET answer is one whole image among those uploaded';
    cmp_ok scalar(keys %seen), '>', 1, 'readers saw the avatar change (' . join(', ', map {"image $_: $seen{$_}"} sort keys %seen) . ')';
    {
        my $g = http($port, GET => "/$RACE_ID");
        my $w = $who{ sha256_hex($g->{body}) };
        ok $w && $ok_img{ $w->{i} }, 'afterwards the avatar is one of the images uploaded';
        is scalar(id_files($av, $RACE_ID)), 1, 'one file for the id: ' . join(' ', id_files($av, $RACE_ID));
        is_deeply [tmp_files($av)], [], 'no temporary file';
    }

    kill_uploads($st, $av, \@body, \%who, \@sha, $kills, \@dur) if $kills;
    stop_stack($st);

    # After a restart of the stack: no temporary file, the avatar served.
    my $st2 = start_stack(server => 'nginx', mode => 'bytes', avatars => $av, args => ['--key-file', key_file()]);
    is_deeply [tmp_files($av)], [], 'after a restart: no temporary file';
    ok $who{ sha256_hex(http($st2->{port}, GET => "/$RACE_ID")->{body}) }, 'after a restart: the avatar is whole';
    stop_stack($st2);

    flood($av, \@body, $flood) if $flood;
}

# Waits (at most $secs) until the upload processes have used no CPU for a
# second: jobs whose client was answered 503 after --timeout may still be
# queued or running, and would change the avatar under a later check.
sub settle {
    my ($st, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        my $c = cpu_ticks(upload_pids($st));
        sleep 1;
        return 1 if cpu_ticks(upload_pids($st)) == $c;
    }
    return 0;
}

# kill -9 of the upload process at random instants of an upload, $kills
# times. Each round uploads one of the slowest images (alternating with
# another family where it can, so the extension changes too), waits until
# the upload process has started on it (its CPU time moves), sleeps a
# random part of what that image took alone, and kills it.
sub kill_uploads {
    my ($st, $av, $body, $who, $sha, $kills, $dur) = @_;
    my $port = $st->{port};
    my @ups = upload_pids($st);
    ok @ups >= 1, 'the upload processes are the upload manager\'s children (' . "@ups)" or return;
    # The noise PNG (the last image) is for the aimed rounds only, so the
    # round before one never leaves it in place.
    my @slow = (sort { $dur->[$b] <=> $dur->[$a] } 0 .. $#$body - 1)[0 .. 2];
    note 'kill rounds upload images ' . join(', ', map { sprintf '%d (%.2f s alone)', $_, $dur->[$_] } @slow);
    my %outcome;
    my ($never_neither, $tmp_left) = (0, 0);
    for my $k (1 .. $kills) {
        my $cur = sha256_hex(http($port, GET => "/$RACE_ID")->{body});
        my $ci = $who->{$cur} ? $who->{$cur}{i} : -1;
        my @cand = grep { $_ != $ci } @slow;
        my $ni = $cand[ $k % @cand ];
        $ni = $#$body if $k % 3 == 0 && $ci != $#$body;    # the noise PNG
        # A process that dies young is restarted after a back-off; wait
        # until every upload process has lived a second, so each kill
        # meets a ready one.
        poll_until(sub { my @p = upload_pids($st); @p && !grep { age_of($_) < 1.2 } @p }, 15)
            or diag "kill $k: no settled upload process";
        my @before = upload_pids($st);
        my $cpu0 = cpu_ticks(@before);
        my $q = sign_cli(PUT => $RACE_ID);
        my $res = "$UTMP/kill.$k";
        my $pid = spawn(sub {
            my $r = put_file($st->{url}, $RACE_ID, $q, $body->[$ni]);
            spew($res, $r->{status});
        });
        poll_until(sub { cpu_ticks(@before) > $cpu0 || -e $res }, 15);
        # The first kill comes as soon as the job is seen running, so at
        # least one meets an upload in progress; every third waits for the
        # temporary file to appear (the store's narrow window: write, fsync,
        # rename), so the restarted process has a dead writer's file to
        # remove; the others come at random.
        my $delay = 0;
        my $t0 = time;
        if ($k % 3 == 0) {
            my $end = $t0 + 60;
            1 until tmp_files($av) || -e $res || time > $end;
            $delay = time - $t0;
        } elsif ($k > 1) {
            $delay = rand(1.2 * $dur->[$ni]);
            sleep $delay;
        }
        my @victims = upload_pids($st);
        kill 'KILL', @victims;
        my $left = tmp_files($av);
        $outcome{'a temporary file left by the kill'}++ if $left;
        reap(60, $pid);
        my $status = -e $res ? slurp($res) : 'none';
        my $g = http($port, GET => "/$RACE_ID");
        my $now = sha256_hex($g->{body});
        my $what = $now eq $cur ? 'old' : $now eq $sha->[$ni] ? 'new' : 'neither';
        $outcome{"$what/$status"}++;
        note sprintf 'kill %d: image %d, %.3f s after the job started%s: upload %s, avatar %s%s', $k, $ni, $delay,
            $k % 3 == 0 ? ' (aimed at the temporary file)' : '', $status, $what, $left ? ', a temporary file left' : '';
        if ($what eq 'neither' || $g->{status} != 200 || ($status =~ /^20[01]$/ && $what ne 'new')) {
            $never_neither++;
            diag sprintf 'kill %d, %.3f s into the job (pids %s): upload answered %s, GET %s: %s', $k, $delay,
                "@victims", $status, $g->{status}, $what;
        }
        # The restarted upload process removes the dead one's temporary file.
        unless (poll_until(sub { !tmp_files($av) }, 15)) {
            $tmp_left++;
            diag "kill $k: temporary files left: " . join(' ', tmp_files($av));
        }
    }
    is $never_neither, 0, "$kills kills -9 of the upload process: the old or the new avatar each time, "
        . 'and the new one whenever the upload was answered 2xx';
    is $tmp_left, 0, 'no temporary file once the upload process is restarted';
    note 'outcomes (avatar/upload status): ' . join(', ', map {"$_ x$outcome{$_}"} sort keys %outcome);
    ok $outcome{'old/500'} || $outcome{'new/500'}, 'some kills met an upload in progress (answered 500)';
    ok poll_until(sub { upload_pids($st) >= 1 }, 15), 'upload processes are running again';
}

# One upload process, at most 2 jobs waiting per read worker, $n uploads
# at once of the largest image: each is stored or answered 503 with
# Retry-After and a JSON error; some are 503.
sub flood {
    my ($av, $body, $n) = @_;
    return unless has_options('upload-workers', 'upload-queue');
    my $st = start_stack(server => 'nginx', mode => 'bytes', avatars => $av,
        args => ['--key-file', key_file(), '--upload-workers', 1, '--upload-queue', 2]);
    my $port = $st->{port};
    my $q = sign_cli(PUT => 6001);
    my $go = "$UTMP/flood-go";
    my @pids = map {
        my $k = $_;
        spawn(sub {
            for (1 .. 500) { last if -e $go; sleep 0.01 }
            my $r = put_file($st->{url}, 6001, $q, $body->[5]);
            append("$UTMP/flood.$k", join ' ', $r->{status}, hdr($r, 'Retry-After') // '-',
                defined $r->{json}{error} ? 'error' : '-');
        });
    } 1 .. $n;
    sleep 0.3;
    spew($go, '');
    is reap(300, @pids), 0, "$n uploads at once with --upload-workers 1: all answered";
    ok settle($st, 300), 'the upload process is idle again';
    my %count;
    for my $k (1 .. $n) {
        my ($line) = lines_of("$UTMP/flood.$k");
        my ($status, $retry, $err) = split ' ', $line // '0 - -';
        my $kind = $status =~ /^20[01]$/ ? 'stored'
            : $status == 503 && $retry =~ /^\d+$/ && $err eq 'error' ? '503' : "bad:$status/$retry/$err";
        $count{$kind}++;
    }
    note join ', ', map {"$_ x$count{$_}"} sort keys %count;
    is join(' ', grep {/^bad/} sort keys %count), '', 'each stored, or 503 with Retry-After and a JSON error';
    ok $count{stored}, 'some were stored';
    ok $count{503}, 'some were refused with 503: the slots are bounded';
    is_deeply [tmp_files($av)], [], 'no temporary file';
    is http($port, GET => '/1001')->{status}, 200, 'a good GET afterwards';
    stop_stack($st);
}

1;

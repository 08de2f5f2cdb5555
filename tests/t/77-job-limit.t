#!/usr/bin/perl
# 77-job-limit: the write path's processes are kept alive.
# An upload process whose job never ends is killed when the
# job has run --job-limit seconds, and a new one takes the next jobs. The
# hang is made with SIGSTOP on the process that holds the job (it makes no
# progress, as a deadlock in a library would), for both kinds of job:
#   - a PUT: its client gets the 503 of --timeout, the store keeps the old
#     avatar whole, no temporary file is left, the log names the job, and
#     the next PUT is stored;
#   - a variants job (a read found a size missing): reads never notice,
#     the log names it, and the next variants job is done.
# And the upload manager itself, killed with SIGKILL, is started again by
# the supervisor, with new upload processes; a PUT sent while none runs
# (the supervisor is held with SIGSTOP meanwhile) waits in the queue and
# is stored.
use strict;
use warnings;
use FindBin;
use File::Copy qw(copy);
use Test::More;
BEGIN { require "$FindBin::Bin/../lib/upload.pl" }
our ($UTMP, $MTIME);

need_tools(qw(curl spawn-fcgi nginx convert));
has_options(qw(job-limit upload-workers)) or done_testing(), exit;

my $LIMIT = 6;
# Pictures that take libvips a while (noise does not compress), and small ones.
my $BIG  = draw('j-big.jpg', '-size', '2000x2000', 'xc:gray', '+noise', 'Random', '-quality', '95');
my $OLD  = draw('j-old.png', '-size', '64x64', 'gradient:red-blue');
my $NEXT = draw('j-next.png', '-size', '80x80', 'gradient:green-white');

my $tmp = tempdir('e2e-limit-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $av = make_avatars($tmp);
my $st = start_stack(server => 'nginx', mode => 'bytes', avatars => $av,
    args => ['--key-file', key_file(), '--upload-workers', 1, '--timeout', 4, '--job-limit', $LIMIT]);
my @stopped;    # let go at the end whatever happened, or the stack cannot stop
END { kill 'CONT', @stopped if @stopped }

sub log_text { slurp_or_empty("$st->{run}/avatar.log") }

# The count of killed jobs in /metrics (through the front server).
sub killed_count {
    my $m = get_url($st->{url}, '/metrics')->{body};
    return $m =~ /^avatar_upload_jobs_killed_total (\d+)$/m ? $1 : undef;
}

# The one upload process, once it holds a job: the PUT's body (a memfd)
# or the store's lock file is among its descriptors.
sub busy_uploader {
    my ($pid) = upload_pids($st);
    return undef unless $pid;
    opendir my $dh, "/proc/$pid/fd" or return undef;
    for (readdir $dh) {
        my $to = readlink "/proc/$pid/fd/$_" // next;
        return $pid if $to =~ m{memfd:avatar-upload|/\.store\.lock$};
    }
    return undef;
}

# Stops the upload process as soon as it holds a job; returns its pid.
sub stop_when_busy {
    my $pid;
    poll_until(sub { $pid = busy_uploader() }, 30) or return undef;
    kill 'STOP', $pid;
    push @stopped, $pid;
    return $pid;
}

# A signed PUT from a child process; returns its pid and the file that
# will hold "STATUS BODY".
sub put_in_child {
    my ($id, $file) = @_;
    my $res = "$UTMP/j-put.$id.status";
    my $kid = fork // die "fork: $!";
    if (!$kid) {
        my $r = eval { put_file($st->{url}, $id, sign_cli(PUT => $id), $file) };
        spew($res, $r ? "$r->{status} $r->{body}" : 'none');
        POSIX::_exit(0);
    }
    return ($kid, $res);
}

# Temporary files anywhere in the store (the avatars' and the variants').
sub all_tmp { grep { m{/\.tmp-[^/]*$} } glob("$av/.tmp-* $av/.v/*/.tmp-*") }

# After the kill: the old process gone, a new one there, the log line.
sub replaced {
    my ($victim, $what, $label, $killed0) = @_;
    my $line;
    ok poll_until(sub { ($line) = log_text() =~ /^(.*\Q$what\E ran over --job-limit \($LIMIT s\).*)$/m }, 30),
        "$label: the log names the job that ran over --job-limit"
        or diag log_text();
    like $line // '', qr/upload process $victim killed; a new one starts/, "$label: and the process it killed";
    is killed_count(), $killed0 + 1, "$label: avatar_upload_jobs_killed_total grew by one";
    ok poll_until(sub { !alive_pid($victim) }, 10), "$label: the stopped process is gone";
    ok poll_until(sub { my @p = upload_pids($st); @p == 1 && $p[0] != $victim }, 10),
        "$label: a new upload process took its place";
}

# ---- a PUT that hangs ---------------------------------------------------------------
{
    my $r = put_file($st->{url}, 3200, sign_cli(PUT => 3200), $OLD);
    is $r->{status}, 201, 'PUT /3200 (a small PNG): 201';
    my $old = id_bytes($av, 3200);
    my $killed0 = killed_count() // -1;
    my ($kid, $res) = put_in_child(3200, $BIG);
    my $victim = stop_when_busy();
    ok $victim, 'PUT /3200 (a 2000x2000 JPEG): its upload process is stopped while it holds the job';
    waitpid $kid, 0;
    like slurp_or_empty($res), qr/^503 .*longer than --timeout/, 'its client gets the 503 of --timeout';
    replaced($victim, 'PUT 3200', 'PUT', $killed0);
    ok defined $old && (id_bytes($av, 3200) // '') eq $old, 'the store keeps the old avatar of 3200, whole';
    ok poll_until(sub { !all_tmp() }, 10), 'no temporary file is left' or diag join ' ', all_tmp();
    is get_url($st->{url}, '/3200')->{body}, $old, 'GET /3200: the old avatar';
    $r = put_file($st->{url}, 3201, sign_cli(PUT => 3201), $NEXT);
    is $r->{status}, 201, 'the next PUT (/3201) is stored: 201' or diag $r->{body};
}

# ---- a variants job that hangs ------------------------------------------------------
{
    # Hand-filled originals: their variants are made when a read asks.
    for ([3300, $BIG, 'jpg'], [3301, $NEXT, 'png']) {
        my ($id, $src, $ext) = @$_;
        copy($src, "$av/$id.$ext.tmp") or die "copy: $!";
        utime $MTIME, $MTIME, "$av/$id.$ext.tmp";
        rename "$av/$id.$ext.tmp", "$av/$id.$ext" or die "rename: $!";
    }
    my $orig = slurp("$av/3300.jpg");
    my $killed0 = killed_count() // -1;
    my $r = get_url($st->{url}, '/3300?s=64');
    ok $r->{status} == 200 && $r->{body} eq $orig, 'GET /3300?s=64: the original at once, and a variants job is sent';
    my $victim = stop_when_busy();
    ok $victim, 'the upload process is stopped while it holds the variants job';
    $r = get_url($st->{url}, '/3300');
    ok $r->{status} == 200 && $r->{body} eq $orig, 'reads go on meanwhile: GET /3300';
    replaced($victim, 'variants job 3300', 'variants', $killed0);
    get_url($st->{url}, '/3301?s=64');
    ok poll_until(sub { glob "$av/.v/64/3301.*.png" }, 30), 'the next variants job (3301) is done';
    ok poll_until(sub { !all_tmp() }, 10), 'no temporary file is left' or diag join ' ', all_tmp();
}

# ---- the upload manager killed ------------------------------------------------------
{
    my $sup = responder_pid($st);
    # The manager: the supervisor's one child with children of its own.
    my $manager = sub { (grep { my @k = kids_of($_); @k } kids_of($sup))[0] };
    my $old = $manager->();
    my @old_ups = upload_pids($st);
    ok $old && @old_ups == 1, "the upload manager ($old) and its upload process (@old_ups)";
    # Held, the supervisor cannot start another manager yet: the PUT below
    # is sent while no upload process runs at all.
    kill 'STOP', $sup;
    push @stopped, $sup;
    kill 'KILL', $old;
    ok poll_until(sub { !alive_pid($old) && !grep { alive_pid($_) } @old_ups }, 20),
        'SIGKILL to the manager: it is gone, and its upload process with it';
    my ($kid, $res) = put_in_child(3400, $NEXT);
    # Time for the PUT to reach the queue (if it takes longer, the checks
    # below still hold; they only prove less).
    Time::HiRes::sleep(0.5);
    kill 'CONT', $sup;
    my $new;
    ok poll_until(sub { $new = $manager->(); $new && $new != $old }, 20),
        'the supervisor starts a new upload manager' or diag log_text();
    like log_text(), qr/upload manager $old killed by signal 9; restarting/, 'and logs why';
    ok poll_until(sub { my @p = upload_pids($st); @p == 1 && !grep { $_ == $old_ups[0] } @p }, 20),
        'with a new upload process';
    waitpid $kid, 0;
    like slurp_or_empty($res), qr/^201 /, 'the PUT sent while none ran waited in the queue and is stored: 201';
    is get_url($st->{url}, '/3400')->{body}, id_bytes($av, 3400), 'GET /3400 serves it';
    my $r = get_url($st->{url}, '/3300?s=32');
    ok $r->{status} == 200, 'reads went on';
}

stop_stack($st);
done_testing();

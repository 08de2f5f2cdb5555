#!/usr/bin/perl
# Start-up of avatar.fcgi: every bad option value, unknown option, bad
# directory or missing socket stops it with exit status 2 and one line on
# stderr naming the problem; --help and --version exit 0.
use strict;
use warnings;
use lib 'tests/lib';
use Test::More;
use File::Temp qw(tempdir);
use Responder qw(bin);

my $tmp = tempdir('avatar-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
mkdir "$tmp/av";
mkdir "$tmp/locked", 0;
open my $f, '>', "$tmp/file" or die; close $f;

# args, env, text that the one line must contain
my @cases = (
    [ [qw(--mode foo)],              {}, '--mode' ],
    [ [qw(--mode)],                  {}, '--mode' ],
    [ [qw(--missing maybe)],         {}, '--missing' ],
    [ [qw(--max-age -1)],            {}, '--max-age' ],
    [ [qw(--max-age 1e3)],           {}, '--max-age' ],
    [ [qw(--max-age 07200)],         {}, '--max-age' ],
    [ [qw(--default-max-age x)],     {}, '--default-max-age' ],
    [ [qw(--stale-while-revalidate -1)], {}, '--stale-while-revalidate' ],
    [ [qw(--versioned-max-age 1y)],  {}, '--versioned-max-age' ],
    [ [qw(--cors-max-age 86401)],    {}, '--cors-max-age' ],
    [ ['--cors-origin', ''],         {}, '--cors-origin' ],
    [ [qw(--cors-origin app.example)], {}, '--cors-origin' ],
    [ [qw(--cors-origin https://App.example)], {}, '--cors-origin' ],
    [ [qw(--cors-origin https://app.example/)], {}, '--cors-origin' ],
    [ [qw(--cors-origin https://app.example/x)], {}, '--cors-origin' ],
    [ ['--cors-origin', '*,https://app.example'], {}, '--cors-origin' ],
    [ ['--cors-origin', 'https://a.example,'], {}, '--cors-origin' ],
    [ ['--cors-origin', 'https://a.example, https://b.example'], {}, '--cors-origin' ],
    [ ['--cors-origin', "https://a.example\r\nX: y"], {}, '--cors-origin' ],
    [ [],                            { AVATAR_CORS_ORIGIN => 'nope' }, 'AVATAR_CORS_ORIGIN' ],
    [ [qw(--default-id 1.5)],        {}, '--default-id' ],
    [ [qw(--default-id 99999999999999999999)], {}, '--default-id' ],
    [ [qw(--workers 70000)],         {}, '--workers' ],
    [ [qw(--workers -2)],            {}, '--workers' ],
    [ [qw(--backlog 0)],             {}, '--backlog' ],
    [ [qw(--socket-mode 999)],       {}, '--socket-mode' ],
    [ [qw(--cache-size 10X)],        {}, '--cache-size' ],
    [ [qw(--cache-file-max -5)],     {}, '--cache-file-max' ],
    [ [qw(--timeout 0)],             {}, '--timeout' ],
    [ [qw(--log-level loud)],        {}, '--log-level' ],
    [ [qw(--upload-workers 0)],      {}, '--upload-workers' ],
    [ [qw(--upload-queue 2k)],       {}, '--upload-queue' ],
    [ [qw(--job-limit 0)],           {}, '--job-limit' ],
    [ [],                            { AVATAR_JOB_LIMIT => '86401' }, 'AVATAR_JOB_LIMIT' ],
    [ [qw(--max-pixels 0)],          {}, '--max-pixels' ],
    [ [qw(--max-frames 10001)],      {}, '--max-frames' ],
    [ [qw(--max-side 8)],            {}, '--max-side' ],
    [ [qw(--max-aspect 0)],          {}, '--max-aspect' ],
    [ [qw(--crop diagonal)],         {}, '--crop' ],
    [ [qw(--quality 101)],           {}, '--quality' ],
    [ [],                            { AVATAR_CROP => 'left' }, 'AVATAR_CROP' ],
    [ [qw(--accel-prefix nope)],     {}, '--accel-prefix' ],
    [ ['--accel-prefix', "/a\r\nX: y/"], {}, '--accel-prefix' ],
    [ [qw(--bogus)],                 {}, '--bogus' ],
    [ [qw(extra-argument)],          {}, 'extra-argument' ],
    [ ['--dir', "$tmp/missing"],     {}, '--dir' ],
    [ ['--dir', "$tmp/file"],        {}, '--dir' ],
    [ [],                            { AVATAR_MODE => 'nope' }, 'AVATAR_MODE' ],
    [ [],                            { AVATAR_WORKERS => 'many' }, 'AVATAR_WORKERS' ],
    [ [],                            { AVATAR_DIR => "$tmp/missing" }, '--dir' ],
    [ [qw(--socket 127.0.0.1:99999)], {}, '--socket' ],
    [ ['--socket', "$tmp/file"],     {}, '--socket' ],
    [ [],                            { FCGI_WEB_SERVER_ADDRS => '127.0.0.1,not-an-ip' }, 'FCGI_WEB_SERVER_ADDRS' ],
    [ [],                            {}, 'fd 0' ],   # no socket at all
);
# Root reads any directory, so the unreadable case only means something
# for other users.
push @cases, [ ['--dir', "$tmp/locked"], {}, '--dir' ] if $> != 0;

for my $c (@cases) {
    my ($args, $env, $want) = @$c;
    my @cmd = (bin());
    push @cmd, '--dir', "$tmp/av" unless grep { $_ eq '--dir' } @$args or $env->{AVATAR_DIR};
    push @cmd, @$args;
    my $pid = open(my $fh, '-|') // die;
    if ($pid == 0) {
        $ENV{$_} = $env->{$_} for keys %$env;
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';    # fd 0 is not a socket
        exec @cmd or exit 99;
    }
    my @lines = <$fh>;
    close $fh;
    my $st = $? >> 8;
    my $name = join(' ', map { s/[^\x21-\x7e]/?/gr } @$args, map { "$_=$env->{$_}" } sort keys %$env);
    is($st, 2, "exit 2: $name");
    ok(@lines == 1 && index($lines[0], $want) >= 0, "one line naming $want: $name")
        or diag(join '', @lines);
}

my $help = `${\ bin()} --help`;
is($? >> 8, 0, '--help exits 0');
for my $o (qw(dir mode accel-prefix default-id missing max-age stale-while-revalidate
              versioned-max-age default-max-age cors-origin cors-max-age workers
              socket socket-mode backlog cache-size cache-file-max timeout log-level)) {
    like($help, qr/--\Q$o\E /, "--help lists --$o");
}
for my $e (qw(AVATAR_DIR AVATAR_MODE AVATAR_ACCEL_PREFIX AVATAR_DEFAULT_ID AVATAR_MISSING
              AVATAR_MAX_AGE AVATAR_STALE_WHILE_REVALIDATE AVATAR_VERSIONED_MAX_AGE
              AVATAR_CORS_ORIGIN AVATAR_CORS_MAX_AGE AVATAR_WORKERS AVATAR_SOCKET AVATAR_LOG_LEVEL)) {
    like($help, qr/\b$e\b/, "--help names $e");
}
like(`${\ bin()} --version`, qr/^avatar\.fcgi \d+\.\d+\.\d+$/, '--version');

done_testing;

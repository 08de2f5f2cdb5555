#!/usr/bin/perl
# 60-install: "make install DESTDIR=... PREFIX=..." puts exactly the files
# below under DESTDIR/PREFIX, with these modes, and nothing anywhere else;
# "make uninstall" with the same variables removes every one of them and the
# share/avatar-fcgi directory. Run for two prefixes, so a hard-coded path
# shows up.
use strict;
use warnings;
use File::Temp qw(tempdir);
use File::Find;
use FindBin;
use Test::More;

my $root = "$FindBin::Bin/../..";

# One installed file a line: path under PREFIX, mode.
my @files = map { [split] } grep { /\S/ } split /\n/, <<'EOT';
bin/avatar.fcgi                                   0755
share/man/man1/avatar.fcgi.1                      0644
share/avatar-fcgi/nginx/avatar-bytes.conf         0644
share/avatar-fcgi/nginx/avatar-fastcgi.conf       0644
share/avatar-fcgi/nginx/avatar-fastpath-locations.conf 0644
share/avatar-fcgi/nginx/avatar-fastpath-maps.conf 0644
share/avatar-fcgi/nginx/avatar-fastpath-tls.conf  0644
share/avatar-fcgi/nginx/avatar-fastpath.conf      0644
share/avatar-fcgi/nginx/avatar-tls-params.conf    0644
share/avatar-fcgi/nginx/avatar-tls.conf           0644
share/avatar-fcgi/nginx/avatar-upstream.conf      0644
share/avatar-fcgi/nginx/avatar-x-accel.conf       0644
share/avatar-fcgi/nginx/make-cert.sh              0644
share/avatar-fcgi/lighttpd/avatar-fastpath.conf   0644
share/avatar-fcgi/lighttpd/avatar-fastpath.lua    0644
share/avatar-fcgi/lighttpd/lighttpd-bytes.conf    0644
share/avatar-fcgi/lighttpd/lighttpd-spawn.conf    0644
share/avatar-fcgi/lighttpd/lighttpd.conf          0644
share/avatar-fcgi/apache/avatar-proxy-fcgi.conf   0644
share/avatar-fcgi/apache/avatar-xsendfile.conf    0644
share/avatar-fcgi/systemd/avatar-fcgi.service     0644
share/avatar-fcgi/systemd/avatar-fcgi.socket      0644
EOT

# Every file or link under $dir, relative to it.
sub tree {
	my ($dir) = @_;
	my @out;
	find({ no_chdir => 1, wanted => sub {
		push @out, substr($_, length($dir) + 1) if !-d $_ || -l $_;
	} }, $dir);
	return sort @out;
}

sub make {
	my $out = qx{make -s -C '$root' @_ 2>&1};
	return ($? >> 8, $out);
}

for my $prefix ('/usr/local', '/opt/avatar') {
	my $dest = tempdir(CLEANUP => 1);
	(my $p = $prefix) =~ s{^/}{};

	my ($rc, $out) = make('install', "DESTDIR=$dest", "PREFIX=$prefix");
	is($rc, 0, "$prefix: make install exits 0") or diag($out);

	my @want = sort map { "$p/$_->[0]" } @files;
	is_deeply([tree($dest)], \@want,
	    "$prefix: exactly the expected files, nothing elsewhere");
	for my $f (@files) {
		my $path = "$dest/$p/$f->[0]";
		next unless -e $path;
		is(sprintf('%04o', (stat $path)[2] & 07777), $f->[1],
		    "$prefix: $f->[0] has mode $f->[1]");
	}
	my $v = qx{'$dest/$p/bin/avatar.fcgi' --version};
	like($v, qr/^avatar\.fcgi \S+$/, "$prefix: the installed binary runs");
	is(system('cmp', '-s', "$root/fcgi/avatar.fcgi.1",
	    "$dest/$p/share/man/man1/avatar.fcgi.1"), 0,
	    "$prefix: the man page is installed unchanged");

	($rc, $out) = make('uninstall', "DESTDIR=$dest", "PREFIX=$prefix");
	is($rc, 0, "$prefix: make uninstall exits 0") or diag($out);
	is_deeply([tree($dest)], [], "$prefix: make uninstall leaves no file");
	ok(!-e "$dest/$p/share/avatar-fcgi",
	    "$prefix: make uninstall removes share/avatar-fcgi");
}

done_testing();

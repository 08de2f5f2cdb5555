#!/usr/bin/perl
# 65-readme: README.md stays the front page a newcomer reads in five minutes:
# under 10 KB, its benchmark table exactly what tests/bench/report.py
# --readme makes of the committed tests/bench/results/raw.json (so the front
# page cannot drift from the committed run), and every relative link in it
# and in docs/ reaching a file that exists (and a heading, for #anchors).
use strict;
use warnings;
use FindBin;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use Test::More;

my $root = abs_path("$FindBin::Bin/../..");

sub slurp {
	my ($f) = @_;
	open my $fh, '<:encoding(UTF-8)', $f or die "$f: $!";
	local $/;
	return scalar <$fh>;
}

my $size = -s "$root/README.md";
cmp_ok($size, '<', 10 * 1024, "README.md is under 10 KB ($size bytes)");

my $out = qx{/usr/bin/python3 -B '$root/tests/bench/report.py' --readme --check 2>&1};
is($? >> 8, 0, 'the README benchmark table is what report.py --readme makes of the committed results')
    or diag($out);

# GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'.
sub anchors {
	my ($text) = @_;
	my %a;
	for ($text =~ /^#+\s+(.+?)\s*$/mg) {
		(my $s = lc $_) =~ s/[^\w\- ]//g;
		$s =~ tr/ /-/;
		$a{$s} = 1;
	}
	return \%a;
}

for my $doc ('README.md', map { s{^\Q$root\E/}{}r } glob("$root/docs/*.md")) {
	my $text = slurp("$root/$doc");
	$text =~ s/^```.*?^```//msg;    # links inside code blocks are not links
	my @links = $text =~ /\]\(([^)\s]+)\)/g;
	for my $l (@links) {
		next if $l =~ m{^[a-z]+:}i;    # absolute URLs are not checked
		my ($path, $frag) = split /#/, $l, 2;
		my $target = $path eq '' ? "$root/$doc" : abs_path(dirname("$root/$doc") . "/$path");
		ok(defined $target && -e $target, "$doc: link $l reaches a file");
		if (defined $frag && defined $target && $target =~ /\.md$/ && -f $target) {
			ok(anchors(slurp($target))->{$frag}, "$doc: link $l reaches a heading");
		}
	}
}

done_testing();

/*
 * Unit tests for image.c: every line of tests/corpus/uploads/MANIFEST, and
 * the limits' order. Each new image is decoded again here with libvips (the
 * one place outside image.c that includes it: a check must not trust the
 * code it checks) and, where the input carried metadata, read by exiftool.
 *   build/unit/test_image [CORPUS_DIR]
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "ext.h"
#include "image.h"
#include "tap.h"

#ifndef CORPUS_DIR
#define CORPUS_DIR "tests/corpus/uploads"
#endif

static const char *corpus = CORPUS_DIR;

/* One MANIFEST line. */
struct tcase {
	int line;
	char file[128];
	int status;			/* 0 for ok */
	char expect[64];		/* "png:200x200x1" or an error name */
	struct image_limits lim;
	int alpha, opaque, nometa, clean;
	int npix;
	struct { int x, y; unsigned rgb; } pix[4];
};

static unsigned char *
slurp(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0, r;

	snprintf(path, sizeof(path), "%s/%s", corpus, name);
	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			if (buf == NULL)
				abort();
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
	} while (r > 0);
	fclose(f);
	*len = n;
	return buf;
}

/* Parses "KEY=VALUE" options of a line into c; returns -1 on an unknown one. */
static int
parse_option(struct tcase *c, const char *opt, size_t filelen)
{
	unsigned long long v;
	int x, y;
	unsigned rgb;

	if (strcmp(opt, "max_bytes=size") == 0)
		c->lim.max_bytes = filelen;
	else if (strcmp(opt, "max_bytes=size-1") == 0)
		c->lim.max_bytes = filelen - 1;
	else if (sscanf(opt, "max_bytes=%llu", &v) == 1)
		c->lim.max_bytes = (size_t)v;
	else if (sscanf(opt, "max_pixels=%llu", &v) == 1)
		c->lim.max_pixels = v;
	else if (sscanf(opt, "max_frames=%llu", &v) == 1)
		c->lim.max_frames = (unsigned)v;
	else if (sscanf(opt, "max_side=%llu", &v) == 1)
		c->lim.max_side = (unsigned)v;
	else if (strncmp(opt, "crop=", 5) == 0)
		return image_crop_parse(opt + 5, &c->lim.crop);
	else if (strcmp(opt, "alpha") == 0)
		c->alpha = 1;
	else if (strcmp(opt, "opaque") == 0)
		c->opaque = 1;
	else if (strcmp(opt, "nometa") == 0)
		c->nometa = 1;
	else if (strcmp(opt, "clean") == 0)
		c->clean = 1;
	else if (sscanf(opt, "pixel=%d,%d,%x", &x, &y, &rgb) == 3 && c->npix < 4) {
		c->pix[c->npix].x = x;
		c->pix[c->npix].y = y;
		c->pix[c->npix].rgb = rgb;
		c->npix++;
	} else
		return -1;
	return 0;
}

/* Reloads the new bytes with the loader of their type, every frame. */
static VipsImage *
reload(const struct image_out *o)
{
	VipsImage *img = NULL;
	void *b = o->bytes;

	switch (o->type) {
	case SNIFF_PNG:
		vips_pngload_buffer(b, o->len, &img, "fail_on", VIPS_FAIL_ON_WARNING, NULL);
		break;
	case SNIFF_JPEG:
		vips_jpegload_buffer(b, o->len, &img, "fail_on", VIPS_FAIL_ON_WARNING, NULL);
		break;
	case SNIFF_GIF:
		vips_gifload_buffer(b, o->len, &img, "n", -1, "fail_on", VIPS_FAIL_ON_WARNING, NULL);
		break;
	case SNIFF_WEBP:
		vips_webpload_buffer(b, o->len, &img, "n", -1, "fail_on", VIPS_FAIL_ON_WARNING, NULL);
		break;
	case SNIFF_AVIF:	/* never an upload's output */
	case SNIFF_NONE:
		break;
	}
	return img;
}

/* No field a loader attaches for metadata it found in the file. */
static int
no_meta_fields(VipsImage *img, char *bad, size_t badlen)
{
	static const char *const deny[] = { "exif", "xmp", "iptc", "icc", "comment", "orientation",
		"gps", "resolution-unit" };
	gchar **fields = vips_image_get_fields(img);
	int ok = 1;

	for (int i = 0; fields[i] != NULL; i++)
		for (size_t k = 0; k < NELEM(deny); k++)
			if (strstr(fields[i], deny[k]) != NULL) {
				snprintf(bad, badlen, "%s", fields[i]);
				ok = 0;
			}
	g_strfreev(fields);
	return ok;
}

/*
 * exiftool on the new bytes: every tag must belong to a group that only
 * describes the pixels (file type, dimensions, PNG/GIF/RIFF/JFIF headers);
 * any EXIF, GPS, XMP, IPTC, ICC or comment tag fails, and so does any value
 * the corpus planted ("secret-...").
 */
static int
exiftool_clean(const struct image_out *o, char *bad, size_t badlen)
{
	static const char *const allow[] = { "[ExifTool]", "[System]", "[File]", "[Composite]",
		"[PNG]", "[PNG-pHYs]", "[JFIF]", "[GIF]", "[RIFF]" };
	char path[] = "/tmp/test_image.XXXXXX", cmd[600], line[512];
	int fd = mkstemp(path), ok = 1, lines = 0;
	FILE *p;

	if (fd < 0 || write(fd, o->bytes, o->len) != (ssize_t)o->len) {
		snprintf(bad, badlen, "temporary file: %s", strerror(errno));
		return 0;
	}
	close(fd);
	snprintf(cmd, sizeof(cmd), "exiftool -a -G1 -s -m %s 2>&1", path);
	if ((p = popen(cmd, "r")) == NULL) {
		unlink(path);
		snprintf(bad, badlen, "exiftool: %s", strerror(errno));
		return 0;
	}
	while (fgets(line, sizeof(line), p) != NULL) {
		int allowed = 0;
		lines++;
		line[strcspn(line, "\n")] = '\0';
		for (size_t k = 0; k < NELEM(allow); k++)
			allowed |= strncmp(line, allow[k], strlen(allow[k])) == 0;
		if (strncmp(line, "[File]", 6) == 0 && strstr(line, "Comment") != NULL)
			allowed = 0;
		if (!allowed || strstr(line, "secret") != NULL) {
			snprintf(bad, badlen, "%s", line);
			ok = 0;
		}
	}
	if (pclose(p) != 0 && ok) {
		snprintf(bad, badlen, "exiftool failed (is libimage-exiftool-perl installed?)");
		ok = 0;
	}
	if (lines < 5 && ok) {
		snprintf(bad, badlen, "exiftool printed %d lines", lines);
		ok = 0;
	}
	unlink(path);
	return ok;
}

static int
has(const unsigned char *b, size_t n, const char *needle, size_t nlen)
{
	return memmem(b, n, needle, nlen) != NULL;
}

/* Everything a good new image must be, decoded again independently. */
static void
check_output(const struct tcase *c, const struct image_out *o)
{
	static const char *const tname[] = { [SNIFF_PNG] = "png", [SNIFF_JPEG] = "jpg",
		[SNIFF_GIF] = "gif", [SNIFF_WEBP] = "webp" };
	static const char *const loader[] = { [SNIFF_PNG] = "pngload_buffer",
		[SNIFF_JPEG] = "jpegload_buffer", [SNIFF_GIF] = "gifload_buffer",
		[SNIFF_WEBP] = "webpload_buffer" };
	char got[64], bad[512] = "";
	const char *ld = NULL;
	VipsImage *img;
	int w, ph, frames, bands;

	if (!ok(o->type != SNIFF_NONE && o->bytes != NULL, "%s:%d: bytes and a type", c->file, c->line))
		return;
	snprintf(got, sizeof(got), "%s:%ux%ux%u", tname[o->type], o->width, o->height, o->frames);
	ok(strcmp(got, c->expect) == 0, "%s:%d: %s (got %s)", c->file, c->line, c->expect, got);
	ok(sniff_type(o->bytes, o->len) == o->type, "%s:%d: the bytes are %s", c->file, c->line,
	    tname[o->type]);
	ok(strcmp(o->ext + 1, tname[o->type]) == 0 && strcmp(o->mime, sniff_mime(o->type)) == 0,
	    "%s:%d: extension %s and type %s match the bytes", c->file, c->line, o->ext, o->mime);
	{
		int listed = 0;
		for (size_t i = 0; ext_name(i) != NULL; i++)
			listed |= strcmp(ext_name(i), o->ext) == 0;
		ok(listed, "%s:%d: %s is in ext.h's list, so the read path finds it", c->file,
		    c->line, o->ext);
	}

	if (!ok((img = reload(o)) != NULL, "%s:%d: the new image decodes strictly: %s", c->file,
	    c->line, vips_error_buffer())) {
		vips_error_clear();
		return;
	}
	w = vips_image_get_width(img);
	ph = vips_image_get_page_height(img);
	frames = vips_image_get_height(img) / ph;
	bands = vips_image_get_bands(img);
	if (vips_image_get_string(img, VIPS_META_LOADER, &ld) != 0)
		ld = "?";
	ok(strcmp(ld, loader[o->type]) == 0, "%s:%d: loaded by %s", c->file, c->line, ld);
	ok((unsigned)w == o->width && (unsigned)ph == o->height && (unsigned)frames == o->frames,
	    "%s:%d: decoded %dx%dx%d as reported", c->file, c->line, w, ph, frames);
	if (c->lim.crop != IMAGE_CROP_NONE)
		ok(w == ph, "%s:%d: square", c->file, c->line);
	ok((unsigned)w <= c->lim.max_side && (unsigned)ph <= c->lim.max_side,
	    "%s:%d: no side over %u", c->file, c->line, c->lim.max_side);
	ok(vips_image_get_format(img) == VIPS_FORMAT_UCHAR, "%s:%d: 8-bit", c->file, c->line);
	ok(vips_image_guess_interpretation(img) == VIPS_INTERPRETATION_sRGB && (bands == 3 || bands == 4),
	    "%s:%d: sRGB, %d bands", c->file, c->line, bands);
	if (c->alpha)
		ok(bands == 4, "%s:%d: alpha kept", c->file, c->line);
	if (c->opaque)
		ok(bands == 3, "%s:%d: no alpha added", c->file, c->line);
	ok(no_meta_fields(img, bad, sizeof(bad)), "%s:%d: no metadata field %s", c->file, c->line, bad);
	for (int i = 0; i < c->npix; i++) {
		double *v = NULL;
		int n = 0, near = 0;
		if (vips_getpoint(img, &v, &n, c->pix[i].x, c->pix[i].y, NULL) == 0 && n >= 3) {
			near = 1;
			for (int k = 0; k < 3; k++) {
				double want = (c->pix[i].rgb >> (16 - 8 * k)) & 0xff;
				near &= v[k] > want - 32 && v[k] < want + 32;
			}
		}
		ok(near, "%s:%d: pixel %d,%d is #%06x (got %.0f,%.0f,%.0f)", c->file, c->line,
		    c->pix[i].x, c->pix[i].y, c->pix[i].rgb, n >= 3 ? v[0] : -1, n >= 3 ? v[1] : -1,
		    n >= 3 ? v[2] : -1);
		g_free(v);
	}
	g_object_unref(img);
	vips_error_clear();

	if (c->nometa) {
		bad[0] = '\0';
		ok(exiftool_clean(o, bad, sizeof(bad)), "%s:%d: exiftool finds no metadata %s",
		    c->file, c->line, bad);
	}
	if (c->clean)
		ok(!has(o->bytes, o->len, "<script", 7) && !has(o->bytes, o->len, "<html", 5) &&
		    !has(o->bytes, o->len, "PK\3\4", 4), "%s:%d: nothing of the other format survives",
		    c->file, c->line);
}

static void
run_case(const struct tcase *c, const unsigned char *buf, size_t len)
{
	struct image_out o;
	int rc = image_process(&c->lim, buf, len, &o);

	if (c->status == 0) {
		if (ok(rc == 0 && o.status == 0, "%s:%d: accepted (%d %s %s)", c->file, c->line,
		    o.status, o.error ? o.error : "", o.detail))
			check_output(c, &o);
	} else {
		ok(rc == -1 && o.status == c->status && o.error != NULL &&
		    strcmp(o.error, c->expect) == 0 && o.bytes == NULL,
		    "%s:%d: %d %s (got %d %s: %s)", c->file, c->line, c->status, c->expect,
		    o.status, o.error ? o.error : "-", o.detail);
	}
	image_out_free(&o);
}

/* Runs every MANIFEST line; returns how many lines named each file. */
static void
run_manifest(void)
{
	char path[512], line[512];
	FILE *m;
	int lineno = 0, cases = 0;
	DIR *d;
	struct dirent *e;
	char seen[256][128];
	int nseen = 0;

	snprintf(path, sizeof(path), "%s/MANIFEST", corpus);
	if (!ok((m = fopen(path, "r")) != NULL, "open %s", path))
		return;
	while (fgets(line, sizeof(line), m) != NULL) {
		struct tcase c;
		char status[16], *tok, *save = NULL;
		unsigned char *buf;
		size_t len = 0;

		lineno++;
		if (line[0] == '#' || line[strspn(line, " \t\n")] == '\0')
			continue;
		memset(&c, 0, sizeof(c));
		c.line = lineno;
		image_limits_default(&c.lim);
		if (sscanf(line, "%127s %15s %63s", c.file, status, c.expect) != 3) {
			ok(0, "MANIFEST:%d: three fields", lineno);
			continue;
		}
		c.status = strcmp(status, "ok") == 0 ? 0 : atoi(status);
		if (!ok((buf = slurp(c.file, &len)) != NULL, "MANIFEST:%d: %s exists", lineno, c.file))
			continue;
		if (nseen < 256)
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", c.file);
		strtok_r(line, " \t\n", &save);
		strtok_r(NULL, " \t\n", &save);
		strtok_r(NULL, " \t\n", &save);
		while ((tok = strtok_r(NULL, " \t\n", &save)) != NULL)
			if (!ok(parse_option(&c, tok, len) == 0, "MANIFEST:%d: option %s", lineno, tok))
				break;
		run_case(&c, buf, len);
		free(buf);
		cases++;
	}
	fclose(m);
	ok(cases >= 90, "MANIFEST has %d cases", cases);

	/* A file without a line would be a case nobody checks. */
	if (!ok((d = opendir(corpus)) != NULL, "open %s", corpus))
		return;
	while ((e = readdir(d)) != NULL) {
		int found = 0;
		if (e->d_name[0] == '.' || strcmp(e->d_name, "MANIFEST") == 0)
			continue;
		for (int i = 0; i < nseen; i++)
			found |= strcmp(seen[i], e->d_name) == 0;
		ok(found, "%s has a MANIFEST line", e->d_name);
	}
	closedir(d);
}

/* The checks' order: each refusal is the earliest check that applies. */
static void
order(void)
{
	struct image_limits l;
	struct image_out o;
	unsigned char *bomb, *svg, *pad;
	size_t blen = 0, slen = 0, plen = 0;

	image_limits_default(&l);
	bomb = slurp("bomb-30000.png", &blen);
	svg = slurp("svg-script.svg", &slen);
	if (!ok(bomb != NULL && svg != NULL, "order: corpus files"))
		return;
	l.max_bytes = blen - 1;
	image_process(&l, bomb, blen, &o);
	ok(o.status == 413, "order: size before pixels (bomb over max_bytes is 413, got %d)", o.status);
	image_out_free(&o);
	l.max_bytes = slen - 1;
	image_process(&l, svg, slen, &o);
	ok(o.status == 413, "order: size before type (svg over max_bytes is 413, got %d)", o.status);
	image_out_free(&o);
	image_limits_default(&l);
	/* A cut bomb: the header limit answers before the decoder sees the cut. */
	image_process(&l, bomb, blen / 2, &o);
	ok(o.status == 422 && strcmp(o.error, "max-pixels") == 0,
	    "order: pixels before decoding (cut bomb: %s)", o.error);
	image_out_free(&o);
	free(bomb);
	free(svg);

	/* The default limit exactly, and one byte over: a good PNG padded
	 * after IEND (libpng stops reading there) to 8 MiB. */
	pad = slurp("ok-rgb.png", &plen);
	if (!ok(pad != NULL && plen < IMAGE_MAX_BYTES, "order: ok-rgb.png"))
		return;
	pad = realloc(pad, IMAGE_MAX_BYTES + 1);
	if (pad == NULL)
		abort();
	memset(pad + plen, 0, IMAGE_MAX_BYTES + 1 - plen);
	ok(image_process(&l, pad, IMAGE_MAX_BYTES, &o) == 0 && o.width == 200,
	    "exactly the default max_bytes is accepted (%d %s)", o.status, o.detail);
	image_out_free(&o);
	ok(image_process(&l, pad, IMAGE_MAX_BYTES + 1, &o) == -1 && o.status == 413 &&
	    strcmp(o.error, "max-bytes") == 0, "one byte over the default is 413");
	image_out_free(&o);
	free(pad);
}

/* The process's peak resident size so far, in KiB (VmHWM). */
static long
peak_kib(void)
{
	char line[128];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kib;
}

/*
 * 96 MiB of compressed PNG text in a 100 KB upload must not be inflated:
 * run first, while the peak is still the start-up one, so any growth shows.
 * A memory bound, not a time one: it does not depend on the machine's load.
 */
static void
png_text_bomb(void)
{
	struct image_limits l;
	struct image_out o;
	size_t len = 0;
	unsigned char *buf = slurp("ztxt-many.png", &len);
	long before = peak_kib(), grew;

	image_limits_default(&l);
	if (!ok(buf != NULL && before > 0, "ztxt-many.png and VmHWM"))
		return;
	ok(image_process(&l, buf, len, &o) == 0 && o.width == 200, "12 zTXt chunks of 8 MiB: accepted");
	grew = peak_kib() - before;
	ok(grew < 64 * 1024, "and the text was never inflated (peak grew %ld KiB)", grew);
	image_out_free(&o);
	free(buf);
}

/* The same upload twice gives the same bytes: a stored avatar depends on
 * its input only. */
static void
deterministic(void)
{
	static const char *const files[] = { "ok-baseline.jpg", "ok-anim.gif", "ok-anim.webp" };
	struct image_limits l;

	image_limits_default(&l);
	for (size_t i = 0; i < NELEM(files); i++) {
		struct image_out a, b;
		size_t len = 0;
		unsigned char *buf = slurp(files[i], &len);
		if (!ok(buf != NULL, "%s", files[i]))
			continue;
		image_process(&l, buf, len, &a);
		image_process(&l, buf, len, &b);
		ok(a.len > 0 && a.len == b.len && memcmp(a.bytes, b.bytes, a.len) == 0,
		    "%s: same bytes twice", files[i]);
		image_out_free(&a);
		image_out_free(&b);
		free(buf);
	}
}

int
main(int argc, char **argv)
{
	struct image_out o;
	enum image_crop crop;
	const char *why = NULL;
	struct image_limits l;

	if (argc > 1)
		corpus = argv[1];
	image_limits_default(&l);
	/* Before image_init: refused, never run with libvips' defaults. */
	ok(image_process(&l, "\x89PNG\r\n\x1a\n", 8, &o) == -1 && o.status == 500,
	    "image_process before image_init is refused");
	image_out_free(&o);
	if (!ok(image_init(argv[0], &why) == 0, "image_init: %s", why ? why : "ok"))
		return tap_done();
	ok(image_init(argv[0], &why) == 0, "image_init twice is harmless");
	png_text_bomb();

	ok(image_crop_parse("centre", &crop) == 0 && crop == IMAGE_CROP_CENTRE, "crop centre");
	ok(image_crop_parse("attention", &crop) == 0 && crop == IMAGE_CROP_ATTENTION, "crop attention");
	ok(image_crop_parse("none", &crop) == 0 && crop == IMAGE_CROP_NONE, "crop none");
	ok(image_crop_parse("center", &crop) == -1 && image_crop_parse("", &crop) == -1,
	    "crop: anything else refused");
	/* The blocked loaders stay blocked for everyone in the process. */
	{
		VipsImage *img = NULL;
		size_t len = 0;
		unsigned char *svg = slurp("svg-script.svg", &len);
		if (svg != NULL)
			img = vips_image_new_from_buffer(svg, len, "", NULL);
		ok(svg != NULL && img == NULL, "libvips' SVG loader is blocked");
		vips_error_clear();
		if (img != NULL)
			g_object_unref(img);
		free(svg);
	}

	run_manifest();
	order();
	deterministic();
	vips_shutdown();
	return tap_done();
}

/*
 * Unit tests for vmake.c and image.c's image_variants: for each original
 * in the table, every variant variant_wants lists is made once, with the
 * right pixel size, true type and frame count; no size is upscaled (a copy
 * of the full-size file instead); a second run makes nothing; vmake_drop
 * removes an old original's names; a refused original makes nothing.
 * New images are decoded again with libvips here (a check must not trust
 * the code it checks); AVIF with the vipsheader program, since image_init
 * keeps every HEIF loader of this process blocked.
 *   build/unit/test_vmake [CORPUS_DIR]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#include "conf.h"
#include "image.h"
#include "store.h"
#include "tap.h"
#include "variant.h"
#include "vmake.h"

static const char *corpus = "tests/corpus/uploads";
static char dir[] = "/tmp/test_vmake.XXXXXX";
static int dfd;
static struct conf conf;

/* One original: a corpus file, cleaned as an upload would be (crop and
 * max_side as given), or raw (a hand-filled file the batch command finds). */
struct tcase {
	const char *file;
	int raw;
	enum image_crop crop;
	unsigned max_side;		/* 0: the default */
	unsigned w, h, frames;		/* the original as stored, upright */
	enum sniff_type type;
	unsigned wframes;		/* frames in WebP when not the same */
};

static const struct tcase cases[] = {
	/* file               raw crop               side  w     h     fr type   webp frames */
	{ "ok-rgb.png",        0, IMAGE_CROP_CENTRE, 0,    200,  200,  1, SNIFF_PNG, 0 },
	{ "ok-rgb.png",        0, IMAGE_CROP_NONE,   0,    300,  200,  1, SNIFF_PNG, 0 },
	{ "ok-rgba.png",       0, IMAGE_CROP_NONE,   0,    256,  256,  1, SNIFF_PNG, 0 },
	{ "ok-rgb.png",        0, IMAGE_CROP_CENTRE, 40,   40,   40,   1, SNIFF_PNG, 0 },
	/* Portrait, and no size divides evenly: 263x350 (262.5 rounded up);
	 * 100x173, made here, whose width rounds up at 64 (36.99). */
	{ "ok-exif-gps.jpg",   0, IMAGE_CROP_NONE,   350,  263,  350,  1, SNIFF_JPEG, 0 },
	{ "gen:100x173",       1, 0,                 0,    100,  173,  1, SNIFF_PNG, 0 },
	{ "ok-baseline.jpg",   0, IMAGE_CROP_CENTRE, 0,    480,  480,  1, SNIFF_JPEG, 0 },
	{ "ok-large.jpg",      0, IMAGE_CROP_NONE,   600,  600,  450,  1, SNIFF_JPEG, 0 },
	{ "ok-anim.gif",       0, IMAGE_CROP_NONE,   0,    120,  80,   3, SNIFF_GIF, 0 },
	/* Its two frames are the same pixels: libwebp's animation encoder
	 * merges them into one (with both delays). */
	{ "ok-anim-alpha.gif", 0, IMAGE_CROP_CENTRE, 0,    64,   64,   2, SNIFF_GIF, 1 },
	{ "ok-still.gif",      0, IMAGE_CROP_NONE,   0,    100,  80,   1, SNIFF_GIF, 0 },
	{ "ok-lossy.webp",     0, IMAGE_CROP_CENTRE, 0,    480,  480,  1, SNIFF_WEBP, 0 },
	{ "ok-anim.webp",      0, IMAGE_CROP_NONE,   0,    120,  80,   3, SNIFF_WEBP, 0 },
	/* Hand-filled: EXIF orientation (400x300 on disk, upright 300x400),
	 * GPS, a P3 profile: the variants must be upright, sRGB, bare. */
	{ "ok-exif-gps.jpg",   1, 0,                 0,    300,  400,  1, SNIFF_JPEG, 0 },
	{ "ok-icc-p3.png",     1, 0,                 0,    400,  300,  1, SNIFF_PNG, 0 },
};

/* What one variant was, decoded again. */
struct decoded {
	int ok;
	unsigned w, h, frames, bands;
	char detail[200];
};

static unsigned char *
slurp_fd(int fd, size_t *len)
{
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0;
	ssize_t r;

	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			if ((buf = realloc(buf, cap)) == NULL)
				abort();
		}
		r = read(fd, buf + n, cap - n);
		n += r > 0 ? (size_t)r : 0;
	} while (r > 0);
	*len = n;
	return buf;
}

static unsigned char *
slurp_at(int at, const char *name, size_t *len)
{
	int fd = openat(at, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	unsigned char *buf;

	if (fd == -1)
		return NULL;
	buf = slurp_fd(fd, len);
	close(fd);
	return buf;
}

static unsigned char *
corpus_file(const char *name, size_t *len)
{
	char path[512];
	unsigned char *buf;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", corpus, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	buf = slurp_fd(fd, len);
	close(fd);
	return buf;
}

/* vipsheader -a on a copy: an AVIF is decoded in another process. */
static void
decode_avif(const unsigned char *b, size_t len, struct decoded *d)
{
	char path[] = "/tmp/test_vmake_avif.XXXXXX", cmd[300], line[256];
	int fd = mkstemp(path), av1 = 0, bits8 = 0, meta = 0;
	unsigned v;
	FILE *p;

	if (fd == -1 || write(fd, b, len) != (ssize_t)len) {
		snprintf(d->detail, sizeof(d->detail), "temporary file: %s", strerror(errno));
		return;
	}
	close(fd);
	snprintf(cmd, sizeof(cmd), "vipsheader -a %s 2>/dev/null", path);
	if ((p = popen(cmd, "r")) == NULL)
		goto done;
	d->frames = 1;
	while (fgets(line, sizeof(line), p) != NULL) {
		if (sscanf(line, "width: %u", &v) == 1)
			d->w = v;
		else if (sscanf(line, "height: %u", &v) == 1)
			d->h = v;
		else if (sscanf(line, "bands: %u", &v) == 1)
			d->bands = v;
		else if (sscanf(line, "n-pages: %u", &v) == 1)
			d->frames = v;
		av1 |= strcmp(line, "heif-compression: av1\n") == 0;
		bits8 |= strcmp(line, "heif-bitdepth: 8\n") == 0;
		meta |= strncmp(line, "exif", 4) == 0 || strncmp(line, "xmp", 3) == 0 ||
		    strncmp(line, "icc", 3) == 0;
	}
	d->ok = pclose(p) == 0 && av1 && bits8 && !meta && d->w > 0;
	if (!d->ok)
		snprintf(d->detail, sizeof(d->detail), "vipsheader: av1 %d, 8 bits %d, "
		    "metadata %d (is libvips-tools installed?)", av1, bits8, meta);
done:
	unlink(path);
}

/* Decodes with the loader of the type, strictly, every frame. */
static void
decode(enum sniff_type type, const unsigned char *b, size_t len, struct decoded *d)
{
	VipsImage *img = NULL;
	void *p = (void *)(uintptr_t)b;

	memset(d, 0, sizeof(*d));
	switch (type) {
	case SNIFF_PNG:
		vips_pngload_buffer(p, len, &img, "fail_on", VIPS_FAIL_ON_WARNING, NULL);
		break;
	case SNIFF_JPEG:
		vips_jpegload_buffer(p, len, &img, "fail_on", VIPS_FAIL_ON_WARNING, NULL);
		break;
	case SNIFF_GIF:
		vips_gifload_buffer(p, len, &img, "n", -1, "fail_on", VIPS_FAIL_ON_WARNING, NULL);
		break;
	case SNIFF_WEBP:
		vips_webpload_buffer(p, len, &img, "n", -1, "fail_on", VIPS_FAIL_ON_WARNING, NULL);
		break;
	case SNIFF_AVIF:
		decode_avif(b, len, d);
		return;
	case SNIFF_NONE:
		break;
	}
	if (img == NULL) {
		snprintf(d->detail, sizeof(d->detail), "%s", vips_error_buffer());
		vips_error_clear();
		return;
	}
	d->ok = 1;
	{
		/* No field a loader attaches for metadata it found. */
		static const char *const deny[] = { "exif", "xmp", "iptc", "icc", "comment",
			"orientation", "gps" };
		gchar **fields = vips_image_get_fields(img);

		for (int i = 0; fields[i] != NULL; i++)
			for (size_t k = 0; k < NELEM(deny); k++)
				if (strstr(fields[i], deny[k]) != NULL) {
					snprintf(d->detail, sizeof(d->detail), "metadata: %s", fields[i]);
					d->ok = 0;
				}
		g_strfreev(fields);
	}
	d->w = (unsigned)vips_image_get_width(img);
	d->h = (unsigned)vips_image_get_page_height(img);
	d->frames = (unsigned)vips_image_get_height(img) / d->h;
	d->bands = (unsigned)vips_image_get_bands(img);
	g_object_unref(img);
}

/* The size a variant must have: the long side exactly side, the short
 * one the nearest pixel; no side over the original's. */
static void
expect_size(const struct tcase *c, unsigned side, unsigned *w, unsigned *h)
{
	unsigned longer = c->w > c->h ? c->w : c->h;

	if (side == 0 || side >= longer) {
		*w = c->w;
		*h = c->h;
		return;
	}
	*w = (unsigned)(((unsigned long)c->w * side + longer / 2) / longer);
	*h = (unsigned)(((unsigned long)c->h * side + longer / 2) / longer);
	*w = *w ? *w : 1;
	*h = *h ? *h : 1;
}

/* The original's bytes as the store would hold them. */
static unsigned char *
original(const struct tcase *c, size_t *len)
{
	struct image_limits l;
	struct image_out o;
	unsigned char *raw, *buf = NULL;
	unsigned gw, gh;

	/* "gen:WxH": a gradient PNG of that size, made here. */
	if (sscanf(c->file, "gen:%ux%u", &gw, &gh) == 2) {
		VipsImage *g = NULL, *u = NULL;
		void *png = NULL;

		if (vips_xyz(&g, (int)gw, (int)gh, NULL) == 0 && vips_cast_uchar(g, &u, NULL) == 0 &&
		    vips_pngsave_buffer(u, &png, len, NULL) == 0 && (buf = malloc(*len)) != NULL)
			memcpy(buf, png, *len);
		g_free(png);
		if (u != NULL)
			g_object_unref(u);
		if (g != NULL)
			g_object_unref(g);
		return buf;
	}
	raw = corpus_file(c->file, len);
	if (raw == NULL || c->raw)
		return raw;
	image_limits_default(&l);
	l.crop = c->crop;
	if (c->max_side)
		l.max_side = c->max_side;
	if (image_process(&l, raw, *len, &o) == 0 && (buf = malloc(o.len)) != NULL) {
		memcpy(buf, o.bytes, o.len);
		*len = o.len;
	}
	image_out_free(&o);
	free(raw);
	return buf;
}

/* Stores the original as ID.EXT and returns its stat (the tag's source). */
static int
store(int64_t id, const unsigned char *b, size_t len, struct stat *st)
{
	static const char *const ext[] = { [SNIFF_PNG] = ".png", [SNIFF_JPEG] = ".jpg",
		[SNIFF_GIF] = ".gif", [SNIFF_WEBP] = ".webp" };
	enum sniff_type t = sniff_type(b, len);
	char name[64];
	int replaced;

	if (t == SNIFF_NONE || t == SNIFF_AVIF || store_put(dfd, id, ext[t], b, len, &replaced) != 0)
		return -1;
	snprintf(name, sizeof(name), "%lld%s", (long long)id, ext[t]);
	return fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW);
}

/* Files under .v whose name starts "ID.": counted with a tag, or any. */
static int
count_files(int64_t id, const char *tag)
{
	char prefix[80];
	int n = 0;

	snprintf(prefix, sizeof(prefix), "%lld.%s", (long long)id, tag ? tag : "");
	for (size_t i = 0; i <= conf.variants.nsizes; i++) {
		char sub[32];
		DIR *d;
		struct dirent *e;

		variant_subdir(sub, sizeof(sub), i < conf.variants.nsizes ? conf.variants.sizes[i] : 0);
		if ((d = opendir(sub)) == NULL)
			continue;
		while ((e = readdir(d)) != NULL)
			n += strncmp(e->d_name, prefix, strlen(prefix)) == 0 ||
			    strncmp(e->d_name, ".tmp-", 5) == 0;
		closedir(d);
	}
	return n;
}

/* Every want of one original: there, of its type, of its size. */
static void
check_variants(const struct tcase *c, int64_t id, const char *tag, const unsigned char *orig,
    size_t olen, const struct vmake_result *res)
{
	struct variant_want all[100];
	size_t n = variant_wants(&conf.variants, c->type, all, NELEM(all)), want_skip = 0;

	for (size_t i = 0; i < n; i++) {
		char name[VARIANT_NAME_MAX];
		unsigned char *b;
		size_t len = 0;
		unsigned ew, eh, fr, longer = c->w > c->h ? c->w : c->h;
		struct decoded d;

		variant_name(name, sizeof(name), all[i].size, id, tag, all[i].type);
		b = slurp_at(dfd, name, &len);
		if (all[i].type == SNIFF_AVIF && c->frames > 1) {
			want_skip++;
			ok(b == NULL, "%s %s: no AVIF of an animation", c->file, name);
			free(b);
			continue;
		}
		if (!ok(b != NULL && len > 0, "%s %s: made", c->file, name)) {
			free(b);
			continue;
		}
		ok(sniff_type(b, len) == all[i].type, "%s %s: the bytes are %s", c->file, name,
		    variant_ext(all[i].type));
		expect_size(c, all[i].size, &ew, &eh);
		decode(all[i].type, b, len, &d);
		fr = all[i].type == SNIFF_WEBP && c->wframes ? c->wframes : c->frames;
		/* A hand-filled original's copy is its bytes as /ID serves
		 * them (EXIF orientation not applied): checked as a copy below. */
		if (!(c->raw && all[i].type == c->type && all[i].size >= longer))
			ok(d.ok && d.w == ew && d.h == eh && d.frames == fr,
			    "%s %s: %ux%u, %u frames (got %ux%u, %u %s)", c->file, name,
			    ew, eh, fr, d.w, d.h, d.frames, d.detail);
		/* No upscaling: the full-size file's very bytes. */
		if (all[i].size >= longer) {
			char full[VARIANT_NAME_MAX];
			unsigned char *fb = NULL;
			size_t flen = 0;

			if (all[i].type == c->type) {
				fb = malloc(olen);
				memcpy(fb, orig, olen);
				flen = olen;
			} else {
				variant_name(full, sizeof(full), 0, id, tag, all[i].type);
				fb = slurp_at(dfd, full, &flen);
			}
			ok(fb != NULL && flen == len && memcmp(fb, b, len) == 0,
			    "%s %s: a copy of the full-size file", c->file, name);
			free(fb);
		}
		free(b);
	}
	ok(res->made + res->copied + res->kept == n - want_skip && res->failed == 0 &&
	    res->skipped == want_skip && res->status == 0,
	    "%s: made %u + copied %u + kept %u = %zu, failed %u, skipped %u = %zu",
	    c->file, res->made, res->copied, res->kept, n - want_skip, res->failed,
	    res->skipped, want_skip);
	ok(count_files(id, tag) == (int)(n - want_skip), "%s: %zu files, no others", c->file,
	    n - want_skip);
}

static void
run_case(const struct tcase *c, int64_t id)
{
	struct vmake_result res, again;
	struct stat st;
	char tag[VARIANT_TAG_MAX];
	unsigned char *orig;
	size_t olen = 0;
	struct decoded d;
	int rc;

	if (!ok((orig = original(c, &olen)) != NULL && store(id, orig, olen, &st) == 0,
	    "%s: stored as %lld", c->file, (long long)id))
		return;
	/* A hand-filled original is stored as it is (EXIF orientation not
	 * applied, metadata kept): only its variants are checked. */
	if (!c->raw) {
		decode(c->type, orig, olen, &d);
		ok(d.ok && d.w == c->w && d.h == c->h && d.frames == c->frames,
		    "%s: original %ux%u, %u frames (got %ux%u, %u %s)", c->file, c->w, c->h,
		    c->frames, d.w, d.h, d.frames, d.detail);
	}
	variant_tag(tag, (uint64_t)st.st_size, &st.st_mtim);
	/* (Each call before the ok() that prints its result: the order in
	 * which arguments are evaluated is not defined.) */
	rc = vmake_id(&conf, dfd, id, &res);
	ok(rc == 0, "%s: vmake_id (%d %s)", c->file, res.status, res.why ? res.why : "");
	check_variants(c, id, tag, orig, olen, &res);
	/* Idempotent: a second run keeps everything and writes nothing. */
	rc = vmake_id(&conf, dfd, id, &again);
	ok(rc == 0 && again.made == 0 && again.copied == 0 &&
	    again.kept == res.made + res.copied && again.skipped == res.skipped,
	    "%s: second run: made %u copied %u kept %u", c->file, again.made, again.copied,
	    again.kept);
	free(orig);
}

/* A new original for the same id: the old tag's names go, the new ones come. */
static void
replace_and_drop(void)
{
	const int64_t id = 900;
	struct vmake_result res;
	struct stat old, now;
	char oldtag[VARIANT_TAG_MAX], newtag[VARIANT_TAG_MAX];
	unsigned char *a, *b;
	size_t alen = 0, blen = 0;

	a = original(&cases[0], &alen);
	b = original(&cases[4], &blen);
	if (!ok(a && b && store(id, a, alen, &old) == 0 && vmake_id(&conf, dfd, id, &res) == 0,
	    "drop: first original and its variants"))
		goto done;
	variant_tag(oldtag, (uint64_t)old.st_size, &old.st_mtim);
	ok(count_files(id, oldtag) > 0, "drop: old variants there");
	if (!ok(store(id, b, blen, &now) == 0, "drop: replaced by a JPEG"))
		goto done;
	vmake_drop(&conf, dfd, id, &old);
	ok(count_files(id, oldtag) == 0, "drop: every old name is gone");
	ok(vmake_id(&conf, dfd, id, &res) == 0 && res.made > 0, "drop: new variants made");
	variant_tag(newtag, (uint64_t)now.st_size, &now.st_mtim);
	ok(count_files(id, newtag) == count_files(id, NULL) && count_files(id, newtag) > 0,
	    "drop: only the new tag's names are left");
	vmake_drop(&conf, dfd, id, &old);
	ok(count_files(id, newtag) > 0, "drop: dropping the old tag again keeps the new ones");
done:
	free(a);
	free(b);
}

/* A cut original is refused whole: not one variant. */
static void
refused(void)
{
	static const struct { const char *file; int64_t id; int status; const char *why; } t[] = {
		{ "ok-rgb.png",      910, 422, "decode" },
		{ "ok-baseline.jpg", 911, 422, "decode" },
		{ "ok-lossy.webp",   912, 422, "decode" },
		{ "ok-anim.gif",     913, 422, "decode" },
	};

	for (size_t i = 0; i < NELEM(t); i++) {
		struct vmake_result res;
		struct stat st;
		size_t len = 0;
		int rc;
		unsigned char *b = original(&(struct tcase){ .file = t[i].file }, &len);

		if (!ok(b != NULL && store(t[i].id, b, len * 2 / 3, &st) == 0, "%s cut: stored",
		    t[i].file)) {
			free(b);
			continue;
		}
		errno = 0;
		rc = vmake_id(&conf, dfd, t[i].id, &res);
		ok(rc == -1 && errno == EINVAL &&
		    res.status == t[i].status && res.why && strcmp(res.why, t[i].why) == 0,
		    "%s cut: refused %d %s (got %d %s)", t[i].file, t[i].status, t[i].why,
		    res.status, res.why ? res.why : "-");
		ok(res.made + res.copied == 0 && count_files(t[i].id, NULL) == 0,
		    "%s cut: nothing made", t[i].file);
		free(b);
	}
	{
		struct vmake_result res;

		errno = 0;
		ok(vmake_id(&conf, dfd, 999, &res) == -1 && errno == ENOENT, "no original: ENOENT");
	}
}

/* vmake_id waits for the store's lock of the id: while another process
 * holds it (600 ms here), not one variant of the id appears. */
static void
waits_for_lock(void)
{
	const int64_t id = 950;
	struct vmake_result res;
	struct stat st;
	unsigned char *b;
	size_t len = 0;
	int p[2], rc, status = -1;
	char c;
	pid_t pid;

	b = original(&cases[0], &len);
	if (!ok(b != NULL && store(id, b, len, &st) == 0 && pipe(p) == 0, "lock: stored"))
		goto done;
	if ((pid = fork()) == 0) {
		int lfd = store_lock(dfd, id);

		if (write(p[1], "x", 1) != 1 || lfd == -1)
			_exit(2);
		usleep(600 * 1000);
		_exit(count_files(id, NULL) == 0 ? 0 : 1);
	}
	if (!ok(pid > 0 && read(p[0], &c, 1) == 1, "lock: held by another process"))
		goto done;
	rc = vmake_id(&conf, dfd, id, &res);
	waitpid(pid, &status, 0);
	ok(rc == 0 && res.made > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "lock: nothing was written while it was held (child status %d)", status);
	close(p[0]);
	close(p[1]);
done:
	free(b);
}

/* image_variants alone: JPEG of a transparent image is drawn on white;
 * a want list that stops early; an AVIF-only list of an animation. */
static int
collect(void *ctx, size_t i, const struct image_out *o)
{
	struct image_out *got = ctx;

	got[i] = *o;
	if (o->bytes != NULL) {
		got[i].bytes = malloc(o->len);
		memcpy(got[i].bytes, o->bytes, o->len);
	}
	return o->status == 415;	/* stop at the first refusal */
}

static void
direct(void)
{
	struct image_limits l;
	struct image_out got[3];
	const struct image_want jpeg[] = { { 64, SNIFF_JPEG } };
	const struct image_want avif_anim[] = { { 64, SNIFF_AVIF }, { 0, SNIFF_AVIF }, { 0, SNIFF_AVIF } };
	VipsImage *clear = NULL, *img = NULL;
	void *png = NULL;
	size_t plen = 0, len = 0;
	unsigned w = 0, h = 0;
	const char *why = NULL;
	unsigned char *anim;
	double *px = NULL;
	int npx = 0;

	image_limits_default(&l);
	/* A fully transparent 100x100 RGBA PNG (all bands zero). */
	if (!ok(vips_black(&clear, 100, 100, "bands", 4, NULL) == 0 &&
	    vips_pngsave_buffer(clear, &png, &plen, NULL) == 0, "a transparent PNG"))
		return;
	memset(got, 0, sizeof(got));
	ok(image_variants(&l, png, plen, jpeg, 1, collect, got, &w, &h, &why) == 0 &&
	    got[0].status == 0 && got[0].bytes != NULL && w == 100 && h == 100,
	    "image_variants: a JPEG of a PNG (%s)", why ? why : "ok");
	if (got[0].bytes != NULL &&
	    vips_jpegload_buffer(got[0].bytes, got[0].len, &img, NULL) == 0 &&
	    vips_getpoint(img, &px, &npx, 10, 10, NULL) == 0 && npx == 3)
		ok(px[0] > 250 && px[1] > 250 && px[2] > 250, "transparent becomes white in JPEG "
		    "(got %.0f,%.0f,%.0f)", px[0], px[1], px[2]);
	else
		ok(0, "the JPEG decodes");
	g_free(px);
	if (img != NULL)
		g_object_unref(img);
	free(got[0].bytes);
	g_object_unref(clear);
	g_free(png);

	/* Two frames, black then white: each is fitted on its own, so no
	 * row of one takes colour from the other (libvips' thumbnail of the
	 * whole strip gave 15 and 239 at the seam). */
	{
		const struct image_want gif32[] = { { 32, SNIFF_GIF } };
		VipsImage *two = NULL, *strip = NULL, *back = NULL;
		void *gif = NULL;
		size_t glen = 0;
		double *a = NULL, *z = NULL;
		int na = 0, nz = 0;

		memset(got, 0, sizeof(got));
		if (vips_black(&two, 100, 200, "bands", 3, NULL) == 0 &&
		    vips_draw_rect1(two, 255.0, 0, 100, 100, 100, "fill", TRUE, NULL) == 0 &&
		    vips_cast_uchar(two, &strip, NULL) == 0) {
			vips_image_set_int(strip, VIPS_META_PAGE_HEIGHT, 100);
			vips_gifsave_buffer(strip, &gif, &glen, NULL);
		}
		ok(gif != NULL && image_variants(&l, gif, glen, gif32, 1, collect, got, &w, &h,
		    &why) == 0 && got[0].bytes != NULL && got[0].frames == 2,
		    "seam: a 2-frame GIF at 32");
		if (got[0].bytes != NULL && vips_gifload_buffer(got[0].bytes, got[0].len, &back,
		    "n", -1, NULL) == 0 && vips_getpoint(back, &a, &na, 16, 31, NULL) == 0 &&
		    vips_getpoint(back, &z, &nz, 16, 32, NULL) == 0)
			ok(a[0] == 0 && z[0] == 255, "seam: frame edges untouched (%.0f, %.0f)",
			    a[0], z[0]);
		else
			ok(0, "seam: decoded");
		g_free(a);
		g_free(z);
		free(got[0].bytes);
		g_free(gif);
		if (back != NULL)
			g_object_unref(back);
		if (strip != NULL)
			g_object_unref(strip);
		if (two != NULL)
			g_object_unref(two);
	}

	anim = corpus_file("ok-anim.gif", &len);
	memset(got, 0, sizeof(got));
	ok(anim != NULL && image_variants(&l, anim, len, avif_anim, 3, collect, got, &w, &h,
	    &why) == 0 && got[0].status == 415 && strcmp(got[0].error, "animation") == 0 &&
	    got[1].status == 0 && got[1].error == NULL, "AVIF of an animation: 415 animation, "
	    "and emit's non-zero return stops the list");
	free(anim);

	/* Uploads still never reach libheif: the saver is open, no loader is. */
	{
		VipsImage *x = NULL;
		void *avif = NULL;
		size_t alen = 0;
		VipsImage *one = NULL;

		ok(vips_black(&one, 8, 8, "bands", 3, NULL) == 0 &&
		    vips_heifsave_buffer(one, &avif, &alen, "compression",
		    VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "effort", 0, NULL) == 0,
		    "the HEIF saver is allowed");
		ok(avif != NULL && vips_heifload_buffer(avif, alen, &x, NULL) != 0 && x == NULL &&
		    vips_image_new_from_buffer(avif, alen, "", NULL) == NULL,
		    "every HEIF loader is blocked");
		vips_error_clear();
		if (one != NULL)
			g_object_unref(one);
		g_free(avif);
	}
}

int
main(int argc, char **argv)
{
	static const unsigned sizes[] = { 32, 64, 128, 256, 512 };
	const char *why = NULL;
	char cmd[600];

	if (argc > 1)
		corpus = argv[1];
	if (!ok(image_init(argv[0], &why) == 0, "image_init: %s", why ? why : "ok"))
		return tap_done();
	if (corpus[0] != '/') {
		static char abs[512];
		char cwd[400];

		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return 1;
		snprintf(abs, sizeof(abs), "%s/%s", cwd, corpus);
		corpus = abs;
	}
	if (!ok(mkdtemp(dir) != NULL && (dfd = open(dir, O_RDONLY | O_DIRECTORY)) != -1 &&
	    chdir(dir) == 0, "temporary directory %s", dir))
		return tap_done();
	memset(&conf, 0, sizeof(conf));
	conf.upload_max = IMAGE_MAX_BYTES;
	conf.max_pixels = IMAGE_MAX_PIXELS;
	conf.max_frames = IMAGE_MAX_FRAMES;
	conf.max_aspect = IMAGE_MAX_ASPECT;
	conf.quality = IMAGE_QUALITY;
	memcpy(conf.variants.sizes, sizes, sizeof(sizes));
	conf.variants.nsizes = NELEM(sizes);
	conf.variants.formats = VARIANT_FMT(SNIFF_WEBP) | VARIANT_FMT(SNIFF_AVIF);

	for (size_t i = 0; i < NELEM(cases); i++)
		run_case(&cases[i], (int64_t)(100 + i));
	replace_and_drop();
	refused();
	waits_for_lock();
	direct();

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	close(dfd);
	if (chdir("/") != 0 || system(cmd) != 0)
		ok(0, "remove %s", dir);
	vips_shutdown();
	return tap_done();
}

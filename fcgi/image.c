/*
 * image: the upload checks and normalisation promised by image.h, on
 * libvips 8.14. Every libvips call of the program is in this file. Each
 * check reads only what it needs: the size and the magic bytes need nothing
 * decoded, the header load reads no pixel data, and only then does one
 * streaming pass decode, shrink, crop and re-encode.
 */
#include "image.h"

#include <string.h>

#include <vips/vips.h>
#include <webp/mux.h>

/*
 * One line per accepted type: where its bytes may go in libvips. Only these
 * loader and saver classes are left unblocked, so no path through libvips
 * can reach ImageMagick, poppler, librsvg, libheif or any other parser,
 * whatever the bytes claim to be.
 *
 * How strict each decoder is: libjpeg reports corrupt entropy-coded data
 * ("bad Huffman code", "premature end of data segment") only as warnings
 * and paints the rest grey, so JPEG fails on warnings. libpng warns about
 * harmless things common in real files (an sRGB profile it dislikes, a bad
 * CRC in an ancillary chunk it then drops), so PNG, GIF and WebP fail on
 * errors, which include truncation and a bad CRC in image data.
 */
static const struct family {
	const char *ext;
	const char *load_class;
	const char *save_class;
	const char *loader;		/* "vips-loader" a buffer load leaves behind */
	int (*load)(void *buf, size_t len, VipsImage **out, ...);	/* that loader */
	VipsFailOn fail_on;
	const char *options;		/* the same, and all frames, for thumbnail */
} families[] = {
	[SNIFF_PNG] = { ".png", "VipsForeignLoadPng", "VipsForeignSavePng", "pngload_buffer",
	    vips_pngload_buffer, VIPS_FAIL_ON_ERROR, "fail_on=error" },
	[SNIFF_JPEG] = { ".jpg", "VipsForeignLoadJpeg", "VipsForeignSaveJpeg", "jpegload_buffer",
	    vips_jpegload_buffer, VIPS_FAIL_ON_WARNING, "fail_on=warning" },
	[SNIFF_GIF] = { ".gif", "VipsForeignLoadNsgif", "VipsForeignSaveCgif", "gifload_buffer",
	    vips_gifload_buffer, VIPS_FAIL_ON_ERROR, "fail_on=error,n=-1" },
	[SNIFF_WEBP] = { ".webp", "VipsForeignLoadWebp", "VipsForeignSaveWebp", "webpload_buffer",
	    vips_webpload_buffer, VIPS_FAIL_ON_ERROR, "fail_on=error,n=-1" },
};

/*
 * Set once by image_init. Without it libvips would start itself on first
 * use with its cache on and every loader allowed, so image_process refuses
 * to run rather than run unguarded.
 */
static int image_ready;

/* What the header says, before any pixel is decoded. */
struct header {
	unsigned width, height;		/* of one frame */
	unsigned frames;
	int icc;			/* carries an ICC profile */
};

void
image_limits_default(struct image_limits *l)
{
	l->max_bytes = IMAGE_MAX_BYTES;
	l->max_pixels = IMAGE_MAX_PIXELS;
	l->max_frames = IMAGE_MAX_FRAMES;
	l->max_aspect = IMAGE_MAX_ASPECT;
	l->max_side = IMAGE_MAX_SIDE;
	l->crop = IMAGE_CROP_CENTRE;
	l->quality = IMAGE_QUALITY;
}

int
image_crop_parse(const char *s, enum image_crop *crop)
{
	static const char *const names[] = {
		[IMAGE_CROP_CENTRE] = "centre",
		[IMAGE_CROP_ATTENTION] = "attention",
		[IMAGE_CROP_NONE] = "none",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0) {
			*crop = (enum image_crop)i;
			return 0;
		}
	return -1;
}

/* libvips reports each failed tile as a warning on stderr as well as
 * returning the error; an upload is answered with the error, so a
 * hostile file must not also be able to fill the log. */
static void
drop_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
	(void)domain;
	(void)level;
	(void)msg;
	(void)data;
}

int
image_init(const char *argv0, const char **why)
{
	if (image_ready)
		return 0;
	if (VIPS_INIT(argv0 ? argv0 : "avatar.fcgi") != 0) {
		*why = "libvips did not start (vips_init)";
		return -1;
	}
	/* Every upload is new bytes: a cache only holds memory. */
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);
	/* Uploads run in parallel as processes, each bounded; one thread
	 * each keeps a burst of uploads from taking every core. */
	vips_concurrency_set(1);
	vips_block_untrusted_set(TRUE);
	vips_operation_block_set("VipsForeignLoad", TRUE);
	vips_operation_block_set("VipsForeignSave", TRUE);
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		if (families[i].ext == NULL)
			continue;
		vips_operation_block_set(families[i].load_class, FALSE);
		vips_operation_block_set(families[i].save_class, FALSE);
	}
	/* AVIF variants are written, never read: the HEIF saver is allowed
	 * and every HEIF loader stays blocked (said again here so that no
	 * change to the lines above can open libheif's parser to uploads). */
	vips_operation_block_set("VipsForeignSaveHeif", FALSE);
	vips_operation_block_set("VipsForeignLoadHeif", TRUE);
	g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE |
	    G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG, drop_log, NULL);
	image_ready = 1;
	return 0;
}

/* Fills the refusal into *out; the detail is libvips' last error, if any,
 * cut to its first line and to printable ASCII so a log line stays one
 * line whatever a decoder echoed from the file. */
static int
refuse(struct image_out *out, int status, const char *error)
{
	/* Before image_init even libvips' error buffer does not exist. */
	const char *e = image_ready ? vips_error_buffer() : "image_init was not called";
	size_t n = 0;

	out->status = status;
	out->error = error;
	while (e[n] != '\0' && e[n] != '\n' && n < sizeof(out->detail) - 1) {
		unsigned char c = (unsigned char)e[n];
		out->detail[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		n++;
	}
	out->detail[n] = '\0';
	if (image_ready)
		vips_error_clear();
	return -1;
}

/* The header of buf by the loader its magic bytes named, with no pixels
 * decoded: libvips loaders are lazy, and access is sequential. */
static int
load_header(enum sniff_type type, void *buf, size_t len, VipsImage **img)
{
	const struct family *f = &families[type];

	if (f->load == NULL) {
		vips_error("image", "no loader");
		return -1;
	}
	return f->load(buf, len, img, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
	    f->fail_on, NULL);
}

/* Step 3: every limit that the header alone can decide. */
static int
check_header(const struct image_limits *l, enum sniff_type type, void *buf, size_t len,
    struct header *h, struct image_out *out)
{
	VipsImage *img = NULL;
	uint64_t w, ht, longer, shorter;

	if (load_header(type, buf, len, &img) != 0)
		return refuse(out, 422, "decode");
	h->width = (unsigned)vips_image_get_width(img);
	h->height = (unsigned)vips_image_get_height(img);
	h->frames = (unsigned)vips_image_get_n_pages(img);
	h->icc = vips_image_get_typeof(img, VIPS_META_ICC_NAME) != 0;
	g_object_unref(img);

	w = h->width;
	ht = h->height;
	if (w * ht > l->max_pixels)
		return refuse(out, 422, "max-pixels");
	longer = w > ht ? w : ht;
	shorter = w > ht ? ht : w;
	/* A 1x100000 image passes the pixel limit, but cropped to a square
	 * it is one pixel, and uncropped a line: refused as a mistake. */
	if (longer > shorter * l->max_aspect)
		return refuse(out, 422, "max-aspect");
	if (h->frames > l->max_frames)
		return refuse(out, 422, "max-frames");
	/* Every frame is decoded: the frames together must fit the budget. */
	if (w * ht * h->frames > l->max_pixels)
		return refuse(out, 422, "max-pixels");
	return 0;
}

/*
 * Decodes, rotates upright, converts to sRGB and shrinks in one streaming
 * pass (libvips' thumbnail: shrink-on-load for JPEG, CMYK through libvips'
 * CMYK profile). fail_on makes any decoder error, truncation included,
 * fail the whole pipeline. Only an image that carries an ICC profile is
 * transformed to sRGB with it: told to export sRGB, thumbnail also sends
 * untagged images through the ICC path, which moves saturated colours (pure
 * blue comes out as 84,15,253).
 *
 * A still image is cropped by thumbnail itself. thumbnail would flatten an
 * animation to one frame when asked to crop, so an animation is shrunk
 * until its shorter side fits and its frames are cropped afterwards.
 */
static int
shrink(const struct image_limits *l, enum sniff_type type, void *buf, size_t len,
    const struct header *h, VipsImage **img)
{
	unsigned shorter = h->width < h->height ? h->width : h->height;
	unsigned side = shorter < l->max_side ? shorter : l->max_side;
	int animated = h->frames > 1;
	int width, height;
	VipsInteresting crop = VIPS_INTERESTING_NONE;

	if (l->crop == IMAGE_CROP_NONE) {
		width = height = (int)l->max_side;
	} else if (!animated) {
		width = height = (int)side;
		crop = l->crop == IMAGE_CROP_ATTENTION ? VIPS_INTERESTING_ATTENTION
		    : VIPS_INTERESTING_CENTRE;
	} else {
		width = h->width <= h->height ? (int)side : VIPS_MAX_COORD;
		height = h->width <= h->height ? VIPS_MAX_COORD : (int)side;
	}
	/* fail_on goes in the loader's option string: libvips 8.14's
	 * thumbnail_buffer does not pass its own fail_on to the loader
	 * (a truncated PNG decodes as grey with it), the option string does. */
	return vips_thumbnail_buffer(buf, len, img, width, "height", height,
	    "size", VIPS_SIZE_DOWN, "crop", crop, "export_profile", h->icc ? "srgb" : NULL,
	    "option_string", families[type].options, NULL);
}

/* Cuts every frame to the centred square of its shorter side; a still
 * image that thumbnail already cropped comes back as it is. */
static int
crop_frames(VipsImage *in, VipsImage **out)
{
	int w = vips_image_get_width(in);
	int ph = vips_image_get_page_height(in);
	int frames = vips_image_get_height(in) / ph;
	int side = w < ph ? w : ph;
	VipsImage **pages;
	int rc = -1, n;

	if (w == ph) {
		*out = in;
		g_object_ref(in);
		return 0;
	}
	pages = g_new0(VipsImage *, (gsize)frames);
	for (n = 0; n < frames; n++)
		if (vips_extract_area(in, &pages[n], (w - side) / 2,
		    n * ph + (ph - side) / 2, side, side, NULL) != 0)
			goto done;
	if (vips_arrayjoin(pages, out, frames, "across", 1, NULL) != 0)
		goto done;
	rc = 0;
done:
	while (n-- > 0)
		g_object_unref(pages[n]);
	g_free(pages);
	return rc;
}

/* To 8-bit sRGB, three bands and the alpha the upload had (a JPEG has
 * none): grey, 16-bit and anything thumbnail left in another space. */
static int
to_srgb(VipsImage *in, VipsImage **out)
{
	VipsImage *t[2] = { NULL, NULL };
	int rc = -1;

	if (vips_colourspace(in, &t[0], VIPS_INTERPRETATION_sRGB, NULL) != 0)
		goto done;
	if (vips_image_get_format(t[0]) != VIPS_FORMAT_UCHAR) {
		if (vips_cast_uchar(t[0], &t[1], NULL) != 0)
			goto done;
	} else {
		t[1] = t[0];
		g_object_ref(t[1]);
	}
	*out = t[1];
	t[1] = NULL;
	rc = 0;
done:
	for (int i = 0; i < 2; i++)
		if (t[i] != NULL)
			g_object_unref(t[i]);
	return rc;
}
/*
 * libvips 8.14.1 (Debian 12) ignores strip in webpsave and always writes
 * an EXIF chunk it builds afresh, and any ICC or XMP the image carries
 * (fixed in 8.14.2, "fix strip arg to webpsave"). So the chunks are taken
 * out again with libwebp's own muxer; harmless where strip works.
 */
static int
webp_strip(void **buf, size_t *len)
{
	static const char *const meta[] = { "EXIF", "XMP ", "ICCP" };
	WebPData in = { *buf, *len }, out = { NULL, 0 };
	WebPMux *mux = WebPMuxCreate(&in, 0);
	int rc = -1;

	if (mux == NULL)
		goto done;
	for (size_t i = 0; i < sizeof(meta) / sizeof(meta[0]); i++) {
		WebPMuxError e = WebPMuxDeleteChunk(mux, meta[i]);
		if (e != WEBP_MUX_OK && e != WEBP_MUX_NOT_FOUND)
			goto done;
	}
	if (WebPMuxAssemble(mux, &out) != WEBP_MUX_OK)
		goto done;
	g_free(*buf);
	*buf = g_memdup2(out.bytes, out.size);
	*len = out.size;
	rc = 0;
done:
	if (rc != 0)
		vips_error("image", "webp metadata could not be removed");
	WebPDataClear(&out);
	WebPMuxDelete(mux);
	return rc;
}

/* JPEG has no alpha: a variant of a transparent original is drawn on
 * white, as a browser shows it on a page, not on the saver's black. */
static int
jpeg_save(const struct image_limits *l, VipsImage *img, void **buf, size_t *len)
{
	VipsArrayDouble *white;
	VipsImage *flat = NULL;
	int rc;

	if (!vips_image_hasalpha(img))
		return vips_jpegsave_buffer(img, buf, len, "strip", TRUE, "Q", l->quality,
		    "optimize_coding", TRUE, "interlace", FALSE, NULL);
	white = vips_array_double_newv(1, 255.0);
	rc = vips_flatten(img, &flat, "background", white, NULL);
	vips_area_unref(VIPS_AREA(white));
	if (rc == 0)
		rc = jpeg_save(l, flat, buf, len);
	if (flat != NULL)
		g_object_unref(flat);
	return rc;
}

/*
 * Encodes as type; bytes from libvips' allocator. strip drops every
 * metadata field a loader attached (EXIF with GPS and orientation, XMP,
 * IPTC, ICC, comments and text chunks): only pixels and the animation
 * (page-height, delay, loop) are written. AVIF is only ever a variant:
 * AV1 at the encoder's fastest effort (still the dearest saver) and
 * 8 bits, as every browser that shows AVIF decodes them (libvips 8.14
 * would write 12).
 */
static int
encode(const struct image_limits *l, enum sniff_type type, VipsImage *img, void **buf,
    size_t *len)
{
	switch (type) {
	case SNIFF_PNG:
		return vips_pngsave_buffer(img, buf, len, "strip", TRUE, "compression", 6,
		    "interlace", FALSE, NULL);
	case SNIFF_JPEG:
		return jpeg_save(l, img, buf, len);
	case SNIFF_GIF:
		return vips_gifsave_buffer(img, buf, len, "strip", TRUE, NULL);
	case SNIFF_WEBP:
		if (vips_webpsave_buffer(img, buf, len, "strip", TRUE, "Q", l->quality, NULL) != 0)
			return -1;
		if (webp_strip(buf, len) != 0) {
			g_free(*buf);
			*buf = NULL;
			return -1;
		}
		return 0;
	case SNIFF_AVIF:
		return vips_heifsave_buffer(img, buf, len, "compression",
		    VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "Q", l->quality, "effort", 0,
		    "bitdepth", 8, "strip", TRUE, NULL);
	case SNIFF_NONE:
		break;
	}
	vips_error("image", "no saver");
	return -1;
}

/* The extension of a type this module writes. */
static const char *
type_ext(enum sniff_type type)
{
	return type == SNIFF_AVIF ? ".avif" : families[type].ext;
}

/* A good answer: the new bytes (owned by out from now on) and what they are. */
static void
fill(struct image_out *out, enum sniff_type type, VipsImage *img, void *bytes, size_t n)
{
	out->bytes = bytes;
	out->len = n;
	out->type = type;
	out->ext = type_ext(type);
	out->mime = sniff_mime(type);
	out->width = (unsigned)vips_image_get_width(img);
	out->height = (unsigned)vips_image_get_page_height(img);
	out->frames = (unsigned)(vips_image_get_height(img) / vips_image_get_page_height(img));
}

/*
 * The PNG that libpng gets to see. libvips 8.14 lets libpng inflate every
 * zTXt, iTXt and iCCP chunk, up to 100 of them and 50 MB each, and keeps
 * the text: a 5 MB upload of 99 zTXt chunks grew the process to 5 GB and
 * ran for minutes. Text is stripped from the new image anyway, so it is
 * taken out before any decoder runs. What is passed on: the signature, the
 * chunks that make the pixels (IHDR, PLTE, tRNS, IDAT, IEND), their colour
 * (gAMA, cHRM, sRGB, and the first iCCP if at most 1 MiB) and orientation
 * (eXIf, not compressed). Bytes after IEND go too. Only chunk framing is
 * read here (length, type); a chunk that runs past the end is passed on
 * as it is, for libpng to refuse as truncated. CRCs are libpng's to check.
 */
static unsigned char *
png_pixels_only(const unsigned char *buf, size_t len, size_t *outlen)
{
	static const char keep[][5] = { "IHDR", "PLTE", "tRNS", "IDAT", "IEND", "gAMA",
		"cHRM", "sRGB", "iCCP", "eXIf" };
	unsigned char *out = g_malloc(len);
	size_t i = 8, o = 8;
	int iccp = 0;

	memcpy(out, buf, 8);
	while (i < len) {
		size_t n = len - i, size;
		int kept = 0;

		if (n < 12 || (size = ((size_t)buf[i] << 24 | (size_t)buf[i + 1] << 16 |
		    (size_t)buf[i + 2] << 8 | buf[i + 3])) > n - 12) {
			memcpy(out + o, buf + i, n);
			o += n;
			break;
		}
		for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++)
			kept |= memcmp(buf + i + 4, keep[k], 4) == 0;
		if (memcmp(buf + i + 4, "iCCP", 4) == 0 && (iccp++ > 0 || size > (1u << 20)))
			kept = 0;
		if (kept) {
			memcpy(out + o, buf + i, size + 12);
			o += size + 12;
		}
		if (memcmp(buf + i + 4, "IEND", 4) == 0)
			break;
		i += size + 12;
	}
	*outlen = o;
	return out;
}

/*
 * A progressive JPEG is decoded scan by scan, each scan a pass over the
 * coefficients: 2080 legal scans (every coefficient refined bit by bit)
 * made a 6 MP photo cost 11 times the CPU of the same photo in one scan,
 * from a file no larger. Encoders write one scan, or about ten. The count
 * is of FF DA byte pairs: entropy-coded data never holds one (an FF there
 * is followed by 00 or a restart marker), so it is every scan of the file
 * plus those of an embedded thumbnail, if any; no decoder is involved.
 */
static int
jpeg_scans_ok(const unsigned char *buf, size_t len)
{
	unsigned scans = 0;

	for (const unsigned char *p = buf, *end = buf + len;
	    (p = memchr(p, 0xff, (size_t)(end - p))) != NULL && p + 1 < end; p++)
		if (p[1] == 0xda && ++scans > IMAGE_MAX_SCANS)
			return -1;
	return 0;
}

/*
 * libnsgif is made for browsers that draw a GIF as it arrives: on a cut
 * file it stops quietly after the last whole frame, and libvips returns
 * those. The trailer byte (0x3B) that every GIF ends with is then the one
 * sign that the file is whole; a file without it is refused as truncated.
 */
static int
gif_whole(const unsigned char *buf, size_t len)
{
	if (len > 0 && buf[len - 1] == 0x3b)
		return 0;
	vips_error("image", "GIF without its trailer: truncated");
	return -1;
}

/* What steps 1 to 3 leave to the decode: the type, the bytes a decoder
 * may see (for a PNG a copy with its pixel chunks only, owned: g_free
 * png in every case) and the header. */
struct admitted {
	enum sniff_type type;
	void *in;
	size_t len;
	unsigned char *png;
	struct header h;
};

/* Steps 1 to 3, and the trailer rule of step 4 that needs no decoder. */
static int
admit(const struct image_limits *l, const void *buf, size_t len, struct admitted *a,
    struct image_out *out)
{
	memset(a, 0, sizeof(*a));
	/* libvips takes a non-const pointer but only reads the buffer. */
	a->in = (void *)(uintptr_t)buf;
	a->len = len;
	if (!image_ready)
		return refuse(out, 500, "internal");
	vips_error_clear();
	/* 1. Size, before anything reads the body. */
	if (len > l->max_bytes)
		return refuse(out, 413, "max-bytes");
	/* 2. Type by magic bytes; the loader is chosen from them alone.
	 * sniff also names AVIF, which only variants are: no upload may be
	 * one, and the families table has no loader for it. */
	a->type = sniff_type(buf, len);
	if (a->type == SNIFF_NONE || (size_t)a->type >= sizeof(families) / sizeof(families[0]) ||
	    families[a->type].load == NULL)
		return refuse(out, 415, "type");
	if (a->type == SNIFF_PNG)
		a->in = a->png = png_pixels_only(buf, len, &a->len);
	/* 3. Header limits, no pixel decoded yet. */
	if (check_header(l, a->type, a->in, a->len, &a->h, out) != 0)
		return -1;
	if (a->type == SNIFF_JPEG && jpeg_scans_ok(a->in, a->len) != 0)
		return refuse(out, 422, "max-scans");
	if (a->type == SNIFF_GIF && gif_whole(a->in, a->len) != 0)
		return refuse(out, 422, "decode");
	return 0;
}

/* thumbnail picks its own loader; it must be the one the magic bytes
 * named (the others are blocked: this only proves it). */
static int
loaded_by(VipsImage *img, enum sniff_type type)
{
	const char *loader = NULL;

	if (vips_image_get_string(img, VIPS_META_LOADER, &loader) != 0 ||
	    strcmp(loader, families[type].loader) != 0) {
		vips_error("image", "loaded by %s", loader ? loader : "?");
		return -1;
	}
	return 0;
}

int
image_process(const struct image_limits *l, const void *buf, size_t len,
    struct image_out *out)
{
	struct admitted a;
	VipsImage *t[3] = { NULL, NULL, NULL };
	void *bytes = NULL;
	size_t n = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (admit(l, buf, len, &a, out) != 0)
		goto done;
	/* 4. The full decode, inside the one pass that makes the new image. */
	if (shrink(l, a.type, a.in, a.len, &a.h, &t[0]) != 0 || loaded_by(t[0], a.type) != 0)
		goto decode;
	if (l->crop == IMAGE_CROP_NONE) {
		t[1] = t[0];
		g_object_ref(t[1]);
	} else if (crop_frames(t[0], &t[1]) != 0) {
		goto decode;
	}
	if (to_srgb(t[1], &t[2]) != 0)
		goto decode;
	/* Pixels are decoded here, as the encoder pulls them. */
	if (encode(l, a.type, t[2], &bytes, &n) != 0)
		goto decode;
	fill(out, a.type, t[2], bytes, n);
	rc = 0;
	goto done;
decode:
	rc = refuse(out, 422, "decode");
done:
	for (int i = 0; i < 3; i++)
		if (t[i] != NULL)
			g_object_unref(t[i]);
	g_free(a.png);
	return rc;
}

void
image_out_free(struct image_out *out)
{
	g_free(out->bytes);
	out->bytes = NULL;
	out->len = 0;
}

/*
 * The pixels of one size: every frame fitted in side x side on its own,
 * then the frames joined again. libvips 8.14's thumbnail_image does know
 * pages, but it filters the whole strip at once, so the kernel mixes the
 * edge rows of neighbouring frames; frame by frame nothing bleeds (it
 * costs more: 1.8 s instead of 1.25 s of CPU for every size of a GIF of
 * 20 frames of 400x400 noise, most of it in the GIF and WebP savers). The
 * size is computed here and forced, so the long side is exactly side and
 * the short one the nearest whole pixel, for every frame alike. The input
 * is already upright and sRGB: thumbnail_image must neither rotate nor
 * transform colours again.
 */
static int
fit(VipsImage *in, unsigned side, VipsImage **out)
{
	unsigned w = (unsigned)vips_image_get_width(in);
	unsigned ph = (unsigned)vips_image_get_page_height(in);
	int frames = vips_image_get_height(in) / (int)ph;
	unsigned longer = w > ph ? w : ph;
	int tw = (int)(((uint64_t)w * side + longer / 2) / longer);
	int th = (int)(((uint64_t)ph * side + longer / 2) / longer);
	VipsImage **pages, *joined = NULL;
	int rc = -1, n = 0, failed;

	tw = tw < 1 ? 1 : tw;
	th = th < 1 ? 1 : th;
	pages = g_new0(VipsImage *, (gsize)frames);
	for (n = 0; n < frames; n++) {
		VipsImage *one = in;

		if (frames > 1 && vips_extract_area(in, &one, 0, n * (int)ph, (int)w, (int)ph,
		    NULL) != 0)
			goto done;
		failed = vips_thumbnail_image(one, &pages[n], tw, "height", th, "size",
		    VIPS_SIZE_FORCE, "no_rotate", TRUE, NULL) != 0;
		if (one != in)
			g_object_unref(one);
		if (failed)
			goto done;
	}
	if (frames > 1 ? vips_arrayjoin(pages, &joined, frames, "across", 1, NULL) != 0 :
	    vips_copy(pages[0], &joined, NULL) != 0)
		goto done;
	/* A new image of our own: its page height may be set. */
	vips_image_set_int(joined, VIPS_META_PAGE_HEIGHT, th);
	*out = joined;
	rc = 0;
done:
	while (n-- > 0)
		if (pages[n] != NULL)
			g_object_unref(pages[n]);
	g_free(pages);
	return rc;
}

/*
 * Step 4 for variants: the whole original decoded once (the same pass as
 * an upload's, with no crop and a box no image reaches, so nothing is
 * shrunk), upright, 8-bit sRGB, every frame, and kept in memory, since
 * every variant reads it again. At most max_pixels x 4 bytes.
 */
static int
decode_whole(const struct image_limits *l, const struct admitted *a, VipsImage **out)
{
	struct image_limits whole = *l;
	VipsImage *t[2] = { NULL, NULL };
	int rc = -1;

	whole.crop = IMAGE_CROP_NONE;
	whole.max_side = VIPS_MAX_COORD;
	if (shrink(&whole, a->type, a->in, a->len, &a->h, &t[0]) != 0 ||
	    loaded_by(t[0], a->type) != 0 || to_srgb(t[0], &t[1]) != 0)
		goto done;
	/* Decoded here: any decoder error fails this copy. */
	if ((*out = vips_image_copy_memory(t[1])) == NULL)
		goto done;
	/* The pixels are sRGB already; a profile left attached would only
	 * invite thumbnail_image to apply it a second time. */
	vips_image_remove(*out, VIPS_META_ICC_NAME);
	rc = 0;
done:
	for (int i = 0; i < 2; i++)
		if (t[i] != NULL)
			g_object_unref(t[i]);
	return rc;
}

/* One want from the decoded original, into *o (see image.h). */
static void
make_one(const struct image_limits *l, VipsImage *whole, const struct image_want *want,
    struct image_out *o)
{
	unsigned w = (unsigned)vips_image_get_width(whole);
	unsigned ph = (unsigned)vips_image_get_page_height(whole);
	int animated = vips_image_get_height(whole) > (int)ph;
	VipsImage *img = NULL;
	void *bytes = NULL;
	size_t n = 0;

	memset(o, 0, sizeof(*o));
	if (want->type != SNIFF_AVIF && ((size_t)want->type >= sizeof(families) /
	    sizeof(families[0]) || families[want->type].save_class == NULL)) {
		refuse(o, 415, "type");
		return;
	}
	if (want->type == SNIFF_AVIF && animated) {
		refuse(o, 415, "animation");
		return;
	}
	if (want->side > 0 && want->side >= (w > ph ? w : ph)) {
		/* No upscaling: the caller copies the full-size file. */
		o->type = want->type;
		o->ext = type_ext(want->type);
		o->mime = sniff_mime(want->type);
		o->width = w;
		o->height = ph;
		o->frames = (unsigned)(vips_image_get_height(whole) / (int)ph);
		return;
	}
	if (want->side == 0) {
		img = whole;
		g_object_ref(img);
	} else if (fit(whole, want->side, &img) != 0) {
		refuse(o, 500, "resize");
		return;
	}
	if (encode(l, want->type, img, &bytes, &n) != 0)
		refuse(o, 500, "encode");
	else
		fill(o, want->type, img, bytes, n);
	g_object_unref(img);
}

int
image_variants(const struct image_limits *l, const void *buf, size_t len,
    const struct image_want *want, size_t n, image_emit_fn *emit, void *ctx,
    unsigned *width, unsigned *height, const char **why)
{
	struct admitted a;
	struct image_out o;
	VipsImage *whole = NULL;
	size_t i, avif = 0;
	int rc = 0;

	memset(&o, 0, sizeof(o));
	*why = NULL;
	if (admit(l, buf, len, &a, &o) != 0)
		goto refused;
	for (i = 0; i < n; i++)
		avif += want[i].type == SNIFF_AVIF;
	/* An animation wanted only as AVIF: nothing can be made, and the
	 * header said so; a lazy job that asks again costs no decode. */
	if (a.h.frames > 1 && avif == n) {
		*width = a.h.width;
		*height = a.h.height;
		for (i = 0; i < n; i++) {
			memset(&o, 0, sizeof(o));
			refuse(&o, 415, "animation");
			if (emit(ctx, i, &o) != 0)
				break;
		}
		goto done;
	}
	if (decode_whole(l, &a, &whole) != 0) {
		refuse(&o, 422, "decode");
		goto refused;
	}
	*width = (unsigned)vips_image_get_width(whole);
	*height = (unsigned)vips_image_get_page_height(whole);
	for (i = 0; i < n; i++) {
		int stop;

		make_one(l, whole, &want[i], &o);
		stop = emit(ctx, i, &o);
		image_out_free(&o);
		if (stop != 0)
			break;
	}
	goto done;
refused:
	*why = o.error;
	rc = o.status;
done:
	if (whole != NULL)
		g_object_unref(whole);
	g_free(a.png);
	return rc;
}

int
image_check(const struct image_limits *l, const void *buf, size_t len, const char **why)
{
	struct admitted a;
	struct image_out o;
	VipsImage *whole = NULL;
	int rc = 0;

	memset(&o, 0, sizeof(o));
	*why = NULL;
	if (admit(l, buf, len, &a, &o) != 0)
		goto refused;
	if (decode_whole(l, &a, &whole) != 0) {
		refuse(&o, 422, "decode");
		goto refused;
	}
	goto done;
refused:
	*why = o.error;
	rc = o.status;
done:
	if (whole != NULL)
		g_object_unref(whole);
	g_free(a.png);
	return rc;
}

/*
 * variant: names and choices of size and format variants (see variant.h).
 * Pure: this file never touches the filesystem.
 */
#include "variant.h"
#include "num.h"

#include <stdio.h>
#include <string.h>

unsigned
variant_pick_size(const struct variant_conf *vc, int64_t n)
{
	if (vc->nsizes == 0)
		return 0;
	for (size_t i = 0; i < vc->nsizes; i++)
		if ((int64_t)vc->sizes[i] >= n)
			return vc->sizes[i];
	return vc->sizes[vc->nsizes - 1];
}

enum sniff_type
variant_pick_format(const struct variant_conf *vc, enum sniff_type want,
    int bare, int accept_avif, int accept_webp, enum sniff_type stored,
    int *vary_accept)
{
	*vary_accept = 0;
	if (bare && vc->negotiate) {
		/* The answer to /ID now depends on Accept, whatever it is. */
		*vary_accept = 1;
		if (accept_avif && (vc->formats & VARIANT_FMT(SNIFF_AVIF)))
			return SNIFF_AVIF;
		if (accept_webp && (vc->formats & VARIANT_FMT(SNIFF_WEBP)))
			return SNIFF_WEBP;
		return stored;
	}
	if (want != SNIFF_NONE && (vc->formats & VARIANT_FMT(want)))
		return want;
	return stored;
}

void
variant_tag(char tag[VARIANT_TAG_MAX], uint64_t size, const struct timespec *mtime)
{
	uint64_t ns = (uint64_t)mtime->tv_sec * 1000000000u + (uint64_t)mtime->tv_nsec;

	snprintf(tag, VARIANT_TAG_MAX, "%llx-%llx", (unsigned long long)size,
	    (unsigned long long)ns);
}

const char *
variant_ext(enum sniff_type type)
{
	static const char *const ext[] = {
		[SNIFF_PNG] = ".png", [SNIFF_JPEG] = ".jpg", [SNIFF_GIF] = ".gif",
		[SNIFF_WEBP] = ".webp", [SNIFF_AVIF] = ".avif",
	};

	return (size_t)type < sizeof(ext) / sizeof(ext[0]) ? ext[type] : NULL;
}

int
variant_subdir(char *buf, size_t len, unsigned size)
{
	int n = size == 0 ? snprintf(buf, len, VARIANT_DIR "/full") :
	    snprintf(buf, len, VARIANT_DIR "/%u", size);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
variant_name(char *buf, size_t len, unsigned size, int64_t id, const char *tag,
    enum sniff_type type)
{
	const char *ext = variant_ext(type);
	char sub[16];
	int n;

	if (ext == NULL || variant_subdir(sub, sizeof(sub), size) == -1)
		return -1;
	n = snprintf(buf, len, "%s/%lld.%s%s", sub, (long long)id, tag, ext);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* "ID.TAG.EXT" with TAG two hex numbers; the id canonical, as a path's. */
int
variant_parse(const char *name, int64_t *id, char tag[VARIANT_TAG_MAX],
    enum sniff_type *type)
{
	const char *dot1 = strchr(name, '.'), *dot2, *dash;
	size_t tlen;

	if (dot1 == NULL || (dot2 = strchr(dot1 + 1, '.')) == NULL)
		return -1;
	if (num_parse(name, (size_t)(dot1 - name), INT64_MIN, INT64_MAX, id) == -1)
		return -1;
	tlen = (size_t)(dot2 - dot1 - 1);
	if (tlen == 0 || tlen >= VARIANT_TAG_MAX)
		return -1;
	memcpy(tag, dot1 + 1, tlen);
	tag[tlen] = '\0';
	if ((dash = strchr(tag, '-')) == NULL || dash == tag || dash[1] == '\0' ||
	    strspn(tag, "0123456789abcdef-") != tlen || strchr(dash + 1, '-') != NULL)
		return -1;
	for (enum sniff_type t = SNIFF_PNG; t <= SNIFF_AVIF; t++)
		if (strcmp(dot2, variant_ext(t)) == 0) {
			*type = t;
			return 0;
		}
	return -1;
}

size_t
variant_wants(const struct variant_conf *vc, enum sniff_type stored,
    struct variant_want *out, size_t max)
{
	size_t n = 0;

#define WANT(sz, t) do { if (n < max) out[n] = (struct variant_want){ (sz), (t) }; n++; } while (0)
	for (size_t i = 0; i < vc->nsizes; i++) {
		WANT(vc->sizes[i], stored);
		for (enum sniff_type t = SNIFF_PNG; t <= SNIFF_AVIF; t++)
			if (t != stored && (vc->formats & VARIANT_FMT(t)))
				WANT(vc->sizes[i], t);
	}
	for (enum sniff_type t = SNIFF_PNG; t <= SNIFF_AVIF; t++)
		if (t != stored && (vc->formats & VARIANT_FMT(t)))
			WANT(0, t);
#undef WANT
	return n;
}

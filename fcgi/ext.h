/*
 * ext: the one list of file extensions an avatar may have, in the order the
 * read path tries them. The store removes every other name of an id from
 * this same list, so adding a format here is the only change both need in
 * C. The fast paths' front server configs list the names too, to tell a
 * missing id from an unpublished one (@missing in
 * conf/nginx/avatar-fastpath-locations.conf, conf/lighttpd/avatar-fastpath.lua):
 * change them with it.
 */
#ifndef AVATAR_EXT_H
#define AVATAR_EXT_H

#include <stddef.h>

/* Extension number i with its dot (".png"), or NULL past the last one. */
static inline const char *
ext_name(size_t i)
{
	static const char *const exts[] = { ".png", ".jpg", ".jpeg", ".gif", ".webp" };

	return i < sizeof(exts) / sizeof(exts[0]) ? exts[i] : NULL;
}

#endif

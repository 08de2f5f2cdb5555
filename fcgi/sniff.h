/*
 * sniff: the image type of a file from its first bytes, never from its name.
 * The original service stored a JPEG as -1.png and sent image/png; browsers
 * told "nosniff" then refuse to draw it. This module only looks at bytes.
 */
#ifndef AVATAR_SNIFF_H
#define AVATAR_SNIFF_H

#include <stddef.h>

enum sniff_type { SNIFF_NONE, SNIFF_PNG, SNIFF_JPEG, SNIFF_GIF, SNIFF_WEBP };

/* Bytes a caller must read to tell every type apart. */
#define SNIFF_HEAD_LEN 12

/* Returns the type of an image whose first n bytes are head, or SNIFF_NONE. */
enum sniff_type sniff_type(const unsigned char *head, size_t n);
/* "image/png" etc.; NULL for SNIFF_NONE. */
const char *sniff_mime(enum sniff_type type);

#endif

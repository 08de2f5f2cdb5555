/*
 * cond: validators and conditional requests (RFC 9110 sections 8.8 and
 * 13). Pure; never touches the filesystem or the network.
 */
#ifndef AVATAR_COND_H
#define AVATAR_COND_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A quoted strong ETag: '"' + three 16-digit hex fields + '"' + NUL. */
#define COND_ETAG_LEN 56

/*
 * Formats a strong ETag from a file's identity. Inode, size and mtime in
 * nanoseconds change whenever an avatar is replaced (a rename gives a new
 * inode; an in-place write a new mtime), so the tag changes with the bytes.
 */
void cond_etag(char out[COND_ETAG_LEN], uint64_t ino, uint64_t size, int64_t mtime_ns);

/*
 * Decides whether a GET or HEAD is answered 304. if_none_match and
 * if_modified_since are the raw header values or NULL. If-None-Match wins
 * when present (RFC 9110 section 13.2.2); it matches with the weak
 * comparison, so W/"x" matches "x". If-Modified-Since is honoured only when
 * it parses and the file is not newer than it. Returns 1 for 304, else 0.
 */
int cond_not_modified(const char *if_none_match, const char *if_modified_since,
    const char *etag, time_t mtime);

#endif

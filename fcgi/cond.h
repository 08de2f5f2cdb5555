/*
 * cond: validators and conditional requests (RFC 9110 sections 8.8 and
 * 13). Pure; never touches the filesystem or the network.
 */
#ifndef AVATAR_COND_H
#define AVATAR_COND_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A quoted strong ETag: '"' + two 16-digit hex fields joined by '-' + '"' + NUL. */
#define COND_ETAG_LEN 36

/*
 * Formats a strong ETag from a file's size and mtime in nanoseconds, and
 * nothing else: two hosts holding the same file (cp -a, rsync -t, a shared
 * file system) give the same tag, so a browser or CDN that moves between
 * them revalidates with a 304 instead of downloading again. Never the inode
 * (it differs per copy) nor the ctime (a copy cannot keep it). A replaced
 * avatar gets a new mtime, so the tag changes with the bytes.
 */
void cond_etag(char out[COND_ETAG_LEN], uint64_t size, int64_t mtime_ns);

/*
 * Decides whether a GET or HEAD is answered 304 (RFC 9110 section 13.2.2).
 * has_inm: the request carried If-None-Match; if_none_match is its value,
 * or NULL when it was present but could not be kept (too long): that never
 * matches. When If-None-Match is present, If-Modified-Since is ignored
 * (section 13.1.3), whatever its value. If-None-Match uses the weak
 * comparison, so W/"x" matches "x". If-Modified-Since (NULL when absent)
 * is honoured only when it parses and the file is not newer than it.
 * Returns 1 for 304, else 0.
 */
int cond_not_modified(int has_inm, const char *if_none_match,
    const char *if_modified_since, const char *etag, time_t mtime);

#endif

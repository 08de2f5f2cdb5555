/*
 * cache: chained hash table plus an LRU list, evicting from the cold end
 * until the new entry fits. The table doubles whenever the entries
 * outnumber its buckets: with the default 64M limit and no bodies (x-accel)
 * a worker holds about 250,000 entries, which a fixed 4096 buckets made
 * chains of 60 to walk on every lookup (5 % of the responder's CPU on the
 * Zipf workload of make bench).
 */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

#define MIN_BITS 12

static struct cache_entry **buckets;
static unsigned bits;			/* buckets: 1 << bits, or none yet */
static size_t count;
static struct cache_entry *lru_head, *lru_tail;	/* head: most recent */
static size_t used, limit;

static size_t
hash_in(int64_t id, uint32_t kind, unsigned b)
{
	uint64_t x = ((uint64_t)id ^ (uint64_t)kind << 40) * 0x9e3779b97f4a7c15ULL;

	return (size_t)(x >> (64 - b));
}

static size_t
bucket(int64_t id, uint32_t kind)
{
	return hash_in(id, kind, bits);
}

/* Moves every entry into a table of 1 << nb buckets; on ENOMEM keeps the
 * old one (longer chains, still correct). */
static int
rehash(unsigned nb)
{
	struct cache_entry **nt = calloc((size_t)1 << nb, sizeof(*nt));

	if (nt == NULL)
		return -1;
	for (size_t i = 0; buckets && i < (size_t)1 << bits; i++)
		for (struct cache_entry *e = buckets[i], *next; e; e = next) {
			size_t h = hash_in(e->id, e->kind, nb);

			next = e->hnext;
			e->hnext = nt[h];
			nt[h] = e;
		}
	free(buckets);
	buckets = nt;
	bits = nb;
	return 0;
}

void
cache_init(size_t lim)
{
	limit = lim;
}

static void
lru_unlink(struct cache_entry *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void
lru_push(struct cache_entry *e)
{
	e->lprev = NULL;
	e->lnext = lru_head;
	if (lru_head)
		lru_head->lprev = e;
	lru_head = e;
	if (lru_tail == NULL)
		lru_tail = e;
}

struct cache_entry *
cache_get(int64_t id, uint32_t kind)
{
	if (buckets == NULL)
		return NULL;
	for (struct cache_entry *e = buckets[bucket(id, kind)]; e; e = e->hnext)
		if (e->id == id && e->kind == kind) {
			if (e != lru_head) {
				lru_unlink(e);
				lru_push(e);
			}
			return e;
		}
	return NULL;
}

static void
entry_free(struct cache_entry *e)
{
	struct cache_entry **pp = &buckets[bucket(e->id, e->kind)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	count--;
	used -= e->cost;
	free(e->body);
	free(e);
}

void
cache_drop(int64_t id, uint32_t kind)
{
	if (buckets == NULL)
		return;
	for (struct cache_entry *e = buckets[bucket(id, kind)]; e; e = e->hnext)
		if (e->id == id && e->kind == kind) {
			entry_free(e);
			return;
		}
}

struct cache_entry *
cache_put(int64_t id, uint32_t kind, const char *name, const struct cache_ident *ident,
    enum sniff_type type, unsigned char *body, size_t body_len)
{
	struct cache_entry *e;
	size_t cost = sizeof(*e) + (body ? body_len : 0);

	cache_drop(id, kind);
	if (cost > limit)
		goto fail;
	while (used + cost > limit && lru_tail != NULL)
		entry_free(lru_tail);
	if ((buckets == NULL || count >= (size_t)1 << bits) &&
	    rehash(buckets ? bits + 1 : MIN_BITS) != 0 && buckets == NULL)
		goto fail;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		goto fail;
	e->id = id;
	e->kind = kind;
	strncpy(e->name, name, sizeof(e->name) - 1);
	e->ident = *ident;
	e->type = type;
	e->body = body;
	e->body_len = body ? body_len : 0;
	e->cost = cost;
	e->hnext = buckets[bucket(id, kind)];
	buckets[bucket(id, kind)] = e;
	lru_push(e);
	count++;
	used += cost;
	return e;
fail:
	free(body);
	return NULL;
}

size_t
cache_used(void)
{
	return used;
}

size_t
cache_buckets(void)
{
	return buckets ? (size_t)1 << bits : 0;
}

void
cache_ident_from_stat(struct cache_ident *ci, const struct stat *st)
{
	ci->dev = st->st_dev;
	ci->ino = st->st_ino;
	ci->size = st->st_size;
	ci->mtime = st->st_mtim;
	ci->ctime = st->st_ctim;
}

int
cache_ident_equal(const struct cache_ident *a, const struct cache_ident *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec &&
	    a->ctime.tv_sec == b->ctime.tv_sec &&
	    a->ctime.tv_nsec == b->ctime.tv_nsec;
}

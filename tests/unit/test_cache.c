/* Unit tests for cache.c: the memory bound, LRU order, replacement. */
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "tap.h"

static unsigned char *
blob(size_t n)
{
	unsigned char *p = malloc(n);
	memset(p, 7, n);
	return p;
}

int
main(void)
{
	struct cache_ident id = { 0 };
	size_t e = sizeof(struct cache_entry);

	cache_init(3 * (e + 1000));
	ok(cache_put(1, 0, "1.png", &id, SNIFF_PNG, blob(1000), 1000) != NULL, "put 1");
	ok(cache_put(2, 0, "2.png", &id, SNIFF_PNG, blob(1000), 1000) != NULL, "put 2");
	ok(cache_put(3, 0, "3.png", &id, SNIFF_PNG, blob(1000), 1000) != NULL, "put 3");
	ok(cache_used() == 3 * (e + 1000), "used counts entries and bodies");
	ok(cache_get(1, 0) != NULL, "touch 1 so 2 is the coldest");
	ok(cache_put(4, 0, "4.png", &id, SNIFF_PNG, blob(1000), 1000) != NULL, "put 4");
	ok(cache_get(2, 0) == NULL, "coldest entry evicted");
	ok(cache_get(1, 0) && cache_get(3, 0) && cache_get(4, 0), "others kept");
	ok(cache_used() <= 3 * (e + 1000), "never above the limit");
	ok(cache_put(5, 0, "5.png", &id, SNIFF_PNG, blob(5000), 5000) == NULL,
	    "an entry bigger than the whole cache is refused");
	ok(cache_get(1, 0) && cache_get(3, 0) && cache_get(4, 0), "a refused entry evicts nothing");
	ok(cache_put(3, 0, "3.jpg", &id, SNIFF_JPEG, blob(10), 10) != NULL, "replace 3");
	ok(strcmp(cache_get(3, 0)->name, "3.jpg") == 0 && cache_get(3, 0)->type == SNIFF_JPEG,
	    "replacement wins");
	cache_drop(3, 0);
	ok(cache_get(3, 0) == NULL, "drop");
	ok(cache_put(-9, 0, "-9.png", &id, SNIFF_PNG, NULL, 0) != NULL && cache_get(-9, 0)->body == NULL,
	    "metadata-only entry");
	/* An avatar and its variants are entries side by side. */
	ok(cache_put(7, 0, "7.png", &id, SNIFF_PNG, NULL, 0) != NULL &&
	    cache_put(7, 0x41, ".v/64/7.1-1.webp", &id, SNIFF_WEBP, NULL, 0) != NULL,
	    "put an avatar and one variant");
	ok(cache_get(7, 0) && cache_get(7, 0)->type == SNIFF_PNG &&
	    cache_get(7, 0x41) && cache_get(7, 0x41)->type == SNIFF_WEBP &&
	    cache_get(7, 0x42) == NULL, "each kind has its own entry");
	cache_drop(7, 0x41);
	ok(cache_get(7, 0) != NULL && cache_get(7, 0x41) == NULL, "drop one kind only");
	for (int i = 0; i < 10000; i++)
		cache_put(i, 0, "x", &id, SNIFF_PNG, blob(100), 100);
	ok(cache_used() <= 3 * (e + 1000), "10000 puts stay within the limit");
	ok(cache_buckets() == 4096, "a small cache keeps the first 4096 buckets");
	{
		/* As many entries as an x-accel worker holds at 64M: the table
		 * grows with them, and every entry is still found. */
		int n = 300000, found = 0;

		cache_init((size_t)n * (e + 1));
		for (int i = 0; i < n; i++)
			cache_put(1000000 + i, i & 1, "x", &id, SNIFF_PNG, NULL, 0);
		for (int i = 0; i < n; i++)
			found += cache_get(1000000 + i, i & 1) != NULL;
		ok(found == n, "%d of %d entries found after the table grew", found, n);
		ok(cache_buckets() >= (size_t)n, "buckets (%zu) at least the entries (%d)",
		    cache_buckets(), n);
		cache_drop(1000000, 0);
		ok(cache_get(1000000, 0) == NULL && cache_get(1000001, 1) != NULL,
		    "drop after growing");
	}
	{
		struct cache_ident a = { 0 }, b = { 0 };
		a.ino = 1; b.ino = 1;
		ok(cache_ident_equal(&a, &b), "ident equal");
		b.mtime.tv_nsec = 1;
		ok(!cache_ident_equal(&a, &b), "mtime nanoseconds differ");
		b = a; b.ctime.tv_sec = 1;
		ok(!cache_ident_equal(&a, &b), "ctime differs");
		b = a; b.size = 2;
		ok(!cache_ident_equal(&a, &b), "size differs");
	}
	return tap_done();
}

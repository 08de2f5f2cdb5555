/*
 * httpdate: hand-rolled because strftime/strptime follow the locale and
 * strptime accepts far more than the grammar allows.
 */
#include "httpdate.h"

#include <stdio.h>
#include <string.h>

static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const longdays[7] = { "Sunday", "Monday", "Tuesday",
    "Wednesday", "Thursday", "Friday", "Saturday" };
static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

int
httpdate_format(time_t t, char buf[HTTPDATE_LEN])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 0)
		return -1;
	snprintf(buf, HTTPDATE_LEN, "%s, %02d %s %04d %02d:%02d:%02d GMT",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* Reads exactly n digits. */
static int
digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static int
lit(const char **p, const char *s)
{
	size_t n = strlen(s);

	if (strncmp(*p, s, n) != 0)
		return -1;
	*p += n;
	return 0;
}

static int
month(const char **p, int *mon)
{
	for (int i = 0; i < 12; i++)
		if (strncmp(*p, months[i], 3) == 0) {
			*p += 3;
			*mon = i;
			return 0;
		}
	return -1;
}

static int
clock_part(const char **p, struct tm *tm)
{
	if (digits(p, 2, &tm->tm_hour) || lit(p, ":") ||
	    digits(p, 2, &tm->tm_min) || lit(p, ":") ||
	    digits(p, 2, &tm->tm_sec))
		return -1;
	return 0;
}

static int
finish(struct tm *tm, time_t *t)
{
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 60 ||
	    tm->tm_mday < 1 || tm->tm_mday > mdays[tm->tm_mon])
		return -1;
	*t = timegm(tm);
	return *t == (time_t)-1 ? -1 : 0;
}

int
httpdate_parse(const char *s, time_t *t)
{
	struct tm tm;
	const char *p = s;
	int i, yy;

	memset(&tm, 0, sizeof(tm));
	/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
	for (i = 0; i < 7; i++)
		if (strncmp(p, days[i], 3) == 0 && p[3] == ',')
			break;
	if (i < 7) {
		p += 4;
		if (lit(&p, " ") || digits(&p, 2, &tm.tm_mday) || lit(&p, " ") ||
		    month(&p, &tm.tm_mon) || lit(&p, " ") ||
		    digits(&p, 4, &yy) || lit(&p, " ") || clock_part(&p, &tm) ||
		    lit(&p, " GMT") || *p != '\0')
			return -1;
		tm.tm_year = yy - 1900;
		return finish(&tm, t);
	}
	/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
	for (i = 0; i < 7; i++) {
		size_t n = strlen(longdays[i]);
		if (strncmp(p, longdays[i], n) == 0 && p[n] == ',') {
			p += n + 1;
			if (lit(&p, " ") || digits(&p, 2, &tm.tm_mday) ||
			    lit(&p, "-") || month(&p, &tm.tm_mon) ||
			    lit(&p, "-") || digits(&p, 2, &yy) || lit(&p, " ") ||
			    clock_part(&p, &tm) || lit(&p, " GMT") || *p != '\0')
				return -1;
			/* Two-digit years: RFC 9110 says interpret as at most
			 * 50 years in the future; 70 is the usual pivot. */
			tm.tm_year = yy < 70 ? yy + 100 : yy;
			return finish(&tm, t);
		}
	}
	/* asctime: Sun Nov  6 08:49:37 1994 */
	for (i = 0; i < 7; i++)
		if (strncmp(p, days[i], 3) == 0 && p[3] == ' ')
			break;
	if (i == 7)
		return -1;
	p += 4;
	if (month(&p, &tm.tm_mon) || lit(&p, " "))
		return -1;
	if (*p == ' ') {
		p++;
		if (digits(&p, 1, &tm.tm_mday))
			return -1;
	} else if (digits(&p, 2, &tm.tm_mday))
		return -1;
	if (lit(&p, " ") || clock_part(&p, &tm) || lit(&p, " ") ||
	    digits(&p, 4, &yy) || *p != '\0')
		return -1;
	tm.tm_year = yy - 1900;
	return finish(&tm, t);
}

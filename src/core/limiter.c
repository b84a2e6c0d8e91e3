/*
 * The algorithms of gatehouse/limiter.h: token buckets in GCRA form,
 * calendar windows, and the config syntax of rates and offsets. The table
 * that holds their state is in limtable.c.
 */
#include <gatehouse/limiter.h>

#include <errno.h>
#include <string.h>

#include "core/gcra.h"

uint64_t gh_limit_id(const char *desc, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)desc[i];
        h *= 0x100000001b3ULL;
    }
    return h != 0 ? h : 1;
}

/* ---- config syntax ---- */

static int scan_u64(const char **p, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 0;
}

int gh_rate_parse(const char *s, gh_rate_t *out)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {
        {"s", 1000},     {"sec", 1000},     {"second", 1000},   {"seconds", 1000},
        {"m", 60000},    {"min", 60000},    {"minute", 60000},  {"minutes", 60000},
        {"h", 3600000},  {"hr", 3600000},   {"hour", 3600000},  {"hours", 3600000},
        {"d", 86400000}, {"day", 86400000}, {"days", 86400000},
    };
    uint64_t n;
    if (s == NULL || scan_u64(&s, GH_RATE_MAX_REQUESTS, &n) != 0 || n == 0 || *s != '/')
        return -EINVAL;
    s++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(s, units[i].name) == 0) {
            out->requests = n;
            out->per_ms = units[i].ms;
            out->burst = n;
            return 0;
        }
    return -EINVAL;
}

int gh_offset_parse(const char *s, uint64_t *seconds)
{
    uint64_t total = 0, v;
    if (s == NULL || *s == '\0')
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        *seconds = 0;
        return 0;
    }
    while (*s != '\0') {
        uint64_t mult;
        if (scan_u64(&s, 1000000000ULL, &v) != 0)
            return -EINVAL;
        switch (*s++) {
        case 'd':
            mult = 86400;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'm':
            mult = 60;
            break;
        case 's':
            mult = 1;
            break;
        default:
            return -EINVAL;
        }
        total += v * mult; /* at most 1e9 * 86400 per part: no overflow in a few parts */
        if (total > 366ULL * 86400)
            return -EINVAL;
    }
    *seconds = total;
    return 0;
}

const char *gh_rate_check(const gh_rate_t *r)
{
    if (r->requests < 1 || r->requests > GH_RATE_MAX_REQUESTS)
        return "the number of requests must be from 1 to 1000000000";
    if (r->per_ms < 1 || r->per_ms > GH_RATE_MAX_PER_MS)
        return "the period must be from 1ms to 366 days";
    if (r->burst < 1 || r->burst > GH_RATE_MAX_BURST)
        return "the burst must be from 1 to 1000000000";
    /* The bucket's depth in time units (burst * per_ms) and the scaled
     * clock (ms * requests) must stay far from 2^63: see gh_bucket_take. */
    if (r->burst > ((1ULL << 62) - 1) / r->per_ms)
        return "the burst times the period is too large (burst x period in ms must be below 2^62)";
    return NULL;
}

const char *gh_quota_check(const gh_quota_t *q)
{
    static const uint64_t max_offset[] = {86400, 7 * 86400, 28 * 86400};
    if (q->limit > GH_QUOTA_MAX_LIMIT)
        return "the limit is too large";
    if ((unsigned)q->period > GH_PERIOD_MONTH)
        return "the period must be day, week or month";
    if (q->offset_s >= max_offset[q->period])
        return q->period == GH_PERIOD_DAY    ? "a day's offset must be less than 1d"
               : q->period == GH_PERIOD_WEEK ? "a week's offset must be less than 7d"
                                             : "a month's offset must be less than 28d";
    return NULL;
}

/* ---- token bucket: the arithmetic is in gcra.h ---- */

uint64_t gh_bucket_init(const gh_rate_t *r, uint64_t now_ms)
{
    return now_ms * r->requests;
}

int gh_bucket_take(uint64_t *tat, const gh_rate_t *r, uint64_t now_ms, gh_limit_result_t *res)
{
    return gcra_take(tat, r, now_ms, res);
}

uint64_t gh_bucket_window_s(const gh_rate_t *r)
{
    return div_ceil(r->burst * r->per_ms, r->requests * 1000);
}

void gh_bucket_refund(uint64_t *tat, const gh_rate_t *r)
{
    *tat -= r->per_ms;
}

uint64_t gh_bucket_rest_ms(uint64_t tat, const gh_rate_t *r, uint64_t now_ms)
{
    return now_ms + div_ceil(gcra_debt(tat, r, now_ms * r->requests), r->requests);
}

/* ---- calendar ---- */

/* The proleptic Gregorian calendar in days since 1970-01-01, by eras of
 * 400 years (146097 days), with March as the first month of the
 * computational year so that the leap day is the year's last. */
int64_t gh_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                   /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

void gh_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

#define DAY 86400
#define WEEK (7 * DAY)
/* 1970-01-01 was a Thursday: the first Sunday is day 3. */
#define FIRST_SUNDAY (3 * DAY)

int64_t gh_quota_window(const gh_quota_t *q, int64_t t_s, int64_t *start_s, int64_t *end_s)
{
    int64_t off = (int64_t)q->offset_s, n;
    switch (q->period) {
    case GH_PERIOD_DAY:
        n = floor_div(t_s - off, DAY);
        *start_s = n * DAY + off;
        *end_s = *start_s + DAY;
        return n;
    case GH_PERIOD_WEEK:
        n = floor_div(t_s - off - FIRST_SUNDAY, WEEK);
        *start_s = n * WEEK + FIRST_SUNDAY + off;
        *end_s = *start_s + WEEK;
        return n;
    default: {
        /* The month that holds t - offset: since the offset is under 28
         * days, each month's window starts inside that month. */
        int64_t y;
        unsigned m, d;
        gh_civil_from_days(floor_div(t_s - off, DAY), &y, &m, &d);
        *start_s = gh_days_from_civil(y, m, 1) * DAY + off;
        *end_s = gh_days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * DAY + off;
        return (y - 1970) * 12 + (int64_t)m - 1;
    }
    }
}

int gh_quota_take(int64_t *win, uint64_t *count, const gh_quota_t *q, int64_t wall_ms,
                  gh_limit_result_t *res)
{
    int64_t start, end;
    int64_t w = gh_quota_window(q, floor_div(wall_ms, 1000), &start, &end);
    if (w > *win) {
        *win = w;
        *count = 0;
    } else if (w < *win) {
        /* Another worker read a clock already past the boundary and
         * started the next window: this take counts there too, so that the
         * old window can never be counted again from zero. */
        gh_quota_window(q, end, &start, &end);
    }
    int64_t left_ms = end * 1000 - wall_ms;
    uint64_t reset = left_ms > 0 ? div_ceil((uint64_t)left_ms, 1000) : 1;
    res->limit = q->limit;
    res->reset_s = reset;
    res->window_s = (uint64_t)(end - start);
    if (*count >= q->limit) {
        res->allowed = 0;
        res->remaining = 0;
        res->retry_s = reset;
        return 0;
    }
    (*count)++;
    res->allowed = 1;
    res->remaining = q->limit - *count;
    res->retry_s = 0;
    return 1;
}

void gh_quota_refund(int64_t *win, uint64_t *count, const gh_quota_t *q, int64_t wall_ms)
{
    int64_t start, end;
    int64_t w = gh_quota_window(q, floor_div(wall_ms, 1000), &start, &end);
    /* The unit was counted in the stored window (or in w, then stored);
     * once a later window has started, the unit went with the old one.
     * Only a refund racing a boundary can tell the two apart wrongly, by
     * one unit. */
    if (*win >= w && *count > 0)
        (*count)--;
}

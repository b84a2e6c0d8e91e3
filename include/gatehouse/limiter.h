/*
 * Rate limits and quotas: the two algorithms, their config syntax, and
 * the process-wide table that holds their counters (docs/rate-limits.md
 * for users, docs/internals/limiter.md for the design).
 *
 * - A token bucket (a rate and a burst), kept in its GCRA form: one word,
 *   the time at which the bucket will be full again ("theoretical arrival
 *   time"), in units of 1/requests ms, so that every refill is exact in
 *   integers (10/s and 3/s alike, no rounding).
 * - A fixed-window quota over calendar periods (day, week, month) that
 *   start on UTC boundaries plus an offset, as AWS API Gateway usage plans
 *   count: a window number and a count.
 *
 * Nothing here reads a clock: every function takes the time (gh_limit_now_t,
 * a monotonic ms for buckets and the wall clock for calendar windows), so
 * the unit tests (tests/unit/core/test_limiter.c) step over period
 * boundaries exactly, without sleeping.
 *
 * The table is exact across threads: each key's counter lives in one
 * entry of one shard, changed under that shard's lock, so N workers
 * taking at once never pass a limit together. Its size is fixed when it is
 * made; when a shard is full a new key evicts an entry chosen by a CLOCK
 * hand, preferring entries at rest (see gh_limit_table_new).
 */
#ifndef GATEHOUSE_LIMITER_H
#define GATEHOUSE_LIMITER_H

#include <stddef.h>
#include <stdint.h>

/* ---- specs ---- */

typedef enum {
    GH_LIMIT_BUCKET = 0, /* token bucket: rate and burst */
    GH_LIMIT_WINDOW,     /* calendar quota: limit per day, week or month */
} gh_limit_algo_t;

typedef enum {
    GH_PERIOD_DAY = 0,
    GH_PERIOD_WEEK,
    GH_PERIOD_MONTH,
} gh_period_t;

/* Bounds that keep every product of the bucket's arithmetic in 64 bits. */
#define GH_RATE_MAX_REQUESTS 1000000000ULL     /* per period */
#define GH_RATE_MAX_PER_MS (86400000ULL * 366) /* a year */
#define GH_RATE_MAX_BURST 1000000000ULL
#define GH_QUOTA_MAX_LIMIT ((1ULL << 62) - 1)

typedef struct {
    uint64_t requests; /* units added per per_ms, >= 1 */
    uint64_t per_ms;   /* >= 1 */
    uint64_t burst;    /* the bucket's size, >= 1; burst * per_ms < 2^62 */
} gh_rate_t;

typedef struct {
    uint64_t limit;
    gh_period_t period;
    /* Seconds after the period's UTC start: day < 1d; week < 7d from
     * Sunday 00:00 (AWS's week offset 0 is Sunday); month < 28d from the
     * 1st 00:00, so that every month has its boundary. */
    uint64_t offset_s;
} gh_quota_t;

typedef struct {
    uint64_t id; /* which limit (gh_limit_id): part of every key */
    gh_limit_algo_t algo;
    gh_rate_t rate;   /* GH_LIMIT_BUCKET */
    gh_quota_t quota; /* GH_LIMIT_WINDOW */
} gh_limit_spec_t;

/* The time a decision is made at: a monotonic clock (buckets; the
 * worker's loop time) and the wall clock (calendar windows). */
typedef struct {
    uint64_t mono_ms;
    int64_t wall_ms; /* Unix time, ms */
} gh_limit_now_t;

typedef struct {
    int allowed;
    uint64_t limit;     /* the bucket's burst, the quota's limit */
    uint64_t remaining; /* units left after this decision */
    /* Seconds until more quota comes back (the RateLimit field's "t"):
     * a bucket's next unit, a window's end. Rounded up. */
    uint64_t reset_s;
    /* Refused: seconds until the same request could pass (Retry-After),
     * rounded up, at least 1. 0 when allowed. */
    uint64_t retry_s;
    /* A calendar window's length in seconds (28 to 31 days for a month):
     * RateLimit-Policy's "w", with limit as its "q". 0 for a bucket, whose
     * window is constant (gh_bucket_window_s). */
    uint64_t window_s;
} gh_limit_result_t;

/* A stable id for a limit from its description (what it limits, its
 * parameters): the same text gives the same id in every snapshot, so the
 * counters of a limit that a reload did not change go on. 64-bit FNV-1a of
 * len bytes; never 0. */
uint64_t gh_limit_id(const char *desc, size_t len);

/* ---- config syntax (strings from the YAML; 0 or -EINVAL) ---- */

/* "10/s", "100/min", "5000/h", "1/d" (also sec, second, m, minute, hour,
 * day and plurals): requests and period. Burst is left to the caller. */
int gh_rate_parse(const char *s, gh_rate_t *out);
/* "0", "90s", "30m", "2h", "1d", or several ("1d12h"): seconds. */
int gh_offset_parse(const char *s, uint64_t *seconds);
/* The checks on a parsed rate and quota: NULL when valid, else why not. */
const char *gh_rate_check(const gh_rate_t *r);
const char *gh_quota_check(const gh_quota_t *q);

/* ---- the algorithms, on one entry's state ---- */

/* A bucket's state word for a new key: full. */
uint64_t gh_bucket_init(const gh_rate_t *r, uint64_t now_ms);
/* Takes one unit from the bucket at *tat; fills res. Returns res->allowed. */
int gh_bucket_take(uint64_t *tat, const gh_rate_t *r, uint64_t now_ms, gh_limit_result_t *res);
/* The time the bucket takes to fill from empty, in seconds rounded up. */
uint64_t gh_bucket_window_s(const gh_rate_t *r);
/* Gives back the unit of an allowed take (a later limit refused the request). */
void gh_bucket_refund(uint64_t *tat, const gh_rate_t *r);
/* The monotonic ms at which the bucket is full again (at rest). */
uint64_t gh_bucket_rest_ms(uint64_t tat, const gh_rate_t *r, uint64_t now_ms);

/* The window that holds wall time t_s (Unix seconds): its number (days,
 * weeks or months since 1970, offset applied) and [start, end) in Unix
 * seconds. */
int64_t gh_quota_window(const gh_quota_t *q, int64_t t_s, int64_t *start_s, int64_t *end_s);
/* Takes one unit of the quota: *win and *count are the entry's state
 * (window number and count; a new key is {INT64_MIN, 0}). A take stamped
 * with an earlier window than the stored one (another worker's clock
 * crossed the boundary first) counts in the stored one. Returns
 * res->allowed. */
int gh_quota_take(int64_t *win, uint64_t *count, const gh_quota_t *q, int64_t wall_ms,
                  gh_limit_result_t *res);
/* Gives back an allowed take's unit, made at wall_ms. */
void gh_quota_refund(int64_t *win, uint64_t *count, const gh_quota_t *q, int64_t wall_ms);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t gh_days_from_civil(int64_t y, unsigned m, unsigned d);
void gh_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* ---- the table ---- */

typedef struct gh_limit_table_s gh_limit_table_t;

/* Keys longer than this are kept as their SHA-256 digest. */
#define GH_LIMIT_KEY_INLINE 80
#define GH_LIMIT_SHARDS 64

/*
 * A table of at most max_keys counters (rounded up to a multiple of
 * GH_LIMIT_SHARDS; at least one per shard), in GH_LIMIT_SHARDS shards
 * chosen by a keyed hash of (limit id, key), each with its own lock.
 * Its memory is allocated once, here (zeroed pages the kernel maps as
 * they are first used); a take never allocates.
 *
 * Eviction: when a new key finds its shard full, a CLOCK hand walks the
 * shard's entries from where it stopped last: the first entry at rest (a
 * bucket full again, a window that ended: dropping it changes no
 * decision) is taken; an entry still counting is passed once with its
 * "used" bit cleared and taken the next time the hand finds it unused.
 * Evicting a counting entry forgets its count (that key starts afresh, as
 * Kong's shared-dictionary LRU does): gh_limit_table_stats counts those
 * separately, so an operator sees when the table is too small for the
 * keys live within a limit's period.
 *
 * NULL when out of memory.
 */
gh_limit_table_t *gh_limit_table_new(size_t max_keys);
void gh_limit_table_free(gh_limit_table_t *t);

/* Any thread: one decision for key[0..len) under spec at now. */
int gh_limit_table_take(gh_limit_table_t *t, const gh_limit_spec_t *spec, const char *key,
                        size_t len, const gh_limit_now_t *now, gh_limit_result_t *res);
/* Any thread: gives back what an allowed take took (a later limit of the
 * same request refused it, so it counts in none). */
void gh_limit_table_refund(gh_limit_table_t *t, const gh_limit_spec_t *spec, const char *key,
                           size_t len, const gh_limit_now_t *now);

typedef struct {
    uint64_t keys;             /* entries in use */
    uint64_t capacity;         /* entries in all */
    uint64_t evicted_rest;     /* entries at rest reused for new keys */
    uint64_t evicted_counting; /* entries whose count was forgotten */
} gh_limit_table_stats_t;
void gh_limit_table_stats(gh_limit_table_t *t, gh_limit_table_stats_t *out);

#endif

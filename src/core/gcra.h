/*
 * The token bucket's arithmetic (gatehouse/limiter.h), as static inline
 * functions: limtable.c inlines them on every decision, limiter.c wraps
 * them as the module's functions.
 */
#ifndef GATEHOUSE_CORE_GCRA_H
#define GATEHOUSE_CORE_GCRA_H

#include <gatehouse/limiter.h>

/* Token bucket (GCRA).
 *
 * Time is counted in units of 1/requests ms: a unit of the limit comes
 * back every per_ms units, and the bucket holds burst * per_ms units of
 * "debt". The state is tat, the time (in those units) at which the bucket
 * is full again; tat - now is the debt. Every product is an integer, so
 * 3/s gives back exactly 3 units per 1000 ms, never 2.999.
 *
 * The scaled clock ms * requests wraps at 2^64, and tat with it; only
 * differences are read, as signed values. A debt is never above
 * burst * per_ms (< 2^62, gh_rate_check), so a difference outside
 * [0, burst * per_ms] is a bucket that has been full for a long time (its
 * tat fell behind, or wrapped around to look ahead after 2^63 units of
 * idleness): it is taken as full.
 */

static inline uint64_t div_ceil(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static inline uint64_t gcra_debt(uint64_t tat, const gh_rate_t *r, uint64_t now_u)
{
    int64_t d = (int64_t)(tat - now_u);
    uint64_t depth = r->burst * r->per_ms;
    return d < 0 || (uint64_t)d > depth ? 0 : (uint64_t)d;
}

static inline int gcra_take(uint64_t *tat, const gh_rate_t *r, uint64_t now_ms,
                            gh_limit_result_t *res)
{
    uint64_t now_u = now_ms * r->requests, depth = r->burst * r->per_ms;
    uint64_t nd = gcra_debt(*tat, r, now_u) + r->per_ms;
    /* Units per second on the scaled clock, for rounding up to seconds. */
    uint64_t u_per_s = r->requests * 1000;
    res->limit = r->burst;
    res->window_s = 0; /* constant for a bucket: gh_bucket_window_s */
    if (nd > depth) {
        uint64_t wait = div_ceil(nd - depth, u_per_s);
        res->allowed = 0;
        res->remaining = 0;
        res->retry_s = wait > 0 ? wait : 1;
        res->reset_s = res->retry_s;
        return 0;
    }
    *tat = now_u + nd;
    res->allowed = 1;
    res->remaining = (depth - nd) / r->per_ms;
    res->retry_s = 0;
    /* Until the next whole unit comes back. */
    uint64_t part = (depth - nd) % r->per_ms;
    res->reset_s = div_ceil(r->per_ms - part, u_per_s);
    return 1;
}

#endif

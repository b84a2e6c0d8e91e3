/* libFuzzer target: the limiter's config syntax and arithmetic
 * (src/core/limiter.c). The input is split at the first NUL: the text
 * before goes to gh_rate_parse and gh_offset_parse; the bytes after drive
 * a bucket and a calendar quota through a sequence of times. Checks: a
 * parsed rate or offset is within its documented bounds; a window holds
 * its time and the next window starts where it ends; a bucket never
 * allows more than burst + elapsed * rate, a quota never more than its
 * limit per window, and every refusal asks for a retry of at least 1 s. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/limiter.h>

static uint64_t take_u64(const uint8_t **p, size_t *n)
{
    uint64_t v = 0;
    for (int i = 0; i < 8 && *n > 0; i++, (*p)++, (*n)--)
        v |= (uint64_t) * *p << (8 * i);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul != NULL ? (size_t)(nul - data) : size;
    char *text = malloc(tlen + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, tlen);
    text[tlen] = '\0';
    gh_rate_t r;
    if (gh_rate_parse(text, &r) == 0 &&
        (r.requests < 1 || r.requests > GH_RATE_MAX_REQUESTS || r.per_ms < 1000 ||
         r.burst != r.requests || gh_rate_check(&r) != NULL))
        abort();
    uint64_t off;
    if (gh_offset_parse(text, &off) == 0 && off > 366ULL * 86400)
        abort();
    free(text);
    if (nul == NULL)
        return 0;
    const uint8_t *p = nul + 1;
    size_t n = size - tlen - 1;

    /* A bucket: small parameters so that the bound is reached. */
    r.requests = 1 + take_u64(&p, &n) % 50;
    r.per_ms = 1 + take_u64(&p, &n) % 5000;
    r.burst = 1 + take_u64(&p, &n) % 20;
    gh_quota_t q = {take_u64(&p, &n) % 10, (gh_period_t)(take_u64(&p, &n) % 3), 0};
    static const uint64_t max_off[] = {86400, 7 * 86400, 28 * 86400};
    q.offset_s = take_u64(&p, &n) % max_off[q.period];
    int64_t wall = (int64_t)(take_u64(&p, &n) % (400ULL * 365 * 86400 * 1000)) -
                   (int64_t)(100ULL * 365 * 86400 * 1000);
    uint64_t mono = take_u64(&p, &n) % (1ULL << 40), t0 = mono;
    uint64_t tat = gh_bucket_init(&r, mono), allowed = 0;
    int64_t win = INT64_MIN, cur = INT64_MIN;
    uint64_t count = 0, in_window = 0;
    while (n > 0) {
        uint8_t step = *p++;
        n--;
        mono += step & 0x3f;
        wall += (int64_t)(step >> 6) * 3600 * 1000 * 7;
        gh_limit_result_t res;
        if (gh_bucket_take(&tat, &r, mono, &res))
            allowed++;
        else if (res.retry_s < 1)
            abort();
        /* Units ever allowed: the burst plus what came back since t0. */
        if (allowed > r.burst + (mono - t0) * r.requests / r.per_ms)
            abort();
        int64_t s, e;
        int64_t w = gh_quota_window(&q, wall >= 0 ? wall / 1000 : -((-wall + 999) / 1000), &s, &e);
        int64_t s2, e2;
        if (gh_quota_window(&q, e, &s2, &e2) != w + 1 || s2 != e || e <= s)
            abort();
        if (w != cur) {
            cur = w;
            in_window = 0;
        }
        if (gh_quota_take(&win, &count, &q, wall, &res)) {
            if (++in_window > q.limit)
                abort();
        } else if (res.retry_s < 1) {
            abort();
        }
    }
    return 0;
}

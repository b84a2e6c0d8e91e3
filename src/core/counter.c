/* Process-wide counters: see include/gatehouse/counter.h. */
#include <gatehouse/counter.h>

#include <stdlib.h>

#define LINE 64

/* One shard per cache line: workers adding at once touch different lines. */
typedef struct {
    int64_t v;
    char pad[LINE - sizeof(int64_t)];
} shard_t;

struct gh_counter_s {
    unsigned n;
    shard_t *shards; /* aligned to LINE, owned */
};

gh_counter_t *gh_counter_new(unsigned shards)
{
    gh_counter_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return NULL;
    c->n = shards > 0 ? shards : 1;
    c->shards = aligned_alloc(LINE, c->n * sizeof(shard_t));
    if (c->shards == NULL) {
        free(c);
        return NULL;
    }
    for (unsigned i = 0; i < c->n; i++)
        c->shards[i].v = 0;
    return c;
}

void gh_counter_free(gh_counter_t *c)
{
    if (c == NULL)
        return;
    free(c->shards);
    free(c);
}

void gh_counter_add(gh_counter_t *c, unsigned shard, int64_t n)
{
    /* Atomic even on a worker's own shard: more workers than shards share. */
    __atomic_add_fetch(&c->shards[shard % c->n].v, n, __ATOMIC_RELAXED);
}

int64_t gh_counter_sum(const gh_counter_t *c)
{
    int64_t sum = 0;
    for (unsigned i = 0; i < c->n; i++)
        sum += __atomic_load_n(&c->shards[i].v, __ATOMIC_RELAXED);
    return sum;
}

#define WIN_SHIFT 40
#define WIN_MASK ((UINT64_C(1) << 24) - 1)

/* A take stamped at most this many windows behind the stored one comes
 * from a worker whose clock lags (its loop time is a turn old): it is
 * refused, so that it cannot start the count again. Farther behind, the
 * stored window is an old one whose number wrapped at 24 bits (a counter
 * idle for 2^23 windows or more: 97 days of one-second windows), and the
 * count starts again; taking half the 24-bit range as "behind" refused
 * every take of such a counter for the next 2^23 windows. */
#define WIN_SKEW 64

/* Whether window a (24 bits) is shortly before b, modulo 2^24. */
static int window_before(uint64_t a, uint64_t b)
{
    uint64_t d = (b - a) & WIN_MASK;
    return d != 0 && d <= WIN_SKEW;
}

int gh_window_take(gh_window_t *w, uint64_t window, uint64_t n, uint64_t limit, uint64_t *count)
{
    window &= WIN_MASK;
    if (limit > GH_WINDOW_COUNT_MAX)
        limit = GH_WINDOW_COUNT_MAX;
    uint64_t old = __atomic_load_n(&w->word, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t ow = old >> WIN_SHIFT, oc = old & GH_WINDOW_COUNT_MAX, nc;
        if (ow == window)
            nc = oc;
        else if (oc > 0 && window_before(window, ow)) {
            if (count != NULL)
                *count = oc;
            return 0; /* a take from a clock behind the counter's (an empty one has none) */
        } else
            nc = 0; /* a new window: the count starts again */
        if (n > limit || nc > limit - n) {
            if (count != NULL)
                *count = nc;
            return 0;
        }
        uint64_t neu = window << WIN_SHIFT | (nc + n);
        if (__atomic_compare_exchange_n(&w->word, &old, neu, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
            if (count != NULL)
                *count = nc + n;
            return 1;
        }
    }
}

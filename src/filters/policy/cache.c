/*
 * Each worker's cache of verified tokens' claims, for policies.
 *
 * Reading a claim means decoding the token's payload (base64url) and
 * finding the claim in it: about 1.2k and 1.9k instructions for a 650-byte
 * RS256 token, which alone would pass the policy's budget. A token comes
 * back many times (that is why the JWT filter caches verifications), and
 * its claims are a function of its bytes; so an entry keeps, per token, the
 * decoded payload and each claim path's value as the section's policies
 * found it (lazily, as the evaluator asks).
 *
 * An entry is found by a hash of the token's last 16 bytes (its signature,
 * which the signer chose, not the client) and then compared whole, so a
 * collision costs a refill, never a wrong claim. Direct-mapped, bounded:
 * GH_POL_CACHE_SLOTS entries per worker, tokens up to GH_POL_CACHE_MAX_TOKEN
 * bytes (longer ones are read per request). The claim values are tied to
 * the section (the config) that numbered the paths: a reload renumbers,
 * and an entry made under another section keeps its payload and forgets
 * its values.
 */
#include <stdlib.h>
#include <string.h>

#include "filters/policy/internal.h"

static gh_policy_centry_t *entry_new(size_t token_len)
{
    gh_policy_centry_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->token = malloc(token_len ? token_len : 1);
    if (e->token == NULL) {
        free(e);
        return NULL;
    }
    return e;
}

static void entry_free(gh_policy_centry_t *e)
{
    if (e == NULL)
        return;
    free(e->token);
    free(e->payload);
    free(e->vals);
    free(e->state);
    free(e);
}

void *gh_policy_cache_new(void)
{
    return calloc(1, sizeof(gh_policy_wcache_t));
}

void gh_policy_cache_free(void *p)
{
    gh_policy_wcache_t *w = p;
    if (w == NULL)
        return;
    for (size_t i = 0; i < GH_POL_CACHE_SLOTS; i++)
        entry_free(w->slots[i]);
    free(w);
}

static size_t slot_of(const char *t, size_t n)
{
    uint64_t a = 0, b = 0;
    if (n >= 16) {
        memcpy(&a, t + n - 8, 8);
        memcpy(&b, t + n - 16, 8);
    } else {
        memcpy(&a, t, n < 8 ? n : 8);
    }
    uint64_t h = (a ^ (b << 29 | b >> 35) ^ (uint64_t)n) * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 56) % GH_POL_CACHE_SLOTS;
}

/* The section's claim slots of e, made (zeroed) when e has none for it. */
static int fit_section(gh_policy_centry_t *e, const gh_policy_section_t *sec)
{
    if (e->sec_id == sec->id && e->vals != NULL)
        return 0;
    size_t n = sec->nclaims ? sec->nclaims : 1;
    if (e->nvals < n) {
        gh_jv_t *v = realloc(e->vals, n * sizeof(*v));
        if (v != NULL)
            e->vals = v;
        uint8_t *st = realloc(e->state, n);
        if (st != NULL)
            e->state = st;
        if (v == NULL || st == NULL) {
            e->sec_id = 0;
            return -1;
        }
        e->nvals = n;
    }
    memset(e->state, 0, n);
    e->sec_id = sec->id;
    return 0;
}

gh_policy_centry_t *gh_policy_cache_get(gh_policy_wcache_t *w, const gh_policy_section_t *sec,
                                        const char *token, size_t n)
{
    if (n == 0 || n > GH_POL_CACHE_MAX_TOKEN)
        return NULL;
    size_t i = slot_of(token, n);
    gh_policy_centry_t *e = w->slots[i];
    if (e != NULL && e->token_len == n && memcmp(e->token, token, n) == 0)
        return fit_section(e, sec) == 0 ? e : NULL;
    /* Another token (or none): this slot is the new token's. */
    if (e == NULL || e->token_cap < n) {
        entry_free(e);
        w->slots[i] = e = entry_new(n);
        if (e == NULL)
            return NULL;
        e->token_cap = n;
    }
    memcpy(e->token, token, n);
    e->token_len = n;
    e->payload_state = 0;
    e->sec_id = 0;
    if (fit_section(e, sec) < 0) {
        e->token_len = 0;
        return NULL;
    }
    return e;
}

const char *gh_policy_cache_payload(gh_policy_centry_t *e, const char *text, size_t len)
{
    if (e->payload_cap < len + 1) {
        char *p = realloc(e->payload, len + 1);
        if (p == NULL)
            return NULL;
        e->payload = p;
        e->payload_cap = len + 1;
    }
    memcpy(e->payload, text, len);
    e->payload[len] = '\0';
    e->payload_len = len;
    e->payload_state = 1;
    return e->payload;
}

/*
 * A loaded key set: the manifest, the private keys of every key not yet
 * retired, and what they mean at any time, computed once.
 *
 * The keys' times cut the time line into periods (at most four cuts a
 * key); within one nothing changes: the same key signs, the same keys are
 * published. So the set holds, per period, the signer and the published
 * set (its JWKS text and the gh_jwks_t that verifies), and a worker's
 * question "at now?" is a binary search over at most 65 periods, with no
 * lock and no allocation. Periods with the same published keys share one
 * JWKS. A rotation's switch (the new key starts signing, the old one
 * leaves the JWKS) thus happens at its time without a reload.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "issuer/keys_internal.h"

#define MAX_PERIODS (4 * GH_ISSUER_KEYS_MAX + 1)

typedef struct {
    uint32_t mask; /* bit i: key i of the manifest */
    char *json;
    size_t len;
    gh_jwks_t *jwks; /* NULL when mask is 0 */
} pub_t;

typedef struct {
    int64_t start; /* the period is [start, the next one's start) */
    int signer;    /* index in the manifest, -1: none */
    size_t pub;
} period_t;

struct gh_issuer_keyset_s {
    atomic_long refs;
    gh_issuer_manifest_t m;
    gh_jwt_signing_key_t *keys[GH_ISSUER_KEYS_MAX]; /* NULL: retired when loaded */
    json_t *jwks_member[GH_ISSUER_KEYS_MAX];        /* public JWK with kid and alg */
    period_t periods[MAX_PERIODS];
    size_t nperiods;
    pub_t pubs[MAX_PERIODS];
    size_t npubs;
};

/* JWKS generations unique in the process (0 means "none" to the JWT filter). */
static atomic_ullong next_generation = 1;

gh_issuer_keyset_t *gh_issuer_keyset_ref(gh_issuer_keyset_t *set)
{
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    return set;
}

static void keyset_free(gh_issuer_keyset_t *s)
{
    for (size_t i = 0; i < GH_ISSUER_KEYS_MAX; i++) {
        gh_jwt_signing_key_free(s->keys[i]);
        json_decref(s->jwks_member[i]);
    }
    for (size_t i = 0; i < s->npubs; i++) {
        free(s->pubs[i].json);
        gh_jwks_unref(s->pubs[i].jwks);
    }
    free(s);
}

void gh_issuer_keyset_unref(gh_issuer_keyset_t *set)
{
    if (set != NULL && atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) == 1)
        keyset_free(set);
}

const gh_issuer_manifest_t *gh_issuer_keyset_manifest(const gh_issuer_keyset_t *set)
{
    return &set->m;
}

/* ---- building ---- */

static int cmp_time(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int published_at(const gh_issuer_key_info_t *k, int64_t t)
{
    return k->publish_at <= t && (k->retire_at == 0 || t < k->retire_at);
}

static int signing_at(const gh_issuer_key_info_t *k, int64_t t)
{
    return published_at(k, t) && k->sign_from <= t && (k->sign_until == 0 || t < k->sign_until);
}

/* The published set of mask: its JWKS text and parsed keys; the generation
 * of prev's set with the same keys, else a new one. */
static int pub_make(gh_issuer_keyset_t *s, uint32_t mask, const gh_issuer_keyset_t *prev, char *err,
                    size_t cap)
{
    pub_t *p = &s->pubs[s->npubs];
    json_t *arr = json_array();
    json_t *doc = json_pack("{s:o}", "keys", arr);
    if (doc == NULL)
        goto oom;
    for (size_t i = 0; i < s->m.n; i++)
        if ((mask & (1u << i)) && json_array_append(arr, s->jwks_member[i]) != 0)
            goto oom;
    p->json = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    doc = NULL;
    if (p->json == NULL)
        goto oom;
    p->len = strlen(p->json);
    p->mask = mask;
    s->npubs++; /* owned from here: freed with the set */
    if (mask == 0)
        return 0;
    char why[200];
    p->jwks = gh_jwks_parse(p->json, p->len, NULL, why, sizeof(why));
    if (p->jwks == NULL || gh_jwks_warning_count(p->jwks) != 0) {
        /* The keys were made and checked here: a key our own verifier
         * refuses is a bug, and must not be published. */
        gh_issuer_seterr(err, cap, "the published key set does not load: %s",
                         p->jwks ? gh_jwks_warning(p->jwks, 0) : why);
        return -EINVAL;
    }
    uint64_t gen = 0;
    for (size_t i = 0; prev != NULL && i < prev->npubs && gen == 0; i++)
        if (prev->pubs[i].jwks != NULL && gh_jwks_same_keys(prev->pubs[i].jwks, p->jwks))
            gen = gh_jwks_generation(prev->pubs[i].jwks);
    if (gen == 0)
        gen = atomic_fetch_add(&next_generation, 1);
    gh_jwks_set_generation(p->jwks, gen);
    return 0;
oom:
    json_decref(doc);
    gh_issuer_seterr(err, cap, "out of memory");
    return -ENOMEM;
}

static int periods_make(gh_issuer_keyset_t *s, const gh_issuer_keyset_t *prev, char *err,
                        size_t cap)
{
    int64_t cuts[MAX_PERIODS] = {0};
    size_t n = 0;
    for (size_t i = 0; i < s->m.n; i++) {
        const gh_issuer_key_info_t *k = &s->m.keys[i];
        if (s->keys[i] == NULL)
            continue;
        cuts[n++] = k->publish_at;
        cuts[n++] = k->sign_from;
        if (k->sign_until != 0)
            cuts[n++] = k->sign_until;
        if (k->retire_at != 0)
            cuts[n++] = k->retire_at;
    }
    qsort(cuts, n, sizeof(cuts[0]), cmp_time);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || cuts[u - 1] != cuts[i])
            cuts[u++] = cuts[i];
    for (size_t p = 0; p <= u; p++) {
        period_t *per = &s->periods[p];
        per->start = p == 0 ? INT64_MIN : cuts[p - 1];
        /* Any time of the period tells its state: its start, or just
         * before the first cut. */
        int64_t t = p == 0 ? (u > 0 ? cuts[0] - 1 : 0) : cuts[p - 1];
        uint32_t mask = 0;
        per->signer = -1;
        for (size_t i = 0; i < s->m.n; i++) {
            if (s->keys[i] == NULL)
                continue;
            if (published_at(&s->m.keys[i], t))
                mask |= 1u << i;
            if (signing_at(&s->m.keys[i], t))
                per->signer = (int)i;
        }
        size_t j = 0;
        while (j < s->npubs && s->pubs[j].mask != mask)
            j++;
        if (j == s->npubs) {
            int rc = pub_make(s, mask, prev, err, cap);
            if (rc != 0)
                return rc;
        }
        per->pub = j;
        s->nperiods = p + 1;
    }
    return 0;
}

/* One attempt at loading: *raced when a key file was missing and the
 * manifest changed meanwhile (a prune ran between the two reads). */
static gh_issuer_keyset_t *load_once(int dfd, const char *dir, int64_t now,
                                     const gh_issuer_keyset_t *prev, int *raced, int *rc, char *err,
                                     size_t cap)
{
    gh_issuer_keyset_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        *rc = -ENOMEM;
        gh_issuer_seterr(err, cap, "out of memory");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    if ((*rc = gh_issuer_manifest_read(dfd, dir, &s->m, err, cap)) != 0)
        goto fail;
    for (size_t i = 0; i < s->m.n; i++) {
        const gh_issuer_key_info_t *k = &s->m.keys[i];
        /* A retired key is not read: a prune may delete it any time. */
        if (gh_issuer_key_state(k, now) == GH_ISSUER_KEY_RETIRED)
            continue;
        s->keys[i] = gh_issuer_key_read(dfd, dir, k->kid, k->alg, rc, err, cap);
        if (s->keys[i] == NULL) {
            if (*rc == -ENOENT) {
                gh_issuer_manifest_t again;
                char e2[8];
                *raced = gh_issuer_manifest_read(dfd, dir, &again, e2, sizeof(e2)) == 0 &&
                         memcmp(&again, &s->m, sizeof(again)) != 0;
            }
            goto fail;
        }
        char why[200];
        s->jwks_member[i] =
            gh_issuer_public_jwk(s->keys[i], k->kid, k->alg, NULL, why, sizeof(why));
        if (s->jwks_member[i] == NULL) {
            *rc = -ENOMEM;
            gh_issuer_seterr(err, cap, "key %s: %s", k->kid, why);
            goto fail;
        }
    }
    if ((*rc = periods_make(s, prev, err, cap)) != 0)
        goto fail;
    return s;
fail:
    keyset_free(s);
    return NULL;
}

gh_issuer_keyset_t *gh_issuer_keyset_load(const char *dir, int64_t now,
                                          const gh_issuer_keyset_t *prev, int *rc, char *err,
                                          size_t cap)
{
    int dummy;
    if (rc == NULL)
        rc = &dummy;
    int dfd = gh_issuer_dir_open(dir, err, cap);
    if (dfd < 0) {
        *rc = dfd;
        return NULL;
    }
    gh_issuer_keyset_t *s = NULL;
    for (int attempt = 0; attempt < 3 && s == NULL; attempt++) {
        int raced = 0;
        s = load_once(dfd, dir, now, prev, &raced, rc, err, cap);
        if (!raced)
            break;
    }
    close(dfd);
    return s;
}

/* ---- questions ---- */

static const period_t *period_at(const gh_issuer_keyset_t *s, int64_t now)
{
    size_t lo = 0, hi = s->nperiods; /* periods[0].start is INT64_MIN */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->periods[mid].start <= now)
            lo = mid;
        else
            hi = mid;
    }
    return &s->periods[lo];
}

int gh_issuer_keyset_signer(const gh_issuer_keyset_t *set, int64_t now, gh_issuer_signer_t *out)
{
    const period_t *p = period_at(set, now);
    if (p->signer < 0)
        return -ENOKEY;
    const gh_issuer_key_info_t *k = &set->m.keys[p->signer];
    out->key = set->keys[p->signer];
    out->kid = k->kid;
    out->alg = k->alg;
    out->max_exp = k->retire_at != 0 ? k->retire_at - set->m.leeway : 0;
    return 0;
}

const char *gh_issuer_keyset_jwks_json(const gh_issuer_keyset_t *set, int64_t now, size_t *len)
{
    const pub_t *p = &set->pubs[period_at(set, now)->pub];
    if (len != NULL)
        *len = p->len;
    return p->json;
}

gh_jwks_t *gh_issuer_keyset_jwks(const gh_issuer_keyset_t *set, int64_t now)
{
    return set->pubs[period_at(set, now)->pub].jwks;
}

int64_t gh_issuer_keyset_next_change(const gh_issuer_keyset_t *set, int64_t now)
{
    for (size_t i = 0; i < set->nperiods; i++)
        if (set->periods[i].start > now)
            return set->periods[i].start;
    return 0;
}

char *gh_issuer_signer_sign(const gh_issuer_signer_t *s, const char *typ, const char *payload,
                            size_t len, char *err, size_t cap)
{
    char hdr[160];
    if (typ == NULL)
        typ = "JWT";
    for (const char *p = typ; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') {
            gh_issuer_seterr(err, cap, "typ must need no JSON escaping");
            return NULL;
        }
    int n = snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"%s\"}",
                     gh_jwt_alg_name(s->alg), s->kid, typ);
    if (n < 0 || (size_t)n >= sizeof(hdr)) {
        gh_issuer_seterr(err, cap, "typ is too long");
        return NULL;
    }
    return gh_jwt_sign(hdr, payload, len, s->key, s->alg, err, cap);
}

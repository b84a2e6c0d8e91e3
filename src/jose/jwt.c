/*
 * JWT tokens: strict parsing of the compact serialization (RFC 7515 §7.1,
 * RFC 7519 §7.2), the registered-claim checks of RFC 7519 §4.1 with RFC 8725's
 * hardening, required claims, and the helpers that turn claims into headers.
 * Signatures are checked in verify.c, made in sign.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jose/b64url.h"
#include "jose/jose.h"
#include "jose/json.h"

/* ---- refusal reasons ---- */

/* One row per reason: its text (error_description, log, metric label) and
 * the status of a refusal for it. */
static const struct {
    const char *text;
    int status;
} reason_table[GH_JWT_REASON_COUNT] = {
    [GH_JWT_OK] = {"ok", 200},
    [GH_JWT_MISSING_TOKEN] = {"missing token", 401},
    [GH_JWT_MULTIPLE_TOKENS] = {"multiple tokens", 401},
    [GH_JWT_UNKNOWN_ISSUER] = {"unknown issuer", 401},
    [GH_JWT_KEYS_UNAVAILABLE] = {"keys unavailable", 503},
    [GH_JWT_ALG_NOT_ALLOWED] = {"algorithm not allowed", 401},
    [GH_JWT_TOKEN_TOO_LARGE] = {"token too large", 401},
    [GH_JWT_MALFORMED_TOKEN] = {"malformed token", 401},
    [GH_JWT_MALFORMED_HEADER] = {"malformed header", 401},
    [GH_JWT_MALFORMED_KID] = {"malformed kid", 401},
    [GH_JWT_MALFORMED_PAYLOAD] = {"malformed payload", 401},
    [GH_JWT_MALFORMED_SIGNATURE] = {"malformed signature", 401},
    [GH_JWT_ALG_NONE] = {"alg none refused", 401},
    [GH_JWT_UNSUPPORTED_ALG] = {"unsupported algorithm", 401},
    [GH_JWT_UNSUPPORTED_CRIT] = {"unsupported crit", 401},
    [GH_JWT_BAD_SIGNATURE] = {"bad signature", 401},
    [GH_JWT_NO_KEY_FOR_ALG] = {"no key for algorithm", 401},
    [GH_JWT_UNKNOWN_KEY] = {"unknown key", 401},
    [GH_JWT_WRONG_ISSUER] = {"wrong issuer", 401},
    [GH_JWT_WRONG_AUDIENCE] = {"wrong audience", 401},
    [GH_JWT_MISSING_EXP] = {"missing exp", 401},
    [GH_JWT_EXPIRED] = {"expired", 401},
    [GH_JWT_NOT_YET_VALID] = {"not yet valid", 401},
    [GH_JWT_ISSUED_IN_FUTURE] = {"issued in the future", 401},
    [GH_JWT_MALFORMED_CLAIM] = {"malformed claim", 401},
    [GH_JWT_MISSING_IAT] = {"missing iat", 401},
    [GH_JWT_TOO_OLD] = {"token too old", 401},
    [GH_JWT_WRONG_TYP] = {"wrong typ", 401},
    [GH_JWT_INSUFFICIENT_CLAIMS] = {"insufficient claims", 403},
    [GH_JWT_REVOKED] = {"revoked", 401},
    [GH_JWT_OUT_OF_MEMORY] = {"out of memory", 503},
};

const char *gh_jwt_reason_text(gh_jwt_reason_t r)
{
    return (unsigned)r < GH_JWT_REASON_COUNT ? reason_table[r].text : "invalid token";
}

int gh_jwt_reason_status(gh_jwt_reason_t r)
{
    return (unsigned)r < GH_JWT_REASON_COUNT ? reason_table[r].status : 401;
}

/* ---- parsing ---- */

static int fail(gh_jwt_reason_t *reason, gh_jwt_reason_t why)
{
    *reason = why;
    return -EINVAL;
}

static const gh_jose_json_rec_t *member(const gh_jose_json_rec_t *r, long n, const char *name)
{
    return n > 0 ? gh_jose_json_get(r, (size_t)n, name) : NULL;
}

/* The JOSE header, read by the strict reader into recs (room for
 * GH_JOSE_JSON_RECS(n)). Members gatehouse does not know are ignored (RFC
 * 7515 section 4: unknown parameters MUST be ignored) unless listed in crit. */
static int parse_header(char *p, size_t n, gh_jose_json_rec_t *recs, gh_jwt_t *t,
                        gh_jwt_reason_t *reason)
{
    long nr = gh_jose_json_index(p, n, recs);
    if (nr == -ENOMEM) {
        *reason = GH_JWT_OUT_OF_MEMORY;
        return -ENOMEM;
    }
    if (nr < 0)
        return fail(reason, GH_JWT_MALFORMED_HEADER);
    const gh_jose_json_rec_t *alg = member(recs, nr, "alg");
    if (alg == NULL || alg->type != GH_JOSE_JSON_STRING)
        return fail(reason, GH_JWT_MALFORMED_HEADER);
    /* RFC 8725 section 3.1 and the many CVEs before it: "none" is never
     * accepted, whatever its spelling (some libraries compared
     * case-insensitively). */
    if (alg->val_len == 4 && strncasecmp(alg->val, "none", 4) == 0)
        return fail(reason, GH_JWT_ALG_NONE);
    t->alg = gh_jwt_alg_from_name(alg->val, alg->val_len);
    if (t->alg == GH_JWT_ALG_UNKNOWN)
        return fail(reason, GH_JWT_UNSUPPORTED_ALG);
    /* RFC 7515 section 4.1.11: a recipient that does not understand a listed
     * extension must reject the JWS. gatehouse understands none. */
    if (member(recs, nr, "crit") != NULL)
        return fail(reason, GH_JWT_UNSUPPORTED_CRIT);
    /* RFC 7797: "b64": false signs the payload as raw bytes, not its
     * base64url. Without crit it is an unknown member, yet reading such a
     * JWS as a JWT would take a payload someone had signed as opaque
     * content (itself base64url text of claims they chose) for claims.
     * RFC 7519 tokens never carry it otherwise than true. */
    const gh_jose_json_rec_t *b64 = member(recs, nr, "b64");
    if (b64 != NULL && b64->type != GH_JOSE_JSON_TRUE)
        return fail(reason, GH_JWT_MALFORMED_HEADER);
    /* Strings come decoded and without NUL (the reader refuses \u0000). */
    const gh_jose_json_rec_t *kid = member(recs, nr, "kid");
    if (kid != NULL) {
        if (kid->type != GH_JOSE_JSON_STRING || kid->val_len > GH_JWT_MAX_KID)
            return fail(reason, GH_JWT_MALFORMED_KID);
        memcpy(t->kid, kid->val, kid->val_len + 1);
        t->has_kid = 1;
    }
    const gh_jose_json_rec_t *typ = member(recs, nr, "typ");
    if (typ != NULL) {
        if (typ->type != GH_JOSE_JSON_STRING || typ->val_len > GH_JWT_MAX_TYP)
            return fail(reason, GH_JWT_MALFORMED_HEADER);
        memcpy(t->typ, typ->val, typ->val_len + 1);
    }
    /* "jku", "x5u", "jwk", "x5c": deliberately not read. A key named by the
     * token is a key chosen by the attacker (RFC 8725 section 3.10). */
    return 0;
}

static const gh_jose_hdr_t *memo_find(const gh_jose_memo_t *m, const char *seg, size_t n)
{
    for (unsigned i = 0; m != NULL && i < GH_JOSE_MEMO_N; i++)
        if (m->e[i].seg_len == n && memcmp(m->e[i].seg, seg, n) == 0)
            return &m->e[i];
    return NULL;
}

static void memo_put(gh_jose_memo_t *m, const char *seg, size_t n, const gh_jwt_t *t)
{
    if (m == NULL || n > GH_JOSE_MEMO_SEG)
        return;
    gh_jose_hdr_t *e = &m->e[m->next++ % GH_JOSE_MEMO_N];
    e->seg_len = n;
    memcpy(e->seg, seg, n);
    e->alg = t->alg;
    e->has_kid = t->has_kid;
    memcpy(e->kid, t->kid, sizeof(e->kid));
    memcpy(e->typ, t->typ, sizeof(e->typ));
}

int gh_jwt_parse(const char *tok, size_t len, gh_jwt_t *out, gh_jwt_reason_t *reason)
{
    return gh_jwt_verifier_parse(NULL, tok, len, out, reason);
}

int gh_jwt_verifier_parse(gh_jwt_verifier_t *v, const char *tok, size_t len, gh_jwt_t *out,
                          gh_jwt_reason_t *reason)
{
    gh_jose_memo_t *memo = v != NULL ? gh_jose_memo(v) : NULL;
    gh_jwt_reason_t dummy;
    if (reason == NULL)
        reason = &dummy;
    memset(out, 0, sizeof(*out));
    if (len > GH_JWT_MAX_TOKEN)
        return fail(reason, GH_JWT_TOKEN_TOO_LARGE);
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    /* Exactly three segments: a fourth dot would be JWE (five parts) or junk. */
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL)
        return fail(reason, GH_JWT_MALFORMED_TOKEN);
    size_t hl = (size_t)(d1 - tok), pl = (size_t)(d2 - d1 - 1), sl = len - (size_t)(d2 + 1 - tok);
    /* An empty signature is the "stripped signature" attack: refuse it here,
     * whatever alg claims. */
    if (hl == 0 || pl == 0 || sl == 0)
        return fail(reason, GH_JWT_MALFORMED_TOKEN);

    /* One buffer: the claims index (also used for the header's), then the
     * token copy, then the decoded header, payload (each NUL-terminated),
     * signature. */
    size_t hmax = GH_B64URL_DEC_MAX(hl), pmax = GH_B64URL_DEC_MAX(pl);
    size_t nrecs = GH_JOSE_JSON_RECS(hmax > pmax ? hmax : pmax);
    size_t recs_size = nrecs * sizeof(gh_jose_json_rec_t);
    size_t cap = recs_size + len + 1 + hmax + 1 + pmax + 1 + GH_B64URL_DEC_MAX(sl);
    char *buf = malloc(cap);
    if (buf == NULL) {
        *reason = GH_JWT_OUT_OF_MEMORY;
        return -ENOMEM;
    }
    gh_jose_json_rec_t *recs = (gh_jose_json_rec_t *)(void *)buf;
    char *copy = buf + recs_size;
    memcpy(copy, tok, len);
    copy[len] = '\0';
    char *hdr = copy + len + 1;
    const gh_jose_hdr_t *seen = memo_find(memo, tok, hl);
    long hn = 0;
    if (seen == NULL && (hn = gh_b64url_decode(tok, hl, (unsigned char *)hdr)) <= 0) {
        free(buf);
        return fail(reason, GH_JWT_MALFORMED_HEADER);
    }
    hdr[hn] = '\0';
    char *pay = hdr + hn + 1;
    long pn = gh_b64url_decode(d1 + 1, pl, (unsigned char *)pay);
    if (pn <= 0) {
        free(buf);
        return fail(reason, GH_JWT_MALFORMED_PAYLOAD);
    }
    pay[pn] = '\0';
    unsigned char *sig = (unsigned char *)pay + pn + 1;
    long sn = gh_b64url_decode(d2 + 1, sl, sig);
    if (sn <= 0) {
        free(buf);
        return fail(reason, GH_JWT_MALFORMED_SIGNATURE);
    }
    out->buf = buf;
    out->tok = copy;
    out->signing_len = (size_t)(d2 - tok);
    out->payload_b64_off = hl + 1;
    out->payload_b64_len = pl;
    out->sig = sig;
    out->sig_len = (size_t)sn;

    int rc;
    if (seen != NULL) {
        out->alg = seen->alg;
        out->has_kid = seen->has_kid;
        memcpy(out->kid, seen->kid, sizeof(out->kid));
        memcpy(out->typ, seen->typ, sizeof(out->typ));
    } else if ((rc = parse_header(hdr, (size_t)hn, recs, out, reason)) < 0) {
        goto bad;
    } else {
        memo_put(memo, tok, hl, out);
    }
    /* Duplicate names are refused: two "sub" members read differently by
     * two parsers is how claims get smuggled (RFC 7519 section 4, RFC 8725
     * section 3.9). */
    long nr = gh_jose_json_index(pay, (size_t)pn, recs);
    if (nr < 0) {
        rc = nr == -ENOMEM ? -ENOMEM : -EINVAL;
        *reason = nr == -ENOMEM ? GH_JWT_OUT_OF_MEMORY : GH_JWT_MALFORMED_PAYLOAD;
        goto bad;
    }
    out->claims = recs;
    out->nclaims = (size_t)nr;
    return 0;
bad:
    gh_jwt_dispose(out);
    return rc;
}

void gh_jwt_dispose(gh_jwt_t *t)
{
    json_decref(t->tree);
    free(t->buf);
    memset(t, 0, sizeof(*t));
}

const char *gh_jwt_payload_b64(const gh_jwt_t *t, size_t *len)
{
    *len = t->payload_b64_len;
    return t->tok + t->payload_b64_off;
}

json_t *gh_jwt_payload(const gh_jwt_t *t)
{
    if (t->tree != NULL || t->tok == NULL)
        return t->tree;
    /* The indexed text has its strings decoded in place: decode the
     * segment again. The reader accepted it, so jansson does too (the
     * differential test in tests/unit/jose/test_json.c holds it to that). */
    const char *seg = t->tok + t->payload_b64_off;
    unsigned char *text = malloc(GH_B64URL_DEC_MAX(t->payload_b64_len));
    if (text == NULL)
        return NULL;
    long n = gh_b64url_decode(seg, t->payload_b64_len, text);
    json_error_t jerr;
    json_t *tree =
        n > 0 ? json_loadb((const char *)text, (size_t)n, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    free(text);
    if (tree != NULL && !json_is_object(tree)) {
        json_decref(tree);
        tree = NULL;
    }
    /* A cache, not state: the token stays logically const. */
    ((gh_jwt_t *)t)->tree = tree;
    return tree;
}

static const gh_jose_json_rec_t *top(const gh_jwt_t *t, const char *name)
{
    return t->claims != NULL ? gh_jose_json_get(t->claims, t->nclaims, name) : NULL;
}

const char *gh_jwt_claim_string(const gh_jwt_t *t, const char *name, size_t *len)
{
    const gh_jose_json_rec_t *r = top(t, name);
    if (r == NULL || r->type != GH_JOSE_JSON_STRING)
        return NULL;
    if (len != NULL)
        *len = r->val_len;
    return r->val;
}

int gh_jwt_claim_number(const gh_jwt_t *t, const char *name, double *out)
{
    const gh_jose_json_rec_t *r = top(t, name);
    if (r == NULL)
        return 1;
    if (r->type != GH_JOSE_JSON_NUMBER)
        return -1;
    *out = gh_jose_json_number(r);
    return 0;
}

/* ---- claim access ---- */

static json_t *lookup(json_t *o, const char *path, size_t len, int depth)
{
    if (!json_is_object(o) || depth > 32)
        return NULL;
    json_t *v = json_object_getn(o, path, len);
    if (v != NULL)
        return v;
    /* Longest name first, so "a.b" as a member beats "a" -> "b". */
    for (size_t i = len; i-- > 0;) {
        if (path[i] != '.')
            continue;
        json_t *child = json_object_getn(o, path, i);
        if (child != NULL) {
            json_t *r = lookup(child, path + i + 1, len - i - 1, depth + 1);
            if (r != NULL)
                return r;
        }
    }
    return NULL;
}

json_t *gh_jwt_json_path(json_t *root, const char *path, size_t len)
{
    return lookup(root, path, len, 0);
}

json_t *gh_jwt_claim(const gh_jwt_t *t, const char *path)
{
    json_t *tree = gh_jwt_payload(t);
    return tree ? lookup(tree, path, strlen(path), 0) : NULL;
}

static int safe_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* A string the upstream reads as it is: HTTP trims spaces and tabs around
 * a field value (RFC 9110 section 5.5) and around each element of a list,
 * so " admin" or "admin\t" would arrive as "admin", a value the issuer
 * never wrote. Control characters would split or forge a header. */
static int header_text(const char *s, size_t n)
{
    if (n > 0 && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        return 0;
    return safe_text(s, n);
}

static int put(char *buf, size_t cap, size_t *o, const char *s, size_t n)
{
    if (*o + n >= cap)
        return -ENOSPC;
    memcpy(buf + *o, s, n);
    *o += n;
    buf[*o] = '\0';
    return 0;
}

static int render_json(const json_t *v, char *buf, size_t cap, size_t *o)
{
    size_t need = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    if (need == 0)
        return -EINVAL;
    if (*o + need >= cap)
        return -ENOSPC;
    json_dumpb(v, buf + *o, need, JSON_COMPACT | JSON_ENCODE_ANY);
    *o += need;
    buf[*o] = '\0';
    return 0;
}

static int render_scalar(const json_t *v, char *buf, size_t cap, size_t *o)
{
    if (json_is_string(v)) {
        if (!header_text(json_string_value(v), json_string_length(v)))
            return -EINVAL;
        return put(buf, cap, o, json_string_value(v), json_string_length(v));
    }
    return render_json(v, buf, cap, o);
}

int gh_jwt_claim_render(const json_t *v, char *buf, size_t cap)
{
    size_t o = 0;
    int rc;
    if (cap == 0)
        return -ENOSPC;
    buf[0] = '\0';
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (i > 0 && (rc = put(buf, cap, &o, ",", 1)) < 0)
                return rc;
            size_t start = o;
            if ((rc = render_scalar(e, buf, cap, &o)) < 0)
                return rc;
            /* The upstream splits the list on ','; an element holding one
             * would read as several: ["eng,admin"], or a nested
             * {"\",admin,\"":1}, would hand it an "admin" element the
             * issuer never put in the array. */
            if (memchr(buf + start, ',', o - start) != NULL)
                return -EINVAL;
        }
    } else if ((rc = render_scalar(v, buf, cap, &o)) < 0) {
        return rc;
    }
    /* JSON escapes keep objects free of raw control bytes, but a string
     * element decoded from "\r\n" is caught here. */
    return safe_text(buf, o) ? (int)o : -EINVAL;
}

int gh_jwt_claim_render_path(const gh_jwt_t *t, const char *path, char *buf, size_t cap)
{
    /* gh_jwt_claim takes a member named exactly path first, so a top-level
     * string needs no tree. */
    const gh_jose_json_rec_t *r = top(t, path);
    if (r != NULL && r->type == GH_JOSE_JSON_STRING) {
        if (cap == 0)
            return -ENOSPC;
        if (!header_text(r->val, r->val_len))
            return -EINVAL;
        if (r->val_len >= cap)
            return -ENOSPC;
        memcpy(buf, r->val, r->val_len + 1);
        return (int)r->val_len;
    }
    if (r == NULL && strchr(path, '.') == NULL)
        return -ENOENT;
    if (gh_jwt_payload(t) == NULL)
        return -ENOMEM;
    json_t *v = gh_jwt_claim(t, path);
    return v != NULL ? gh_jwt_claim_render(v, buf, cap) : -ENOENT;
}

/* The next space-separated word of s[0..len) from *i ("scope", RFC 8693
 * section 4.2): 1 with its start and length, 0 when none is left. */
static int next_word(const char *s, size_t len, size_t *i, size_t *start, size_t *n)
{
    while (*i < len && s[*i] == ' ')
        (*i)++;
    *start = *i;
    while (*i < len && s[*i] != ' ')
        (*i)++;
    *n = *i - *start;
    return *n > 0;
}

size_t gh_jwt_scopes(const gh_jwt_t *t, gh_jwt_slice_t *out, size_t max)
{
    size_t n = 0;
    const gh_jose_json_rec_t *scope = top(t, "scope");
    if (scope != NULL && scope->type == GH_JOSE_JSON_STRING) {
        const char *s = scope->val;
        size_t len = scope->val_len;
        size_t start, wn;
        for (size_t i = 0; next_word(s, len, &i, &start, &wn); n++) {
            if (n < max) {
                out[n].p = s + start;
                out[n].len = wn;
            }
        }
        return n;
    }
    const gh_jose_json_rec_t *scp = top(t, "scp");
    if (scp != NULL && scp->type == GH_JOSE_JSON_ARRAY) {
        /* Its elements are the records that follow it. */
        for (uint32_t i = 1; i <= scp->nelem; i++) {
            const gh_jose_json_rec_t *e = scp + i;
            /* The identity joins scopes with spaces: an element holding
             * one ("read admin") would read as two there, while a
             * required claim "scp contains admin" compares elements. */
            if (e->type != GH_JOSE_JSON_STRING || e->val_len == 0 ||
                memchr(e->val, ' ', e->val_len) != NULL)
                continue;
            if (n < max) {
                out[n].p = e->val;
                out[n].len = e->val_len;
            }
            n++;
        }
    } else if (scp != NULL && scp->type == GH_JOSE_JSON_STRING) {
        if (max > 0) {
            out[0].p = scp->val;
            out[0].len = scp->val_len;
        }
        n = 1;
    }
    return n;
}

/* ---- claims ---- */

static void set_detail(char *detail, size_t cap, const char *a, const char *b)
{
    if (detail != NULL && cap > 0)
        snprintf(detail, cap, "%s%s%s", a, b ? " " : "", b ? b : "");
}

/* RFC 9068 §2.1 / RFC 7515 §4.1.9: "at+jwt" and "application/at+jwt" are the
 * same media type, compared case-insensitively. */
static int typ_matches(const char *have, const char *want)
{
    if (strncasecmp(have, "application/", 12) == 0)
        have += 12;
    if (strncasecmp(want, "application/", 12) == 0)
        want += 12;
    return strcasecmp(have, want) == 0;
}

/* A NumericDate claim: absent (1), a number in [0, GH_JWT_MAX_DATE] (0,
 * *out set), or malformed (-1). The range is checked here, on the double,
 * because converting 1e300 or 2^63 to int64_t (the cache's expiry) is
 * undefined behaviour; no real date is negative or past year 9999. */
static int numeric_date(const gh_jwt_t *t, const char *name, double *out)
{
    double d;
    int r = gh_jwt_claim_number(t, name, &d);
    if (r != 0)
        return r;
    if (!(d >= 0.0 && d <= GH_JWT_MAX_DATE)) /* NaN fails both */
        return -1;
    *out = d;
    return 0;
}

/* A string record equal to want. */
static int rec_equals(const gh_jose_json_rec_t *r, const char *want)
{
    size_t wl = strlen(want);
    return r->type == GH_JOSE_JSON_STRING && r->val_len == wl && memcmp(r->val, want, wl) == 0;
}

/* A scalar compared with a configured value, both as text. */
static int scalar_equals(const json_t *v, const char *want)
{
    if (json_is_string(v))
        return strlen(want) == json_string_length(v) &&
               memcmp(json_string_value(v), want, json_string_length(v)) == 0;
    if (json_is_array(v) || json_is_object(v) || v == NULL)
        return 0;
    char buf[64];
    size_t o = 0;
    return render_json(v, buf, sizeof(buf), &o) == 0 && strcmp(buf, want) == 0;
}

static int has_member(const json_t *v, const char *want)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (scalar_equals(e, want))
                return 1;
        }
        return 0;
    }
    if (json_is_string(v)) {
        /* Space-separated, as "scope" (RFC 8693 §4.2). */
        const char *s = json_string_value(v);
        size_t len = json_string_length(v), wl = strlen(want);
        size_t start, wn;
        for (size_t i = 0; next_word(s, len, &i, &start, &wn);)
            if (wn == wl && wl > 0 && memcmp(s + start, want, wl) == 0)
                return 1;
    }
    return 0;
}

/* The audience check on the index. RFC 7519 section 4.1.3: aud is a
 * string or an array of strings. An array holding anything else matches
 * nothing, whatever its other elements (as PyJWT refuses it): compared as
 * JSON text, [123] or [null] would match an audience named "123" or
 * "null", and an issuer's stray element would decide for it. */
static int aud_matches(const gh_jose_json_rec_t *aud, const char *want)
{
    if (aud->type == GH_JOSE_JSON_STRING)
        return rec_equals(aud, want);
    if (aud->type != GH_JOSE_JSON_ARRAY)
        return 0;
    int found = 0;
    for (uint32_t i = 1; i <= aud->nelem; i++) {
        if (aud[i].type != GH_JOSE_JSON_STRING)
            return 0;
        found |= rec_equals(&aud[i], want);
    }
    return found;
}

static int required_ok(const json_t *v, const gh_jwt_claim_req_t *r, const char **missing)
{
    *missing = r->nvalues ? r->values[0] : "";
    if (v == NULL)
        return 0;
    switch (r->op) {
    case GH_JWT_CLAIM_EXACT:
        return r->nvalues > 0 && scalar_equals(v, r->values[0]);
    case GH_JWT_CLAIM_ONE_OF:
        for (size_t i = 0; i < r->nvalues; i++) {
            if (json_is_array(v) ? has_member(v, r->values[i]) : scalar_equals(v, r->values[i]))
                return 1;
        }
        return 0;
    case GH_JWT_CLAIM_CONTAINS:
        for (size_t i = 0; i < r->nvalues; i++) {
            if (!has_member(v, r->values[i])) {
                *missing = r->values[i];
                return 0;
            }
        }
        return 1;
    }
    return 0;
}

int gh_jwt_check_claims(const gh_jwt_t *t, const gh_jwt_claims_policy_t *p, int64_t now,
                        gh_jwt_reason_t *reason, char *detail, size_t detail_cap)
{
    gh_jwt_reason_t dummy;
    if (reason == NULL)
        reason = &dummy;
    if (detail != NULL && detail_cap > 0)
        detail[0] = '\0';
    double skew = (double)(p->skew > 0 ? p->skew : 0), tnow = (double)now, v;

    if (p->typ != NULL && !typ_matches(t->typ, p->typ)) {
        set_detail(detail, detail_cap, "typ", p->typ);
        return fail(reason, GH_JWT_WRONG_TYP);
    }
    if (p->issuer != NULL) {
        const gh_jose_json_rec_t *iss = top(t, "iss");
        if (iss == NULL || !rec_equals(iss, p->issuer)) {
            set_detail(detail, detail_cap, "iss", NULL);
            return fail(reason, GH_JWT_WRONG_ISSUER);
        }
    }
    if (p->naudiences > 0) {
        /* RFC 7519 §4.1.3: aud is a string or an array of strings; the
         * token is for us when one of them is one of ours (an array with
         * anything else in it is for nobody). */
        const gh_jose_json_rec_t *aud = top(t, "aud");
        int ok = 0;
        for (size_t i = 0; i < p->naudiences && !ok && aud != NULL; i++)
            ok = aud_matches(aud, p->audiences[i]);
        if (!ok) {
            set_detail(detail, detail_cap, "aud", NULL);
            return fail(reason, GH_JWT_WRONG_AUDIENCE);
        }
    }
    int r = numeric_date(t, "exp", &v);
    if (r < 0 || (r == 1 && !p->exp_optional)) {
        set_detail(detail, detail_cap, "exp", NULL);
        return fail(reason, r < 0 ? GH_JWT_MALFORMED_CLAIM : GH_JWT_MISSING_EXP);
    }
    /* RFC 7519 §4.1.4: not accepted "on or after" exp. */
    if (r == 0 && tnow >= v + skew) {
        set_detail(detail, detail_cap, "exp", NULL);
        return fail(reason, GH_JWT_EXPIRED);
    }
    r = numeric_date(t, "nbf", &v);
    if (r < 0 || (r == 0 && tnow + skew < v)) {
        set_detail(detail, detail_cap, "nbf", NULL);
        return fail(reason, r < 0 ? GH_JWT_MALFORMED_CLAIM : GH_JWT_NOT_YET_VALID);
    }
    r = numeric_date(t, "iat", &v);
    if (r < 0 || (r == 0 && v > tnow + skew)) {
        set_detail(detail, detail_cap, "iat", NULL);
        return fail(reason, r < 0 ? GH_JWT_MALFORMED_CLAIM : GH_JWT_ISSUED_IN_FUTURE);
    }
    /* max_token_age: a token stolen once stays usable until exp; bounding
     * its age from iat bounds that window whatever lifetime the issuer chose. */
    if (p->max_age > 0 && (r == 1 || tnow - v > (double)p->max_age + skew)) {
        set_detail(detail, detail_cap, "iat", NULL);
        return fail(reason, r == 1 ? GH_JWT_MISSING_IAT : GH_JWT_TOO_OLD);
    }
    for (size_t i = 0; i < p->nrequired; i++) {
        const gh_jwt_claim_req_t *req = &p->required[i];
        const char *missing;
        if (!required_ok(gh_jwt_claim(t, req->path), req, &missing)) {
            static const char *const ops[] = {"is", "one of", "contains"};
            if (detail != NULL && detail_cap > 0)
                snprintf(detail, detail_cap, "%s %s %s", req->path,
                         ops[req->op <= GH_JWT_CLAIM_CONTAINS ? req->op : 0], missing);
            *reason = GH_JWT_INSUFFICIENT_CLAIMS;
            return -EACCES;
        }
    }
    return 0;
}

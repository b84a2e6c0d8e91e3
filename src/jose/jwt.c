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

/* Header members a verifier may ignore. Anything else is ignored as well
 * (RFC 7515 §4: unknown parameters MUST be ignored) unless listed in crit. */
static int parse_header(const unsigned char *p, size_t n, gh_jwt_t *t, gh_jwt_reason_t *reason)
{
    json_error_t jerr;
    json_t *h = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;
    if (h == NULL || !json_is_object(h)) {
        rc = fail(reason, GH_JWT_MALFORMED_HEADER);
        goto out;
    }
    json_t *alg = json_object_get(h, "alg");
    if (!json_is_string(alg)) {
        rc = fail(reason, GH_JWT_MALFORMED_HEADER);
        goto out;
    }
    /* RFC 8725 §3.1 and the many CVEs before it: "none" is never accepted,
     * whatever its spelling (some libraries compared case-insensitively). */
    if (json_string_length(alg) == 4 && strncasecmp(json_string_value(alg), "none", 4) == 0) {
        rc = fail(reason, GH_JWT_ALG_NONE);
        goto out;
    }
    t->alg = gh_jwt_alg_from_name(json_string_value(alg), json_string_length(alg));
    if (t->alg == GH_JWT_ALG_UNKNOWN) {
        rc = fail(reason, GH_JWT_UNSUPPORTED_ALG);
        goto out;
    }
    /* RFC 7515 §4.1.11: a recipient that does not understand a listed
     * extension must reject the JWS. gatehouse understands none. */
    if (json_object_get(h, "crit") != NULL) {
        rc = fail(reason, GH_JWT_UNSUPPORTED_CRIT);
        goto out;
    }
    json_t *kid = json_object_get(h, "kid");
    if (kid != NULL) {
        size_t kl = json_string_length(kid);
        if (!json_is_string(kid) || kl > GH_JWT_MAX_KID || strlen(json_string_value(kid)) != kl) {
            rc = fail(reason, GH_JWT_MALFORMED_KID);
            goto out;
        }
        memcpy(t->kid, json_string_value(kid), kl + 1);
        t->has_kid = 1;
    }
    json_t *typ = json_object_get(h, "typ");
    if (typ != NULL) {
        size_t tl = json_string_length(typ);
        if (!json_is_string(typ) || tl > GH_JWT_MAX_TYP || strlen(json_string_value(typ)) != tl) {
            rc = fail(reason, GH_JWT_MALFORMED_HEADER);
            goto out;
        }
        memcpy(t->typ, json_string_value(typ), tl + 1);
    }
    /* "jku", "x5u", "jwk", "x5c": deliberately not read. A key named by the
     * token is a key chosen by the attacker (RFC 8725 §3.10). */
out:
    json_decref(h);
    return rc;
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

    /* One buffer: token copy, then decoded header, payload, signature. */
    size_t cap = len + 1 + GH_B64URL_DEC_MAX(hl) + GH_B64URL_DEC_MAX(pl) + GH_B64URL_DEC_MAX(sl);
    char *buf = malloc(cap);
    if (buf == NULL) {
        *reason = GH_JWT_OUT_OF_MEMORY;
        return -ENOMEM;
    }
    memcpy(buf, tok, len);
    buf[len] = '\0';
    unsigned char *hdr = (unsigned char *)buf + len + 1;
    const gh_jose_hdr_t *seen = memo_find(memo, tok, hl);
    long hn = 0;
    if (seen == NULL && (hn = gh_b64url_decode(tok, hl, hdr)) <= 0) {
        free(buf);
        return fail(reason, GH_JWT_MALFORMED_HEADER);
    }
    unsigned char *pay = hdr + hn;
    long pn = gh_b64url_decode(d1 + 1, pl, pay);
    if (pn <= 0) {
        free(buf);
        return fail(reason, GH_JWT_MALFORMED_PAYLOAD);
    }
    unsigned char *sig = pay + pn;
    long sn = gh_b64url_decode(d2 + 1, sl, sig);
    if (sn <= 0) {
        free(buf);
        return fail(reason, GH_JWT_MALFORMED_SIGNATURE);
    }
    out->buf = buf;
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
    } else if ((rc = parse_header(hdr, (size_t)hn, out, reason)) < 0) {
        goto bad;
    } else {
        memo_put(memo, tok, hl, out);
    }
    json_error_t jerr;
    /* Duplicate names are refused: two "sub" members read differently by
     * two parsers is how claims get smuggled (RFC 7519 §4, RFC 8725 §3.9). */
    out->payload = json_loadb((const char *)pay, (size_t)pn, JSON_REJECT_DUPLICATES, &jerr);
    if (out->payload == NULL || !json_is_object(out->payload)) {
        rc = fail(reason, GH_JWT_MALFORMED_PAYLOAD);
        goto bad;
    }
    return 0;
bad:
    gh_jwt_dispose(out);
    return rc;
}

void gh_jwt_dispose(gh_jwt_t *t)
{
    json_decref(t->payload);
    free(t->buf);
    memset(t, 0, sizeof(*t));
}

const char *gh_jwt_payload_b64(const gh_jwt_t *t, size_t *len)
{
    *len = t->payload_b64_len;
    return t->buf + t->payload_b64_off;
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

json_t *gh_jwt_claim(const gh_jwt_t *t, const char *path)
{
    return t->payload ? lookup(t->payload, path, strlen(path), 0) : NULL;
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
        if (!safe_text(json_string_value(v), json_string_length(v)))
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
            if ((rc = render_scalar(e, buf, cap, &o)) < 0)
                return rc;
        }
    } else if ((rc = render_scalar(v, buf, cap, &o)) < 0) {
        return rc;
    }
    /* JSON escapes keep objects free of raw control bytes, but a string
     * element decoded from "\r\n" is caught here. */
    return safe_text(buf, o) ? (int)o : -EINVAL;
}

size_t gh_jwt_scopes(const gh_jwt_t *t, gh_jwt_slice_t *out, size_t max)
{
    size_t n = 0;
    json_t *scope = json_object_get(t->payload, "scope");
    if (json_is_string(scope)) {
        const char *s = json_string_value(scope);
        size_t len = json_string_length(scope);
        for (size_t i = 0; i < len;) {
            while (i < len && s[i] == ' ')
                i++;
            size_t start = i;
            while (i < len && s[i] != ' ')
                i++;
            if (i > start) {
                if (n < max) {
                    out[n].p = s + start;
                    out[n].len = i - start;
                }
                n++;
            }
        }
        return n;
    }
    json_t *scp = json_object_get(t->payload, "scp");
    if (json_is_array(scp)) {
        size_t i;
        json_t *e;
        json_array_foreach(scp, i, e)
        {
            if (!json_is_string(e))
                continue;
            if (n < max) {
                out[n].p = json_string_value(e);
                out[n].len = json_string_length(e);
            }
            n++;
        }
    } else if (json_is_string(scp)) {
        if (max > 0) {
            out[0].p = json_string_value(scp);
            out[0].len = json_string_length(scp);
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
    json_t *v = json_object_get(t->payload, name);
    if (v == NULL)
        return 1;
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!(d >= 0.0 && d <= GH_JWT_MAX_DATE)) /* NaN fails both */
        return -1;
    *out = d;
    return 0;
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
        for (size_t i = 0; i < len;) {
            while (i < len && s[i] == ' ')
                i++;
            size_t start = i;
            while (i < len && s[i] != ' ')
                i++;
            if (i - start == wl && wl > 0 && memcmp(s + start, want, wl) == 0)
                return 1;
        }
    }
    return 0;
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
        json_t *iss = json_object_get(t->payload, "iss");
        if (!scalar_equals(iss, p->issuer) || !json_is_string(iss)) {
            set_detail(detail, detail_cap, "iss", NULL);
            return fail(reason, GH_JWT_WRONG_ISSUER);
        }
    }
    if (p->naudiences > 0) {
        /* RFC 7519 §4.1.3: aud is a string or an array of strings; the
         * token is for us when one of them is one of ours. */
        json_t *aud = json_object_get(t->payload, "aud");
        int ok = 0;
        for (size_t i = 0; i < p->naudiences && !ok; i++) {
            ok = json_is_string(aud) ? scalar_equals(aud, p->audiences[i])
                                     : json_is_array(aud) && has_member(aud, p->audiences[i]);
        }
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

/*
 * Token, introspection and revocation requests read from the method, the
 * Content-Type and Authorization fields and the form body (issuer.h).
 * Nothing here knows clients: the result names the client and how it
 * means to authenticate; auth.c checks it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <gatehouse/hex.h>

#include "issuer/issuer.h"

static const char grant_client_credentials[] = "client_credentials";

const char *gh_oauth_auth_method_name(gh_oauth_auth_method_t m)
{
    switch (m) {
    case GH_OAUTH_AUTH_SECRET_BASIC:
        return "client_secret_basic";
    case GH_OAUTH_AUTH_SECRET_POST:
        return "client_secret_post";
    case GH_OAUTH_AUTH_PRIVATE_KEY_JWT:
        return "private_key_jwt";
    default:
        return "none";
    }
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
}

/* ASCII case-insensitive equality of s[0 .. n) and the lower-case lit. */
static int ieq(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != lit[i])
            return 0;
    return 1;
}

int gh_oauth_client_id_valid(const char *id, size_t len)
{
    /* RFC 6749 allows any VSCHAR (A.1); gatehouse's ids are RFC 3986
     * unreserved characters only, so that an id is the same bytes in a
     * Basic credential, a form, a JWT, a store key and a log line. */
    if (len == 0 || len > GH_OAUTH_MAX_CLIENT_ID)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~'))
            return 0;
    }
    return 1;
}

/* ---- Content-Type (RFC 9110 §8.3) ---- */

static int tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *skip_ows(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* media-type = type "/" subtype parameters, where type/subtype is
 * application/x-www-form-urlencoded in any case and parameters are
 * *( OWS ";" OWS [ token "=" ( token / quoted-string ) ] ). A charset must
 * be utf-8 (RFC 6749 Appendix B: the form is UTF-8) and appear once. */
static const char *content_type_error(const char *v, size_t n)
{
    static const char mt[] = "application/x-www-form-urlencoded";
    const size_t ml = sizeof(mt) - 1;
    if (n < ml || !ieq(v, ml, mt))
        return "Content-Type must be application/x-www-form-urlencoded";
    const char *p = v + ml, *e = v + n;
    int charset = 0;
    for (;;) {
        p = skip_ows(p, e);
        if (p == e)
            return NULL;
        if (*p++ != ';')
            return "Content-Type must be application/x-www-form-urlencoded";
        p = skip_ows(p, e);
        if (p == e || *p == ';')
            continue;
        const char *name = p;
        while (p < e && tchar((unsigned char)*p))
            p++;
        size_t nl = (size_t)(p - name);
        if (nl == 0 || p == e || *p++ != '=')
            return "malformed Content-Type parameter";
        char val[16];
        size_t vl = 0;
        int long_val = 0;
        if (p < e && *p == '"') {
            p++;
            for (;;) {
                if (p == e)
                    return "malformed Content-Type parameter";
                unsigned char c = (unsigned char)*p++;
                if (c == '"')
                    break;
                if (c == '\\') {
                    if (p == e)
                        return "malformed Content-Type parameter";
                    c = (unsigned char)*p++;
                }
                if ((c < 0x20 && c != '\t') || c == 0x7f)
                    return "malformed Content-Type parameter";
                if (vl < sizeof(val))
                    val[vl++] = (char)c;
                else
                    long_val = 1;
            }
        } else {
            const char *s = p;
            while (p < e && tchar((unsigned char)*p))
                p++;
            if (p == s)
                return "malformed Content-Type parameter";
            vl = (size_t)(p - s);
            long_val = vl > sizeof(val);
            memcpy(val, s, long_val ? sizeof(val) : vl);
        }
        if (ieq(name, nl, "charset")) {
            if (charset++ || long_val || !ieq(val, vl, "utf-8"))
                return "the form must be charset=utf-8";
        }
    }
}

/* ---- Authorization: Basic (RFC 7617, RFC 6749 §2.3.1) ---- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Strict base64 (RFC 4648 §4) with padding: a length of 4k, '=' only at
 * the end, zero trailing bits. Returns the decoded length or -1. */
static long b64_decode(const char *in, size_t n, unsigned char *out)
{
    if (n == 0 || n % 4 != 0)
        return -1;
    size_t pad = in[n - 1] == '=' ? (in[n - 2] == '=' ? 2 : 1) : 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (size_t j = 0; j < 4; j++) {
            int last = i + 4 == n;
            if (last && j >= 4 - pad) {
                v[j] = 0;
                continue;
            }
            if ((v[j] = b64_value((unsigned char)in[i + j])) < 0)
                return -1;
        }
        uint32_t x =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (unsigned char)(x >> 16);
        if (i + 4 < n || pad < 2)
            out[o++] = (unsigned char)(x >> 8);
        if (i + 4 < n || pad < 1)
            out[o++] = (unsigned char)x;
        if (i + 4 == n && ((pad == 2 && (x & 0xffff)) || (pad == 1 && (x & 0xff))))
            return -1;
    }
    return (long)o;
}

static int has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 1;
    }
    return 0;
}

/* Reads a Basic credential into out->buf + off (room for the value's
 * length): client id and secret, each form-urlencoded before base64 (RFC
 * 6749 §2.3.1), decoded and NUL-terminated. */
static int read_basic(const char *v, size_t n, gh_oauth_request_t *out, size_t off,
                      gh_oauth_error_t *err)
{
    const char *sp = memchr(v, ' ', n);
    if (!ieq(v, (size_t)((sp ? sp : v + n) - v), "basic")) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT,
                      "only Basic client authentication is supported in Authorization");
        return -1;
    }
    if (sp == NULL)
        sp = v + n;
    const char *t = sp;
    while (t < v + n && *t == ' ')
        t++;
    unsigned char *raw = (unsigned char *)out->buf + off;
    long rl = b64_decode(t, (size_t)(v + n - t), raw);
    const char *colon = rl > 0 ? memchr(raw, ':', (size_t)rl) : NULL;
    if (colon == NULL) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "malformed Basic credentials");
        return -1;
    }
    /* Decoding shrinks: each part decodes over its own bytes, and the NUL
     * of the id takes the place of the ':'. */
    char *id = (char *)raw, *secret = (char *)colon + 1;
    size_t il = (size_t)((const unsigned char *)colon - raw), sl = (size_t)rl - il - 1;
    long idl = gh_form_decode(id, il, id);
    long secl = idl < 0 ? -1 : gh_form_decode(secret, sl, secret);
    if (idl < 0 || secl < 0 || has_control(id, (size_t)idl) || has_control(secret, (size_t)secl)) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "malformed Basic credentials");
        return -1;
    }
    id[idl] = '\0';
    secret[secl] = '\0';
    if (secl == 0 || (size_t)secl > GH_OAUTH_MAX_SECRET) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "the client secret is empty or too long");
        return -1;
    }
    out->client_id = id;
    out->client_id_len = (size_t)idl;
    out->secret = secret;
    out->secret_len = (size_t)secl;
    return 0;
}

/* ---- parameters ---- */

typedef struct {
    const char *name;
    unsigned endpoints; /* bits of 1 << gh_oauth_endpoint_t */
    int multi;          /* may repeat (RFC 8707 §2, RFC 8693 §2.1) */
} param_t;

#define EP_TOKEN (1u << GH_OAUTH_TOKEN)
#define EP_TOKEN_OPS (1u << GH_OAUTH_INTROSPECT | 1u << GH_OAUTH_REVOKE)
#define EP_ALL (EP_TOKEN | EP_TOKEN_OPS)

/* The parameters read per endpoint; any other is ignored (RFC 6749 §3.2:
 * "MUST ignore unrecognized request parameters"), repeats included. */
static const param_t params[] = {
    {"client_id", EP_ALL, 0},
    {"client_secret", EP_ALL, 0},
    {"client_assertion_type", EP_ALL, 0},
    {"client_assertion", EP_ALL, 0},
    {"grant_type", EP_TOKEN, 0},
    {"scope", EP_TOKEN, 0},
    {"audience", EP_TOKEN, 1},
    {"resource", EP_TOKEN, 1},
    {"token", EP_TOKEN_OPS, 0},
    {"token_type_hint", EP_TOKEN_OPS, 0},
};

/* The single value of a parameter (NULL when omitted), its repeat and
 * control-byte checks done by check_params. */
static const char *param(const gh_oauth_request_t *r, const char *name, size_t *len)
{
    const gh_form_pair_t *pr;
    if (gh_form_get(&r->form, name, &pr) == 0)
        return NULL;
    if (len != NULL)
        *len = pr->value_len;
    return pr->value;
}

static int check_params(const gh_oauth_request_t *r, gh_oauth_error_t *err)
{
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        const param_t *p = &params[i];
        if (!(p->endpoints & (1u << r->endpoint)))
            continue;
        size_t nl = strlen(p->name);
        size_t count = 0;
        for (size_t j = 0; j < r->form.n; j++) {
            const gh_form_pair_t *pr = &r->form.pairs[j];
            if (pr->value_len == 0 || pr->name_len != nl || memcmp(pr->name, p->name, nl) != 0)
                continue;
            /* RFC 6749 §3.2: "MUST NOT be included more than once". */
            if (++count > 1 && !p->multi) {
                gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST, "parameter %s is repeated", p->name);
                return -1;
            }
            /* Every value read here is ASCII text by its grammar (VSCHAR,
             * NQCHAR, URIs, base64url); a control byte, NUL above all,
             * would mean one thing to C strings and another to the rest. */
            if (has_control(pr->value, pr->value_len)) {
                gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST,
                              "parameter %s holds a control character", p->name);
                return -1;
            }
        }
    }
    return 0;
}

/* RFC 6749 §3.3: scope = scope-token *( SP scope-token ), scope-token =
 * 1*NQCHAR (%x21 / %x23-5B / %x5D-7E). Split in place is not possible (the
 * value is borrowed by the form), so tokens are NUL-terminated copies in
 * out->buf at *off. */
static int read_scope(gh_oauth_request_t *r, size_t *off, gh_oauth_error_t *err)
{
    size_t n = r->scope_len;
    if (n > GH_OAUTH_MAX_SCOPE) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_SCOPE, "scope too long");
        return -1;
    }
    const char *s = r->scope;
    size_t i = 0;
    while (i <= n) {
        size_t st = i;
        while (i < n && s[i] != ' ') {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
                gh_oauth_fail(err, GH_OAUTH_INVALID_SCOPE, "malformed scope");
                return -1;
            }
            i++;
        }
        if (i == st) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_SCOPE,
                          "malformed scope (empty scope-token: one space between tokens)");
            return -1;
        }
        char *tok = r->buf + *off;
        memcpy(tok, s + st, i - st);
        tok[i - st] = '\0';
        int dup = 0;
        for (size_t k = 0; k < r->nscopes && !dup; k++)
            dup = strcmp(r->scopes[k], tok) == 0;
        if (!dup) {
            if (r->nscopes == GH_OAUTH_MAX_SCOPES) {
                gh_oauth_fail(err, GH_OAUTH_INVALID_SCOPE, "too many scopes");
                return -1;
            }
            r->scopes[r->nscopes++] = tok;
            *off += i - st + 1;
        }
        i++; /* past the space, or past the end */
    }
    return 0;
}

/* RFC 3986 §4.3 absolute-URI (scheme ":" hier-part [ "?" query ]), read
 * as a scheme and URI characters; RFC 8707 §2: no fragment. */
static int absolute_uri(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    while (i < n && s[i] != ':') {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.'))
            return 0;
        i++;
    }
    if (i == n || i + 1 == n)
        return 0;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3 || gh_hex_value((unsigned char)s[i + 1]) < 0 ||
                gh_hex_value((unsigned char)s[i + 2]) < 0)
                return 0;
            i += 2;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("-._~:/?[]@!$&'()*+,;=", c) != NULL) ||
            c == 0)
            return 0;
    }
    return 1;
}

static int read_targets(gh_oauth_request_t *r, gh_oauth_error_t *err)
{
    static const char *const names[] = {"audience", "resource"};
    for (size_t k = 0; k < 2; k++) {
        size_t nl = strlen(names[k]);
        for (size_t j = 0; j < r->form.n; j++) {
            const gh_form_pair_t *pr = &r->form.pairs[j];
            if (pr->value_len == 0 || pr->name_len != nl || memcmp(pr->name, names[k], nl) != 0)
                continue;
            int ok = pr->value_len <= GH_OAUTH_MAX_TARGET;
            if (ok && k == 1) {
                ok = absolute_uri(pr->value, pr->value_len);
            } else {
                /* An audience is a name (RFC 8693 §2.1): printable ASCII
                 * without spaces, so that it is one token in every list. */
                for (size_t i = 0; ok && i < pr->value_len; i++)
                    ok = pr->value[i] > 0x20 && pr->value[i] < 0x7f;
            }
            if (!ok) {
                gh_oauth_fail(err, GH_OAUTH_INVALID_TARGET,
                              k == 1 ? "resource must be an absolute URI without fragment"
                                     : "malformed audience");
                return -1;
            }
            int dup = 0;
            for (size_t i = 0; i < r->ntargets && !dup; i++)
                dup = strcmp(r->targets[i], pr->value) == 0;
            if (dup)
                continue;
            if (r->ntargets == GH_OAUTH_MAX_TARGETS) {
                gh_oauth_fail(err, GH_OAUTH_INVALID_TARGET, "too many audiences and resources");
                return -1;
            }
            r->targets[r->ntargets++] = pr->value;
        }
    }
    return 0;
}

static int same(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && memcmp(a, b, an) == 0;
}

/* Which method, and the client id it names. */
static int read_client(gh_oauth_request_t *r, int basic, gh_oauth_error_t *err)
{
    size_t idl = 0, secl = 0, atl = 0, asl = 0;
    const char *id = param(r, "client_id", &idl);
    const char *secret = param(r, "client_secret", &secl);
    const char *atype = param(r, "client_assertion_type", &atl);
    const char *assertion = param(r, "client_assertion", &asl);
    int post = secret != NULL, jwt = atype != NULL || assertion != NULL;
    if (basic + post + jwt > 1) {
        /* RFC 6749 §2.3: "MUST NOT use more than one authentication
         * method in each request". */
        gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST, "more than one client authentication method");
        return -1;
    }
    if (basic) {
        r->auth_method = GH_OAUTH_AUTH_SECRET_BASIC;
        if (id != NULL && !same(id, idl, r->client_id, r->client_id_len)) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST,
                          "client_id does not match the Authorization field");
            return -1;
        }
    } else if (post) {
        r->auth_method = GH_OAUTH_AUTH_SECRET_POST;
        if (id == NULL) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST, "client_secret without client_id");
            return -1;
        }
        if (secl > GH_OAUTH_MAX_SECRET) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "the client secret is too long");
            return -1;
        }
        r->client_id = id;
        r->client_id_len = idl;
        r->secret = secret;
        r->secret_len = secl;
    } else if (jwt) {
        r->auth_method = GH_OAUTH_AUTH_PRIVATE_KEY_JWT;
        if (atype == NULL || assertion == NULL) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST,
                          "client_assertion and client_assertion_type go together");
            return -1;
        }
        if (strcmp(atype, GH_OAUTH_ASSERTION_TYPE) != 0) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "unsupported client_assertion_type");
            return -1;
        }
        gh_jwt_reason_t why;
        int rc = gh_jwt_parse(assertion, asl, &r->assertion, &why);
        if (rc == -ENOMEM) {
            gh_oauth_fail(err, GH_OAUTH_TEMPORARILY_UNAVAILABLE, "out of memory");
            return -1;
        }
        if (rc < 0) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "client assertion: %s",
                          gh_jwt_reason_text(why));
            return -1;
        }
        r->has_assertion = 1;
        /* RFC 7523 §3: iss and sub are both the client id (§2.2). */
        size_t il = 0, sl = 0;
        const char *iss = gh_jwt_claim_string(&r->assertion, "iss", &il);
        const char *sub = gh_jwt_claim_string(&r->assertion, "sub", &sl);
        if (iss == NULL || sub == NULL || !same(iss, il, sub, sl)) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT,
                          "client assertion: iss and sub must both be the client id");
            return -1;
        }
        if (id != NULL && !same(id, idl, iss, il)) {
            /* RFC 7521 §4.2: client_id, when sent, names the same client. */
            gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST,
                          "client_id does not match the client assertion");
            return -1;
        }
        r->client_id = iss;
        r->client_id_len = il;
    } else {
        /* RFC 6749 §5.2 invalid_client: "no client authentication
         * included"; public clients have no use for client_credentials. */
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "client authentication required");
        return -1;
    }
    if (!gh_oauth_client_id_valid(r->client_id, r->client_id_len)) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "malformed client_id");
        return -1;
    }
    return 0;
}

static const gh_h1_header_t *one_field(const gh_oauth_http_t *h, const char *lname, size_t *count)
{
    const gh_h1_header_t *f = NULL;
    *count = 0;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (ieq(h->headers[i].name, h->headers[i].name_len, lname)) {
            if ((*count)++ == 0)
                f = &h->headers[i];
        }
    }
    return f;
}

void gh_oauth_request_dispose(gh_oauth_request_t *r)
{
    if (r->has_assertion)
        gh_jwt_dispose(&r->assertion);
    r->has_assertion = 0;
    if (r->buf != NULL)
        OPENSSL_clear_free(r->buf, r->buf_len);
    r->buf = NULL;
}

static int parse(gh_oauth_endpoint_t ep, const gh_oauth_http_t *h, gh_oauth_request_t *r,
                 gh_oauth_error_t *err)
{
    /* RFC 6749 §3.2, RFC 7662 §2.1, RFC 7009 §2.1: POST. */
    if (!same(h->method, h->method_len, "POST", 4)) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST, "the method must be POST");
        err->status = 405;
        return -1;
    }
    size_t n;
    const gh_h1_header_t *ct = one_field(h, "content-type", &n);
    const char *why = NULL;
    if (n != 1 || (why = content_type_error(ct->value, ct->value_len)) != NULL) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST, "%s",
                      n == 0  ? "Content-Type is missing"
                      : n > 1 ? "Content-Type is repeated"
                              : why);
        return -1;
    }
    if (h->body_len > GH_OAUTH_MAX_BODY) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST, "the body is too large");
        err->status = 413;
        return -1;
    }
    const gh_h1_header_t *az = one_field(h, "authorization", &n);
    if (n > 1 || (az != NULL && az->value_len > GH_OAUTH_MAX_AUTHORIZATION)) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "%s",
                      n > 1 ? "Authorization is repeated" : "Authorization is too long");
        return -1;
    }
    /* One buffer: the decoded form, the decoded Basic credential, the
     * scope tokens (each at most its share of the scope, plus a NUL). */
    size_t form_cap = GH_FORM_SCRATCH(h->body_len);
    size_t basic_cap = az != NULL ? az->value_len + 1 : 0;
    r->buf_len = form_cap + basic_cap + h->body_len + 1;
    r->buf = malloc(r->buf_len);
    if (r->buf == NULL) {
        gh_oauth_fail(err, GH_OAUTH_TEMPORARILY_UNAVAILABLE, "out of memory");
        return -1;
    }
    int rc = gh_form_parse(h->body, h->body_len, r->buf, form_cap, &r->form, &why);
    if (rc < 0) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST, "%s", why);
        return -1;
    }
    if (check_params(r, err) < 0)
        return -1;
    /* Request errors before authentication errors: a malformed request
     * says nothing about a client. */
    if (ep == GH_OAUTH_TOKEN) {
        size_t gl = 0;
        const char *grant = param(r, "grant_type", &gl);
        if (grant == NULL) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST, "grant_type is missing");
            return -1;
        }
        if (!same(grant, gl, grant_client_credentials, sizeof(grant_client_credentials) - 1)) {
            gh_oauth_fail(err, GH_OAUTH_UNSUPPORTED_GRANT_TYPE,
                          "only client_credentials is supported");
            return -1;
        }
        size_t off = form_cap + basic_cap;
        r->scope = param(r, "scope", &r->scope_len);
        if (r->scope != NULL && read_scope(r, &off, err) < 0)
            return -1;
        if (read_targets(r, err) < 0)
            return -1;
    } else {
        r->token = param(r, "token", &r->token_len);
        if (r->token == NULL) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_REQUEST, "token is missing");
            return -1;
        }
        size_t hl = 0;
        const char *hint = param(r, "token_type_hint", &hl);
        r->hint = hint == NULL                          ? GH_OAUTH_HINT_NONE
                  : same(hint, hl, "access_token", 12)  ? GH_OAUTH_HINT_ACCESS_TOKEN
                  : same(hint, hl, "refresh_token", 13) ? GH_OAUTH_HINT_REFRESH_TOKEN
                                                        : GH_OAUTH_HINT_OTHER;
    }
    if (az != NULL && read_basic(az->value, az->value_len, r, form_cap, err) < 0)
        return -1;
    return read_client(r, az != NULL, err);
}

int gh_oauth_request_parse(gh_oauth_endpoint_t ep, const gh_oauth_http_t *http,
                           gh_oauth_request_t *out, gh_oauth_error_t *err)
{
    memset(out, 0, sizeof(*out));
    out->endpoint = ep;
    err->code = GH_OAUTH_OK;
    err->status = 200;
    err->desc[0] = '\0';
    if (parse(ep, http, out, err) < 0) {
        gh_oauth_request_dispose(out);
        memset(out, 0, sizeof(*out));
        return -1;
    }
    return 0;
}

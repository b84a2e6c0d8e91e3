/*
 * The API-key endpoints of the admin API (admin/apikeys.h). The work is
 * the store's (gatehouse/store.h) and the documents are the CLI's
 * (gatehouse/store_json.h); this file routes, checks what a request may
 * say, and maps the store's answers to HTTP statuses.
 *
 * Strict by design: an operator's typo must fail loudly, not create a key
 * with defaults. So every body member and query parameter is known, typed
 * and given once; a parameter an operation does not take is refused (a
 * create with ?dry_run=1 does not create anything).
 */
#include "admin/apikeys.h"
#include "admin/clients.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include <gatehouse/pairs.h>
#include <gatehouse/store_json.h>

/* ---- answers ---- */

void gh_admin_reply_dispose(gh_admin_reply_t *r)
{
    if (r->body != NULL)
        OPENSSL_cleanse(r->body, r->len); /* a new key's answer holds the key */
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

/* Dumps doc (taken) as the answer's body, ending in a newline: indented
 * as the CLI prints it, or on one line (errors, as the other admin paths
 * answer). A NULL doc or no memory leaves body NULL. */
static void reply_json(gh_admin_reply_t *r, int status, json_t *doc, size_t flags)
{
    char *s = doc ? json_dumps(doc, flags | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    r->status = status;
    r->body = NULL;
    r->len = 0;
    if (s == NULL)
        return;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (line == NULL) {
        free(s);
        return;
    }
    line[n++] = '\n';
    line[n] = '\0';
    r->body = line;
    r->len = n;
}

static void reply_doc(gh_admin_reply_t *r, int status, json_t *doc)
{
    reply_json(r, status, doc, JSON_INDENT(2));
}

/* Text from a request or the store in a detail: printable ASCII only, so
 * the detail is valid UTF-8 whatever was sent, and a control byte never
 * reaches a terminal that shows the answer. */
static void make_ascii(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

void gh_admin_reply_error(gh_admin_reply_t *r, int status, const char *code, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    make_ascii(detail);
    reply_json(r, status, json_pack("{s:s,s:s}", "error", code, "detail", detail), JSON_COMPACT);
}

/* The store's error as an answer: which status is the contract of
 * docs/admin.md#errors-of-the-api-key-endpoints. */
static void reply_store_error(gh_admin_reply_t *r, int rc, const gh_store_error_t *err)
{
    switch (rc) {
    case -ENOENT:
        gh_admin_reply_error(r, 404, "not_found", "%s", err->msg);
        return;
    case -EINVAL:
        gh_admin_reply_error(r, 400, "bad_request", "%s", err->msg);
        return;
    case -EALREADY:
    case -EAGAIN:
    case -EEXIST:
        gh_admin_reply_error(r, 409, "conflict", "%s", err->msg);
        return;
    default:
        gh_admin_reply_error(r, 503, "service_unavailable", "the key store failed: %s", err->msg);
    }
}

/* A name from a request, for a detail: at most 40 bytes, cut visibly. */
static void shown(const char *s, size_t n, char *out, size_t cap)
{
    snprintf(out, cap, "%.*s%s", (int)(n > 40 ? 40 : n), s, n > 40 ? "..." : "");
    make_ascii(out);
}

/* ---- routing ---- */

int gh_admin_ak_is_path(const char *path, size_t n)
{
    return (n == 8 && memcmp(path, "/apikeys", 8) == 0) ||
           (n > 8 && memcmp(path, "/apikeys/", 9) == 0);
}

static int method_is(const char *m, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(m, want, n) == 0;
}

int gh_admin_ak_route(const char *method, size_t mlen, const char *path, size_t plen,
                      gh_admin_ak_route_t *rt, gh_admin_reply_t *out)
{
    int get = method_is(method, mlen, "GET"), head = method_is(method, mlen, "HEAD");
    int post = method_is(method, mlen, "POST");
    const char *allow;
    memset(rt, 0, sizeof(*rt));
    rt->head = head;
    if (plen == 8) { /* /apikeys */
        if (get || head) {
            rt->op = GH_AK_LIST;
            return 0;
        }
        if (post) {
            rt->op = GH_AK_CREATE;
            rt->body = GH_AK_BODY_JSON;
            return 0;
        }
        allow = "GET, HEAD, POST";
        goto not_allowed;
    }
    const char *rest = path + 9, *end = path + plen;
    size_t seg = (size_t)(end - rest);
    const char *slash = memchr(rest, '/', seg);
    if (slash != NULL)
        seg = (size_t)(slash - rest);
    if (slash == NULL && seg == 6 && memcmp(rest, "import", 6) == 0) {
        if (post) {
            rt->op = GH_AK_IMPORT;
            rt->body = GH_AK_BODY_CSV;
            return 0;
        }
        allow = "POST";
        goto not_allowed;
    }
    char name[64];
    if (seg != GH_APIKEY_ID_LEN) {
        shown(rest, seg, name, sizeof(name));
        gh_admin_reply_error(out, 404, "not_found",
                             "'%s' is not a key id (12 characters of a-z and 2-7); API-key paths: "
                             "/apikeys, /apikeys/import, /apikeys/ID, /apikeys/ID/revoke, "
                             "/apikeys/ID/rotate, /apikeys/ID/usage",
                             name);
        return -1;
    }
    memcpy(rt->id, rest, GH_APIKEY_ID_LEN);
    rt->id[GH_APIKEY_ID_LEN] = '\0';
    if (!gh_apikey_id_valid(rt->id)) {
        shown(rest, seg, name, sizeof(name));
        gh_admin_reply_error(out, 404, "not_found",
                             "'%s' is not a key id (12 characters of a-z and 2-7)", name);
        return -1;
    }
    const char *sub = slash ? slash + 1 : NULL;
    size_t sublen = slash ? (size_t)(end - sub) : 0;
    if (sub == NULL) {
        if (get || head) {
            rt->op = GH_AK_SHOW;
            return 0;
        }
        allow = "GET, HEAD";
        goto not_allowed;
    }
    if (sublen == 6 && memcmp(sub, "revoke", 6) == 0) {
        rt->op = GH_AK_REVOKE;
        rt->body = GH_AK_BODY_JSON;
        allow = "POST";
        if (post)
            return 0;
        goto not_allowed;
    }
    if (sublen == 6 && memcmp(sub, "rotate", 6) == 0) {
        rt->op = GH_AK_ROTATE;
        rt->body = GH_AK_BODY_JSON;
        allow = "POST";
        if (post)
            return 0;
        goto not_allowed;
    }
    if (sublen == 5 && memcmp(sub, "usage", 5) == 0) {
        rt->op = GH_AK_USAGE;
        allow = "GET, HEAD";
        if (get || head)
            return 0;
        goto not_allowed;
    }
    shown(sub, sublen, name, sizeof(name));
    gh_admin_reply_error(out, 404, "not_found",
                         "no API-key operation '%s' (a key has /revoke, /rotate and /usage)", name);
    return -1;
not_allowed:
    gh_admin_reply_error(out, 405, "method_not_allowed", "this path takes %s", allow);
    if (out->body != NULL)
        snprintf(out->extra, sizeof(out->extra), "allow: %s\r\n", allow);
    return -1;
}

int gh_admin_ak_check_type(const gh_admin_ak_route_t *rt, const char *ctype, size_t n,
                           gh_admin_reply_t *out)
{
    const char *want = rt->body == GH_AK_BODY_CSV ? "text/csv" : "application/json";
    /* The media type is the part before any parameter (RFC 9110 section
     * 8.3.1), compared case-insensitively; parameters (charset) are not
     * read: JSON is UTF-8 (RFC 8259), and the CSV parser checks bytes. */
    size_t m = 0;
    if (ctype != NULL) {
        while (m < n && ctype[m] != ';' && ctype[m] != ' ' && ctype[m] != '\t')
            m++;
        if (m == strlen(want) && strncasecmp(ctype, want, m) == 0)
            return 0;
    }
    gh_admin_reply_error(out, 415, "unsupported_media_type",
                         "this request's body must be sent with content-type: %s", want);
    return -1;
}

/* ---- JSON bodies ---- */

static const char *json_problem(const json_error_t *e)
{
    switch (json_error_code(e)) {
    case json_error_out_of_memory:
        return "out of memory";
    case json_error_stack_overflow:
        return "nested too deeply";
    case json_error_invalid_utf8:
        return "not UTF-8";
    case json_error_premature_end_of_input:
        return "it ends too early";
    case json_error_end_of_input_expected:
        return "something follows the object";
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return "a \\u0000 escape";
    case json_error_duplicate_key:
        return "a member name appears twice";
    case json_error_numeric_overflow:
        return "a number out of range";
    case json_error_wrong_type:
        return "it is not an object";
    default:
        return "invalid syntax";
    }
}

/* One JSON object from body, or NULL with why. Only names in `known` may
 * appear (what: the operation, for the message). */
static json_t *load_object(const char *body, size_t len, const char *const *known, const char *what,
                           char *why, size_t cap, int *rc)
{
    json_error_t e;
    *rc = -EINVAL;
    /* jansson reads past a NUL that follows a number or a literal rather
     * than refusing it (tests/unit/jose/test_json.c): refused here first. */
    if (memchr(body, '\0', len) != NULL) {
        snprintf(why, cap, "the body holds a NUL byte");
        return NULL;
    }
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (doc == NULL) {
        if (json_error_code(&e) == json_error_out_of_memory)
            *rc = -ENOMEM;
        snprintf(why, cap, "the body is not acceptable JSON: %s (line %d, column %d)",
                 json_problem(&e), e.line, e.column);
        return NULL;
    }
    if (!json_is_object(doc)) {
        snprintf(why, cap, "the body must be a JSON object");
        json_decref(doc);
        return NULL;
    }
    const char *name;
    json_t *v;
    json_object_foreach(doc, name, v)
    {
        size_t i = 0;
        while (known[i] != NULL && strcmp(known[i], name) != 0)
            i++;
        if (known[i] == NULL) {
            char shown_name[64];
            char list[160] = "";
            for (size_t k = 0; known[k] != NULL; k++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", k ? ", " : "",
                         known[k]);
            shown(name, strlen(name), shown_name, sizeof(shown_name));
            if (known[0] == NULL)
                snprintf(why, cap, "unknown member '%s': %s takes an empty object or no body",
                         shown_name, what);
            else
                snprintf(why, cap, "unknown member '%s': %s takes %s", shown_name, what, list);
            json_decref(doc);
            return NULL;
        }
    }
    *rc = 0;
    return doc;
}

/* Member name of doc as a string: 1 and *out, 0 when absent, -1 (why) when
 * it is not a string. */
static int get_string(json_t *doc, const char *name, const char **out, char *why, size_t cap)
{
    json_t *v = json_object_get(doc, name);
    if (v == NULL)
        return 0;
    if (!json_is_string(v)) {
        snprintf(why, cap, "%s must be a string", name);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

/* Member name as a key's lifetime: "90d", or "never" (*out 0); 1 when
 * present, 0 absent, -1 (why) refused. */
static int get_lifetime(json_t *doc, const char *name, int64_t *out, char *why, size_t cap)
{
    const char *s;
    int r = get_string(doc, name, &s, why, cap);
    if (r <= 0)
        return r;
    if (strcmp(s, "never") == 0) {
        *out = 0;
        return 1;
    }
    if (gh_apikey_duration_parse(s, out) != 0 || *out == 0) {
        char v[64];
        shown(s, strlen(s), v, sizeof(v));
        snprintf(why, cap,
                 "%s must be a duration such as \"90d\", \"12h\" or \"2w\", or \"never\"; not "
                 "\"%s\"",
                 name, v);
        return -1;
    }
    return 1;
}

void gh_admin_ak_create_dispose(gh_admin_ak_create_t *c)
{
    json_decref(c->doc);
    free(c->scopes);
    memset(c, 0, sizeof(*c));
}

/* The scopes array joined for gh_apikey_scopes_normalize, which checks
 * each scope; an element holding a separator would read as two scopes. */
static int join_scopes(json_t *a, char **out, char *why, size_t cap)
{
    size_t n = json_array_size(a), total = 1;
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_string(e)) {
            snprintf(why, cap, "scopes[%zu] must be a string", i);
            return -EINVAL;
        }
        const char *s = json_string_value(e);
        if (s[0] == '\0' || strpbrk(s, " ,\t") != NULL) {
            snprintf(why, cap, "scopes[%zu] must be one scope: not empty, without spaces or commas",
                     i);
            return -EINVAL;
        }
        total += strlen(s) + 1;
    }
    char *p = malloc(total);
    if (p == NULL)
        return -ENOMEM;
    p[0] = '\0';
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        size_t l = strlen(s);
        if (i > 0)
            p[at++] = ',';
        memcpy(p + at, s, l);
        at += l;
        p[at] = '\0';
    }
    *out = p;
    return 0;
}

int gh_admin_ak_parse_create(const char *body, size_t len, gh_admin_ak_create_t *out, char *why,
                             size_t cap)
{
    static const char *const known[] = {"consumer",    "plan",    "scopes",
                                        "description", "expires", NULL};
    int rc;
    memset(out, 0, sizeof(*out));
    if (len == 0) {
        snprintf(why, cap,
                 "creating a key needs a JSON body: {\"consumer\": \"NAME\", \"plan\": ..., "
                 "\"scopes\": [...], \"description\": ..., \"expires\": \"90d\"}");
        return -EINVAL;
    }
    out->doc = load_object(body, len, known, "create", why, cap, &rc);
    if (out->doc == NULL)
        return rc;
    rc = -EINVAL;
    int r = get_string(out->doc, "consumer", &out->consumer, why, cap);
    if (r == 0)
        snprintf(why, cap, "consumer is required");
    if (r <= 0)
        goto fail;
    if (get_string(out->doc, "plan", &out->plan, why, cap) < 0 ||
        get_string(out->doc, "description", &out->description, why, cap) < 0 ||
        get_lifetime(out->doc, "expires", &out->expires_in, why, cap) < 0)
        goto fail;
    json_t *sc = json_object_get(out->doc, "scopes");
    if (sc != NULL) {
        if (!json_is_array(sc)) {
            snprintf(why, cap, "scopes must be an array of strings");
            goto fail;
        }
        if ((rc = join_scopes(sc, &out->scopes, why, cap)) != 0)
            goto fail;
    }
    return 0;
fail:
    gh_admin_ak_create_dispose(out);
    return rc;
}

int gh_admin_ak_parse_rotate(const char *body, size_t len, gh_apikey_rotate_t *out, char *why,
                             size_t cap)
{
    static const char *const known[] = {"grace", "expires", NULL};
    int rc;
    out->grace = 24 * 3600;
    out->expires_in = -1;
    if (len == 0)
        return 0;
    json_t *doc = load_object(body, len, known, "rotate", why, cap, &rc);
    if (doc == NULL)
        return rc;
    const char *g;
    int r = get_string(doc, "grace", &g, why, cap);
    rc = -EINVAL;
    if (r > 0 && gh_apikey_duration_parse(g, &out->grace) != 0) {
        char v[64];
        shown(g, strlen(g), v, sizeof(v));
        snprintf(why, cap, "grace must be a duration such as \"24h\" or \"0\"; not \"%s\"", v);
        r = -1;
    }
    if (r >= 0 && get_lifetime(doc, "expires", &out->expires_in, why, cap) >= 0)
        rc = 0;
    json_decref(doc);
    return rc;
}

int gh_admin_ak_parse_revoke(const char *body, size_t len, char *why, size_t cap)
{
    static const char *const known[] = {NULL};
    int rc;
    if (len == 0)
        return 0;
    json_t *doc = load_object(body, len, known, "revoke", why, cap, &rc);
    json_decref(doc);
    return rc;
}

/* ---- query strings ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* s[0..n) percent-decoded, '+' as a space, into a new string; -EINVAL for
 * a '%' without two hex digits or a NUL. */
static int decode(const char *s, size_t n, char **out)
{
    char *d = malloc(n + 1), *o = d;
    if (d == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int h = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int l = h >= 0 ? hexval((unsigned char)s[i + 2]) : -1;
            if (l < 0 || (h == 0 && l == 0)) {
                free(d);
                return -EINVAL;
            }
            c = (char)(h << 4 | l);
            i += 2;
        }
        *o++ = c;
    }
    *o = '\0';
    *out = d;
    return 0;
}

void gh_admin_ak_query_dispose(gh_admin_ak_query_t *q)
{
    for (size_t i = 0; i < q->num_strings; i++)
        free(q->strings[i]);
    free(q->strings);
    free(q->plan_map);
    memset(q, 0, sizeof(*q));
}

static const char *op_name(gh_admin_ak_op_t op)
{
    switch (op) {
    case GH_AK_LIST:
        return "listing keys";
    case GH_AK_CREATE:
        return "create";
    case GH_AK_IMPORT:
        return "import";
    case GH_AK_SHOW:
        return "showing a key";
    case GH_AK_REVOKE:
        return "revoke";
    case GH_AK_ROTATE:
        return "rotate";
    case GH_AK_USAGE:
        return "usage";
    }
    return "?";
}

static const char *op_params(gh_admin_ak_op_t op)
{
    switch (op) {
    case GH_AK_LIST:
        return "consumer";
    case GH_AK_IMPORT:
        return "plan_map, plan and dry_run";
    case GH_AK_USAGE:
        return "days";
    default:
        return NULL;
    }
}

int gh_admin_ak_parse_query(gh_admin_ak_op_t op, const char *q, size_t n, gh_admin_ak_query_t *out,
                            char *why, size_t cap)
{
    gh_pairs_t it;
    gh_pair_t pr;
    int seen_consumer = 0, seen_days = 0, seen_plan = 0, seen_dry = 0;
    memset(out, 0, sizeof(*out));
    out->days = 7;
    gh_pairs_init(&it, q, n, '&');
    while (gh_pairs_next(&it, &pr)) {
        char name[64];
        int *seen = NULL;
        shown(pr.name, pr.name_len, name, sizeof(name));
        if (op == GH_AK_LIST && gh_pair_name_is(&pr, "consumer", 8))
            seen = &seen_consumer;
        else if (op == GH_AK_USAGE && gh_pair_name_is(&pr, "days", 4))
            seen = &seen_days;
        else if (op == GH_AK_IMPORT && gh_pair_name_is(&pr, "plan", 4))
            seen = &seen_plan;
        else if (op == GH_AK_IMPORT && gh_pair_name_is(&pr, "dry_run", 7))
            seen = &seen_dry;
        else if (!(op == GH_AK_IMPORT && gh_pair_name_is(&pr, "plan_map", 8))) {
            const char *takes = op_params(op);
            if (takes != NULL)
                snprintf(why, cap, "unknown query parameter '%s': %s takes %s", name, op_name(op),
                         takes);
            else
                snprintf(why, cap, "unknown query parameter '%s': %s takes none", name,
                         op_name(op));
            goto invalid;
        }
        if (seen != NULL && (*seen)++) {
            snprintf(why, cap, "query parameter '%s' is given twice", name);
            goto invalid;
        }
        if (!pr.has_value) {
            snprintf(why, cap, "query parameter '%s' needs a value", name);
            goto invalid;
        }
        if (out->num_strings % 16 == 0) {
            char **ns = realloc(out->strings, (out->num_strings + 16) * sizeof(*ns));
            if (ns == NULL)
                goto oom;
            out->strings = ns;
        }
        char *v;
        int rc = decode(pr.value, pr.value_len, &v);
        if (rc == -ENOMEM)
            goto oom;
        if (rc != 0) {
            snprintf(why, cap,
                     "query parameter '%s': a %% must be followed by two hex digits, and "
                     "%%00 is refused",
                     name);
            goto invalid;
        }
        out->strings[out->num_strings++] = v;
        if (seen == &seen_consumer) {
            out->consumer = v;
        } else if (seen == &seen_days) {
            char *end;
            long d = strtol(v, &end, 10);
            if (v[0] < '0' || v[0] > '9' || *end != '\0' || d < 1 || d > GH_APIKEY_USAGE_MAX_DAYS) {
                snprintf(why, cap, "days must be a number from 1 to %d", GH_APIKEY_USAGE_MAX_DAYS);
                goto invalid;
            }
            out->days = (unsigned)d;
        } else if (seen == &seen_plan) {
            const char *bad = gh_apikey_check_plan(v);
            if (bad != NULL) {
                snprintf(why, cap, "plan: the plan %s", bad);
                goto invalid;
            }
            out->plan = v;
        } else if (seen == &seen_dry) {
            if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
                out->dry_run = 1;
            else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
                out->dry_run = 0;
            else {
                snprintf(why, cap, "dry_run must be 1, true, 0 or false");
                goto invalid;
            }
        } else { /* plan_map=USAGEPLANID=PLAN */
            char *eq = strchr(v, '=');
            if (eq == NULL || eq == v || eq[1] == '\0') {
                snprintf(why, cap, "plan_map must be USAGEPLANID=PLAN");
                goto invalid;
            }
            *eq = '\0';
            const char *bad = gh_apikey_check_plan(eq + 1);
            char id[64];
            shown(v, strlen(v), id, sizeof(id));
            if (bad != NULL) {
                snprintf(why, cap, "plan_map %s: the plan %s", id, bad);
                goto invalid;
            }
            if (out->num_plan_map == GH_ADMIN_AK_MAX_PLAN_MAP) {
                snprintf(why, cap, "more than %d plan_map parameters", GH_ADMIN_AK_MAX_PLAN_MAP);
                goto invalid;
            }
            for (size_t k = 0; k < out->num_plan_map; k++)
                if (strcmp(out->plan_map[k].usage_plan_id, v) == 0) {
                    snprintf(why, cap, "usage plan '%s' is mapped twice", id);
                    goto invalid;
                }
            if (out->num_plan_map % 16 == 0) {
                gh_apikey_plan_map_t *m =
                    realloc(out->plan_map, (out->num_plan_map + 16) * sizeof(*m));
                if (m == NULL)
                    goto oom;
                out->plan_map = m;
            }
            out->plan_map[out->num_plan_map].usage_plan_id = v;
            out->plan_map[out->num_plan_map++].plan = eq + 1;
        }
    }
    return 0;
oom:
    gh_admin_ak_query_dispose(out);
    return -ENOMEM;
invalid:
    gh_admin_ak_query_dispose(out);
    return -EINVAL;
}

/* ---- the operations ---- */

static void oom(gh_admin_reply_t *r)
{
    gh_admin_reply_error(r, 503, "service_unavailable", "out of memory");
}

static void do_list(gh_store_t *st, const gh_admin_ak_query_t *q, int64_t now,
                    gh_admin_reply_t *out)
{
    gh_apikey_t *keys;
    size_t n;
    gh_store_error_t err;
    int rc = gh_store_key_list(st, q->consumer, &keys, &n, &err);
    if (rc != 0) {
        reply_store_error(out, rc, &err);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        if (json_array_append_new(a, gh_apikey_json(&keys[i], now)) != 0) {
            json_decref(a);
            a = NULL;
        }
    gh_apikey_list_free(keys, n);
    reply_doc(out, 200, a);
}

/* The answer for a key just made: shown once, so never cached (every
 * admin answer has cache-control: no-store). */
static void reply_new_key(gh_admin_reply_t *out, const gh_apikey_t *k, char *key, int64_t now)
{
    reply_doc(out, 201, gh_apikey_json_with_key(k, key, now));
    OPENSSL_cleanse(key, GH_APIKEY_LEN + 1);
    if (out->body != NULL)
        snprintf(out->extra, sizeof(out->extra), "location: /apikeys/%s\r\n", k->id);
}

static void do_create(gh_store_t *st, const char *body, size_t len, int64_t now,
                      gh_admin_reply_t *out)
{
    gh_admin_ak_create_t c;
    char why[400];
    int rc = gh_admin_ak_parse_create(body, len, &c, why, sizeof(why));
    if (rc == -ENOMEM) {
        oom(out);
        return;
    }
    if (rc != 0) {
        gh_admin_reply_error(out, 400, "bad_request", "%s", why);
        return;
    }
    gh_apikey_spec_t spec = {c.consumer, c.plan, c.scopes, c.description, c.expires_in};
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t k;
    gh_store_error_t err;
    rc = gh_store_key_create(st, &spec, now, key, &k, &err);
    gh_admin_ak_create_dispose(&c);
    if (rc != 0) {
        OPENSSL_cleanse(key, sizeof(key));
        reply_store_error(out, rc, &err);
        return;
    }
    reply_new_key(out, &k, key, now);
    gh_apikey_dispose(&k);
}

static void do_show(gh_store_t *st, const char *id, int64_t now, int status, gh_admin_reply_t *out)
{
    gh_apikey_t k;
    gh_store_error_t err;
    int rc = gh_store_key_get(st, id, &k, &err);
    if (rc != 0) {
        reply_store_error(out, rc, &err);
        return;
    }
    reply_doc(out, status, gh_apikey_json(&k, now));
    gh_apikey_dispose(&k);
}

static void do_revoke(gh_store_t *st, const char *id, const char *body, size_t len, int64_t now,
                      gh_admin_reply_t *out)
{
    char why[400];
    int rc = gh_admin_ak_parse_revoke(body, len, why, sizeof(why));
    if (rc != 0) {
        if (rc == -ENOMEM)
            oom(out);
        else
            gh_admin_reply_error(out, 400, "bad_request", "%s", why);
        return;
    }
    gh_store_error_t err;
    rc = gh_store_key_revoke(st, id, now, &err);
    if (rc != 0) {
        reply_store_error(out, rc, &err);
        return;
    }
    do_show(st, id, now, 200, out);
}

static void do_rotate(gh_store_t *st, const char *id, const char *body, size_t len, int64_t now,
                      gh_admin_reply_t *out)
{
    gh_apikey_rotate_t ro;
    char why[400];
    int rc = gh_admin_ak_parse_rotate(body, len, &ro, why, sizeof(why));
    if (rc != 0) {
        if (rc == -ENOMEM)
            oom(out);
        else
            gh_admin_reply_error(out, 400, "bad_request", "%s", why);
        return;
    }
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t k;
    gh_store_error_t err;
    rc = gh_store_key_rotate(st, id, &ro, now, key, &k, &err);
    if (rc != 0) {
        OPENSSL_cleanse(key, sizeof(key));
        reply_store_error(out, rc, &err);
        return;
    }
    reply_new_key(out, &k, key, now);
    gh_apikey_dispose(&k);
}

static void do_usage(gh_store_t *st, const char *id, const gh_admin_ak_query_t *q, int64_t now,
                     gh_admin_reply_t *out)
{
    gh_apikey_usage_t *u = malloc(sizeof(*u));
    gh_store_error_t err;
    if (u == NULL) {
        oom(out);
        return;
    }
    int rc = gh_store_usage_report(st, id, q->days, now, u, &err);
    if (rc != 0)
        reply_store_error(out, rc, &err);
    else
        reply_doc(out, 200, gh_apikey_usage_json(u));
    if (rc == 0)
        gh_apikey_usage_dispose(u);
    free(u);
}

/* The parser's messages name the CLI's option (--plan-map ID=PLAN); here
 * the same thing is the query parameter plan_map=ID=PLAN. A message that
 * no longer says it is left as it is. */
static void name_query_parameter(json_t *errors)
{
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        const char *m = json_string_value(json_object_get(e, "message"));
        const char *at = m ? strstr(m, "--plan-map ") : NULL;
        if (at == NULL)
            continue;
        char buf[256];
        snprintf(buf, sizeof(buf), "%.*splan_map=%s", (int)(at - m), m, at + 11);
        json_object_set_new(e, "message", json_string(buf));
    }
}

/* 400 with every refused row: {"error", "detail", "errors": [{line,
 * message}], "total_errors"}. */
static void reply_rows_refused(gh_admin_reply_t *out, const char *detail,
                               const gh_apikey_csv_error_t *e, size_t n, size_t total)
{
    json_t *errors = gh_apikey_csv_errors_json(e, n);
    if (errors != NULL)
        name_query_parameter(errors);
    reply_doc(out, 400,
              json_pack("{s:s,s:s,s:o,s:I}", "error", "bad_request", "detail", detail, "errors",
                        errors, "total_errors", (json_int_t)total));
}

static void do_import(gh_store_t *st, const gh_admin_ak_query_t *q, const char *body, size_t len,
                      int64_t now, gh_admin_reply_t *out)
{
    gh_apikey_csv_opts_t co = {q->plan_map, q->num_plan_map, q->plan};
    gh_apikey_csv_t csv;
    char detail[128];
    if (gh_apikey_csv_parse(body, len, &co, &csv) != 0) {
        gh_apikey_csv_dispose(&csv);
        oom(out);
        return;
    }
    if (csv.total_errors != 0) {
        snprintf(detail, sizeof(detail), "%zu error%s in the file; nothing was imported",
                 csv.total_errors, csv.total_errors == 1 ? "" : "s");
        reply_rows_refused(out, detail, csv.errors, csv.num_errors, csv.total_errors);
        gh_apikey_csv_dispose(&csv);
        return;
    }
    gh_store_import_result_t res;
    gh_store_error_t err;
    size_t rows = csv.num_rows;
    int rc = gh_store_key_import(st, csv.rows, csv.num_rows, now, q->dry_run, &res, &err);
    gh_apikey_csv_dispose(&csv);
    if (rc == -EINVAL && res.total_errors > 0) {
        snprintf(detail, sizeof(detail), "%zu row%s refused by the store; nothing was imported",
                 res.total_errors, res.total_errors == 1 ? "" : "s");
        reply_rows_refused(out, detail, res.errors, res.num_errors, res.total_errors);
    } else if (rc != 0) {
        reply_store_error(out, rc, &err);
    } else {
        reply_doc(out, 200, gh_apikey_import_json(&res, rows, q->dry_run));
    }
    free(res.errors);
}

void gh_admin_ak_handle(gh_store_t *st, const gh_admin_ak_route_t *rt, const char *query,
                        size_t qlen, const char *body, size_t blen, int64_t now,
                        gh_admin_reply_t *out)
{
    gh_admin_ak_query_t q;
    char why[400];
    memset(out, 0, sizeof(*out));
    int rc = gh_admin_ak_parse_query(rt->op, query, qlen, &q, why, sizeof(why));
    if (rc != 0) {
        if (rc == -ENOMEM)
            oom(out);
        else
            gh_admin_reply_error(out, 400, "bad_request", "%s", why);
        return;
    }
    switch (rt->op) {
    case GH_AK_LIST:
        do_list(st, &q, now, out);
        break;
    case GH_AK_CREATE:
        do_create(st, body, blen, now, out);
        break;
    case GH_AK_IMPORT:
        do_import(st, &q, body, blen, now, out);
        break;
    case GH_AK_SHOW:
        do_show(st, rt->id, now, 200, out);
        break;
    case GH_AK_REVOKE:
        do_revoke(st, rt->id, body, blen, now, out);
        break;
    case GH_AK_ROTATE:
        do_rotate(st, rt->id, body, blen, now, out);
        break;
    case GH_AK_USAGE:
        do_usage(st, rt->id, &q, now, out);
        break;
    }
    gh_admin_ak_query_dispose(&q);
}

/* ---- shared with admin/clients.c (admin/clients.h) ---- */

json_t *gh_admin_json_object(const char *body, size_t len, const char *const *known,
                             const char *what, char *why, size_t cap, int *rc)
{
    return load_object(body, len, known, what, why, cap, rc);
}

void gh_admin_reply_doc(gh_admin_reply_t *r, int status, json_t *doc)
{
    reply_doc(r, status, doc);
}

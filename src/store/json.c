/*
 * API keys as JSON (gatehouse/store_json.h): one rendering for the CLI's
 * --json output and the admin API, and the usage report both show.
 */
#include <gatehouse/store_json.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/backend.h"

/* Sets name to v (taken) in o; a NULL v (out of memory) or a failed set
 * marks *ok 0, so a document is built whole or not at all. */
static void set(json_t *o, const char *name, json_t *v, int *ok)
{
    if (v == NULL || json_object_set_new(o, name, v) != 0)
        *ok = 0;
}

static json_t *time_json(int64_t t)
{
    if (t == 0)
        return json_null();
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return json_integer(t);
    return json_string(buf);
}

static json_t *str_json(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The stored form of scopes ("a b") as an array. */
static json_t *scopes_json(const char *s)
{
    json_t *a = json_array();
    for (const char *p = s ? s : ""; a != NULL && *p;) {
        size_t n = strcspn(p, " ");
        if (n > 0 && json_array_append_new(a, json_stringn(p, n)) != 0) {
            json_decref(a);
            return NULL;
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    return a;
}

json_t *gh_apikey_json(const gh_apikey_t *k, int64_t now)
{
    json_t *o = json_object();
    int ok = o != NULL;
    if (!ok)
        return NULL;
    set(o, "id", json_string(k->id), &ok);
    set(o, "state", json_string(gh_apikey_state_name(gh_apikey_state(k, now))), &ok);
    set(o, "consumer", str_json(k->consumer), &ok);
    set(o, "plan", str_json(k->plan), &ok);
    set(o, "scopes", scopes_json(k->scopes), &ok);
    set(o, "description", str_json(k->description), &ok);
    set(o, "enabled", json_boolean(k->enabled), &ok);
    set(o, "source", json_string(k->source == GH_APIKEY_IMPORTED ? "aws-import" : "generated"),
        &ok);
    set(o, "created", time_json(k->created_at), &ok);
    set(o, "expires", time_json(k->expires_at), &ok);
    set(o, "revoked", time_json(k->revoked_at), &ok);
    set(o, "replaced_by", k->replaced_by[0] ? json_string(k->replaced_by) : json_null(), &ok);
    set(o, "grace_until", time_json(k->grace_until), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *gh_apikey_json_with_key(const gh_apikey_t *k, const char *key, int64_t now)
{
    json_t *o = gh_apikey_json(k, now);
    int ok = o != NULL;
    if (ok)
        set(o, "key", json_string(key), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- OAuth clients ---- */

json_t *gh_client_json(const gh_client_t *c, int64_t now)
{
    json_t *o = json_object();
    char methods[64];
    int ok = o != NULL;
    if (!ok)
        return NULL;
    json_t *jwks = NULL;
    if (c->jwks != NULL) {
        /* checked when registered; a record edited by other means that no
         * longer parses is shown as its text */
        jwks = json_loads(c->jwks, JSON_REJECT_DUPLICATES, NULL);
        if (jwks == NULL)
            jwks = json_string(c->jwks);
    } else {
        jwks = json_null();
    }
    set(o, "client_id", json_string(c->id), &ok);
    set(o, "name", str_json(c->name), &ok);
    set(o, "state", json_string(gh_client_state_name(gh_client_state(c, now))), &ok);
    set(o, "scopes", scopes_json(c->scopes), &ok);
    set(o, "audiences", scopes_json(c->audiences), &ok);
    set(o, "auth_methods",
        scopes_json(gh_client_auth_format(c->auth_methods, methods, sizeof(methods))), &ok);
    set(o, "jwks", jwks, &ok);
    set(o, "token_ttl", c->token_ttl ? json_integer(c->token_ttl) : json_null(), &ok);
    set(o, "has_secret", json_boolean(c->has_secret), &ok);
    set(o, "created", time_json(c->created_at), &ok);
    set(o, "revoked", time_json(c->revoked_at), &ok);
    set(o, "secret_rotated", time_json(c->secret_rotated_at), &ok);
    set(o, "previous_secret_until",
        c->prev_valid_until > now ? time_json(c->prev_valid_until) : json_null(), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *gh_client_json_with_secret(const gh_client_t *c, const char *secret, int64_t now)
{
    json_t *o = gh_client_json(c, now);
    int ok = o != NULL;
    if (ok && secret != NULL && secret[0] != '\0')
        set(o, "client_secret", json_string(secret), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- usage ---- */

static int64_t days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + (int64_t)doe - 719468;
}

void gh_apikey_day_format(int64_t d, char *buf, size_t cap)
{
    time_t dt = (time_t)(d * 86400);
    struct tm dm;
    if (gmtime_r(&dt, &dm) == NULL || strftime(buf, cap, "%Y-%m-%d", &dm) == 0)
        snprintf(buf, cap, "?");
}

int gh_store_usage_report(gh_store_t *st, const char *id, unsigned days, int64_t now,
                          gh_apikey_usage_t *out, gh_store_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (days < 1 || days > GH_APIKEY_USAGE_MAX_DAYS)
        return gh_store_fail(err, -EINVAL, "days is 1 to %d", GH_APIKEY_USAGE_MAX_DAYS);
    if (now < 0)
        return gh_store_fail(err, -EINVAL, "the time is before 1970");
    int64_t today = now / 86400;
    time_t tt = (time_t)now;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL)
        return gh_store_fail(err, -EINVAL, "the time cannot be read as a date");
    int64_t week = today - (tm.tm_wday + 6) % 7; /* Monday */
    int64_t month = days_from_civil(tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, 1);
    int64_t first = today - (days - 1), from = first;
    if (week < from)
        from = week;
    if (month < from)
        from = month;
    /* At most 366 days back, and a month's start at most 30 before today. */
    uint64_t counts[GH_APIKEY_USAGE_MAX_DAYS + 31];
    int rc = gh_store_key_get(st, id, &out->key, err);
    if (rc == 0)
        rc = gh_store_usage_get(st, id, from, today, counts, err);
    if (rc != 0) {
        gh_apikey_dispose(&out->key);
        return rc;
    }
    out->today = counts[today - from];
    for (int64_t d = week; d <= today; d++)
        out->week += counts[d - from];
    for (int64_t d = month; d <= today; d++)
        out->month += counts[d - from];
    out->days = days;
    out->first_day = first;
    for (unsigned i = 0; i < days; i++)
        out->per_day[i] = counts[first + i - from];
    return 0;
}

void gh_apikey_usage_dispose(gh_apikey_usage_t *u)
{
    gh_apikey_dispose(&u->key);
}

json_t *gh_apikey_usage_json(const gh_apikey_usage_t *u)
{
    json_t *j = json_object(), *per = json_array();
    int ok = j != NULL && per != NULL;
    if (!ok) {
        json_decref(j);
        json_decref(per);
        return NULL;
    }
    set(j, "id", json_string(u->key.id), &ok);
    set(j, "consumer", json_string(u->key.consumer), &ok);
    set(j, "plan", str_json(u->key.plan), &ok);
    set(j, "today", json_integer((json_int_t)u->today), &ok);
    set(j, "week", json_integer((json_int_t)u->week), &ok);
    set(j, "month", json_integer((json_int_t)u->month), &ok);
    for (unsigned i = 0; ok && i < u->days; i++) {
        char buf[16];
        json_t *e = json_object();
        gh_apikey_day_format(u->first_day + i, buf, sizeof(buf));
        ok = e != NULL;
        if (ok) {
            set(e, "day", json_string(buf), &ok);
            set(e, "count", json_integer((json_int_t)u->per_day[i]), &ok);
        }
        if (e != NULL && json_array_append_new(per, e) != 0)
            ok = 0;
    }
    set(j, "days", per, &ok);
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- import ---- */

json_t *gh_apikey_import_json(const gh_store_import_result_t *res, size_t rows, int dry_run)
{
    return json_pack("{s:b,s:I,s:I,s:I}", "dry_run", dry_run, "rows", (json_int_t)rows, "created",
                     (json_int_t)res->created, "updated", (json_int_t)res->updated);
}

json_t *gh_apikey_csv_errors_json(const gh_apikey_csv_error_t *e, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        json_t *o = e[i].line
                        ? json_pack("{s:I,s:s}", "line", (json_int_t)e[i].line, "message", e[i].msg)
                        : json_pack("{s:n,s:s}", "line", "message", e[i].msg);
        if (o == NULL || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* ---- durations ---- */

int gh_apikey_duration_parse(const char *s, int64_t *out)
{
    char *end;
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return -EINVAL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || v < 0)
        return -EINVAL;
    int64_t unit;
    if (strcmp(end, "s") == 0 || (*end == '\0' && v == 0))
        unit = 1;
    else if (strcmp(end, "m") == 0)
        unit = 60;
    else if (strcmp(end, "h") == 0)
        unit = 3600;
    else if (strcmp(end, "d") == 0)
        unit = 86400;
    else if (strcmp(end, "w") == 0)
        unit = 7 * 86400;
    else
        return -EINVAL;
    if (v > INT64_MAX / unit)
        return -EINVAL;
    *out = (int64_t)v * unit;
    return 0;
}

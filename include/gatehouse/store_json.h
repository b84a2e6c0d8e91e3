/*
 * API keys as JSON documents, and the reports behind them: what
 * `gatehouse apikey ... --json` prints and what the admin API answers
 * (docs/admin.md#api-keys) come from these functions, so that the two
 * never drift apart. Never a key's hash; the key itself only in the
 * document of a key just made (create, rotate).
 *
 * JSON values are new references (json_decref them), NULL when out of
 * memory.
 */
#ifndef GATEHOUSE_STORE_JSON_H
#define GATEHOUSE_STORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <gatehouse/store.h>

/* A key's record: id, state (at now), consumer, plan, scopes (an array),
 * description, enabled, source ("generated" or "aws-import"), created,
 * expires, revoked, replaced_by, grace_until. Times are RFC 3339 UTC
 * strings ("2026-12-05T21:23:00Z"), null when unset. */
json_t *gh_apikey_json(const gh_apikey_t *k, int64_t now);
/* The same with "key": the key itself, for the one time it is shown. */
json_t *gh_apikey_json_with_key(const gh_apikey_t *k, const char *key, int64_t now);

/* A key's usage (apikey usage, GET /apikeys/ID/usage): counts for today,
 * this week (since Monday) and this month, UTC, and one per day for the
 * last `days` days. */
#define GH_APIKEY_USAGE_MAX_DAYS 366
typedef struct {
    gh_apikey_t key; /* its record */
    uint64_t today, week, month;
    unsigned days;
    int64_t first_day;                          /* unix day of per_day[0]; the last is today */
    uint64_t per_day[GH_APIKEY_USAGE_MAX_DAYS]; /* [0 .. days) */
} gh_apikey_usage_t;

/* Fills out for key id at now (days: 1 to GH_APIKEY_USAGE_MAX_DAYS, else
 * -EINVAL). -ENOENT when there is no such key. Dispose out after 0. */
int gh_store_usage_report(gh_store_t *st, const char *id, unsigned days, int64_t now,
                          gh_apikey_usage_t *out, gh_store_error_t *err);
void gh_apikey_usage_dispose(gh_apikey_usage_t *u);
/* {id, consumer, plan, today, week, month, days: [{day: "YYYY-MM-DD", count}]} */
json_t *gh_apikey_usage_json(const gh_apikey_usage_t *u);
/* "YYYY-MM-DD" of unix day d into buf (at least 16 bytes). */
void gh_apikey_day_format(int64_t d, char *buf, size_t cap);

/* An import's outcome: {dry_run, rows, created, updated}. */
json_t *gh_apikey_import_json(const gh_store_import_result_t *res, size_t rows, int dry_run);
/* Refused rows: [{line, message}] (line null for the whole file). */
json_t *gh_apikey_csv_errors_json(const gh_apikey_csv_error_t *e, size_t n);

/* A client's record (client list|show --json, GET /clients): client_id,
 * name, state (at now), scopes, audiences, auth_methods (arrays), jwks
 * (the client's public keys as a JSON value, null when none), token_ttl
 * (seconds, null: the issuer's default), created, revoked,
 * secret_rotated, previous_secret_until (null unless a previous secret
 * still works at now), has_secret. Never a hash. */
json_t *gh_client_json(const gh_client_t *c, int64_t now);
/* The same with "client_secret" (when secret is not ""), for the one time
 * it is shown (create, rotate-secret). */
json_t *gh_client_json_with_secret(const gh_client_t *c, const char *secret, int64_t now);

/* A duration as the CLI and the admin API take it: a whole number and s,
 * m, h, d or w ("90d", "12h", "2w"), or "0". Returns 0 and *out seconds,
 * or -EINVAL. */
int gh_apikey_duration_parse(const char *s, int64_t *out);

#endif

/*
 * API keys without a store: their format, their hash, the checks of the
 * metadata kept with them, and the parser of AWS API Gateway's key import
 * file. Pure functions (no I/O, no globals), callable from any thread.
 * The store that keeps keys is gatehouse/store.h; the user's view is
 * docs/api-keys.md.
 *
 * A key gatehouse makes is
 *
 *     gh_<id>_<secret>      gh_k7q2m4x9a3bc_3xQ...   (59 characters)
 *
 * "gh_" so that secret scanners recognise a leaked key; <id> 12 characters
 * of lower-case base32 (60 random bits), public, the key's name in the
 * store, the CLI and logs; <secret> 43 characters of base62 (256 random
 * bits from RAND_bytes). Imported keys (AWS API Gateway's, any printable
 * string of 20 to 128 characters) have no id part: their id is derived
 * from the key itself (gh_apikey_present), so a presented key of either
 * kind is found the same way, by id, then its hash compared.
 */
#ifndef GATEHOUSE_APIKEY_H
#define GATEHOUSE_APIKEY_H

#include <stddef.h>
#include <stdint.h>

#define GH_APIKEY_PREFIX "gh_"
#define GH_APIKEY_PREFIX_LEN 3
#define GH_APIKEY_ID_LEN 12
#define GH_APIKEY_SECRET_LEN 43
#define GH_APIKEY_LEN (GH_APIKEY_PREFIX_LEN + GH_APIKEY_ID_LEN + 1 + GH_APIKEY_SECRET_LEN)
/* What any presented key may be: AWS API Gateway's bounds for key values. */
#define GH_APIKEY_MIN_LEN 20
#define GH_APIKEY_MAX_LEN 128
#define GH_APIKEY_HASH_LEN 32 /* SHA-256 */

/* Bounds of the metadata (docs/api-keys.md). */
#define GH_APIKEY_CONSUMER_MAX 256
#define GH_APIKEY_PLAN_MAX 64
#define GH_APIKEY_SCOPE_MAX 128
#define GH_APIKEY_SCOPES_MAX 64 /* scopes per key */
#define GH_APIKEY_DESCRIPTION_MAX 1024

/* A presented key reduced to what a lookup needs: its id and its hash. The
 * key itself is not kept. */
typedef struct {
    char id[GH_APIKEY_ID_LEN + 1];
    uint8_t hash[GH_APIKEY_HASH_LEN];
} gh_apikey_presented_t;

/* NULL when key[0..len) may be an API key (GH_APIKEY_MIN_LEN to
 * GH_APIKEY_MAX_LEN bytes, each printable ASCII 0x21..0x7e), else why not
 * ("shorter than 20 characters", "holds a space, control or non-ASCII
 * byte", ...): a static string. A key with a NUL, a space or a line break is
 * refused, never cut or trimmed. */
const char *gh_apikey_check(const char *key, size_t len);

/* 1 when key[0..len) has the form of a key gatehouse makes (prefix, id of
 * base32 lower-case, '_', secret of base62, exact length). */
int gh_apikey_is_native(const char *key, size_t len);

/* Checks key (gh_apikey_check) and fills out: the id is the id part of a
 * native key, else the first 12 base32 characters of
 * SHA-256("gatehouse api key id" NUL key) (imported keys); the hash is
 * SHA-256(key). Returns 0, or -EINVAL when the key is refused (*why, if
 * not NULL, says why). */
int gh_apikey_present(const char *key, size_t len, gh_apikey_presented_t *out, const char **why);

/* A new native key into out (NUL-terminated), from RAND_bytes. Returns 0,
 * or -EIO when the generator fails. */
int gh_apikey_generate(char out[GH_APIKEY_LEN + 1]);

/* 1 when id is exactly GH_APIKEY_ID_LEN characters of a-z and 2-7. */
int gh_apikey_id_valid(const char *id);

/* Checks of the metadata: NULL when acceptable, else why not (static).
 * consumer: 1..256 printable ASCII characters, no space at either end, not
 * starting with = + - @ (a spreadsheet runs such a cell as a formula: CSV
 * injection). plan: 1..64 of A-Z a-z 0-9 . _ -, starting with a letter or
 * digit. description: 0..1024 bytes of UTF-8 without control characters,
 * not starting with = + - @. */
const char *gh_apikey_check_consumer(const char *s);
const char *gh_apikey_check_plan(const char *s);
const char *gh_apikey_check_description(const char *s);

/* Scopes as given ("a,b c": separated by commas and/or spaces) into their
 * stored form: one space between scopes, in the given order. Each scope is
 * 1..128 printable ASCII characters other than '"' and '\\'; at most 64,
 * none twice. Returns a new string (caller frees; "" for no scope), or
 * NULL with *why set (static; "out of memory" too). */
char *gh_apikey_scopes_normalize(const char *in, const char **why);

/* ---- AWS API Gateway's API key file (CSV) ----
 *
 * The format (docs/api-keys.md has the details and the choices made): a
 * header row naming the columns, case-insensitively and in any order:
 * Name and Key required; Description, Enabled and UsagePlanIds optional;
 * others ignored. Fields separated by commas; a field that starts with a
 * double or a single quote is quoted by it (a doubled quote inside is one);
 * records end with LF or CRLF. UsagePlanIds holds one or more ids separated
 * by commas (quoted when more than one), each mapped to a gatehouse plan.
 *
 * The parser checks every row and reports every error with its line, so a
 * caller can import all rows or none. */

typedef struct {
    const char *usage_plan_id; /* AWS usage plan id */
    const char *plan;          /* gatehouse plan name */
} gh_apikey_plan_map_t;

typedef struct {
    const gh_apikey_plan_map_t *plan_map; /* borrowed */
    size_t num_plan_map;
    const char *default_plan; /* for rows without usage plan ids; NULL: no plan */
} gh_apikey_csv_opts_t;

typedef struct {
    unsigned line;     /* where the record starts, 1-based */
    char *key;         /* the key value, checked (gh_apikey_check) */
    size_t key_len;    /* its length */
    char *consumer;    /* from Name */
    char *description; /* "" when absent */
    char *plan;        /* mapped from UsagePlanIds, or the default; NULL: none */
    int enabled;       /* from Enabled; 1 when absent */
} gh_apikey_csv_row_t;

#define GH_APIKEY_CSV_MAX_ERRORS 100 /* messages kept; the rest are only counted */
#define GH_APIKEY_CSV_MAX_BYTES (64u << 20)
#define GH_APIKEY_CSV_MAX_ROWS 1000000u
#define GH_APIKEY_CSV_MAX_FIELD 4096u

typedef struct {
    unsigned line; /* 0: about the whole file */
    char msg[192];
} gh_apikey_csv_error_t;

typedef struct {
    gh_apikey_csv_row_t *rows; /* the rows without errors */
    size_t num_rows;
    gh_apikey_csv_error_t *errors; /* the first GH_APIKEY_CSV_MAX_ERRORS */
    size_t num_errors;             /* kept in errors[] */
    size_t total_errors;           /* all of them */
} gh_apikey_csv_t;

/* Parses buf[0..len) into out (caller's memory, emptied first). Returns 0
 * (then out->total_errors says whether the file is clean), or -ENOMEM. On
 * either, gh_apikey_csv_dispose frees what out holds. */
int gh_apikey_csv_parse(const char *buf, size_t len, const gh_apikey_csv_opts_t *opts,
                        gh_apikey_csv_t *out);
void gh_apikey_csv_dispose(gh_apikey_csv_t *csv);

#endif

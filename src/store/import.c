/*
 * AWS API Gateway's API key file (CSV), as described in its developer
 * guide ("API Gateway API key file format"): a header row naming the
 * columns (case-insensitive, any order; Name and Key required;
 * Description, Enabled, UsagePlanIds optional; others ignored), then one
 * key per record. Choices where the guide is silent, each documented in
 * docs/api-keys.md:
 *
 *   - Quoting as RFC 4180, and also with single quotes, which the guide
 *     shows for UsagePlanIds: a field that starts with " or ' runs to the
 *     next unpaired one of the same; a doubled quote inside is one quote.
 *     After the closing quote comes a comma or the end of the record.
 *   - A double quote inside an unquoted field is an error (parsers
 *     disagree on what it means); an apostrophe there is a letter
 *     ("Bob's key").
 *   - Records end with LF or CRLF; a CR elsewhere outside quotes is an
 *     error. Empty lines are skipped. A UTF-8 byte order mark is skipped.
 *     A NUL byte anywhere is an error.
 *   - Nothing is trimmed, except spaces around header names and around
 *     each id of UsagePlanIds.
 *   - The same key twice in one file is an error (AWS keeps the last; a
 *     migration file with a key twice is a mistake worth seeing).
 *
 * Every error names the line where its record starts, and never quotes a
 * key (it is a secret).
 */
#include <gatehouse/apikey.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#define MAX_FIELDS 256

enum { COL_NAME = 0, COL_KEY, COL_DESCRIPTION, COL_ENABLED, COL_PLANS, NUM_COLS };
static const char *const col_names[NUM_COLS] = {"name", "key", "description", "enabled",
                                                "usageplanids"};
static const char *const col_shown[NUM_COLS] = {"Name", "Key", "Description", "Enabled",
                                                "UsagePlanIds"};

typedef struct {
    const char *p, *end;
    unsigned line; /* of p */
    /* the current record's fields, unquoted, each NUL-terminated in buf */
    char *buf;
    size_t len, cap;
    size_t starts[MAX_FIELDS];
    size_t nfields;
} reader_t;

typedef struct {
    gh_apikey_csv_t *out;
    const gh_apikey_csv_opts_t *opts;
    size_t rows_cap;
    /* the keys seen so far: indexes into out->rows + 1 (0: free) */
    size_t *seen;
    size_t seen_cap;
} parse_t;

static int add_error(gh_apikey_csv_t *out, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add_error(gh_apikey_csv_t *out, unsigned line, const char *fmt, ...)
{
    out->total_errors++;
    if (out->num_errors >= GH_APIKEY_CSV_MAX_ERRORS)
        return 0;
    if (out->errors == NULL) {
        out->errors = calloc(GH_APIKEY_CSV_MAX_ERRORS, sizeof(*out->errors));
        if (out->errors == NULL)
            return -ENOMEM;
    }
    gh_apikey_csv_error_t *e = &out->errors[out->num_errors++];
    va_list ap;
    e->line = line;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return 0;
}

static int put(reader_t *r, char c)
{
    if (r->len == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 256;
        char *n = realloc(r->buf, ncap);
        if (n == NULL)
            return -ENOMEM;
        r->buf = n;
        r->cap = ncap;
    }
    r->buf[r->len++] = c;
    return 0;
}

/* After an error inside a record: go on at the next line. */
static void skip_line(reader_t *r)
{
    while (r->p < r->end && *r->p != '\n')
        r->p++;
    if (r->p < r->end) {
        r->p++;
        r->line++;
    }
}

/* Reads one record. Returns 1 (a record, fields in r), 0 (end of input),
 * -1 (a malformed record: *why set, skipped to the next line), -2 (a
 * quoted field never closed: the rest of the input is spent) or -ENOMEM.
 * *start gets the line where the record starts. */
static int read_record(reader_t *r, unsigned *start, const char **why)
{
    /* empty lines between records */
    while (r->p < r->end &&
           (*r->p == '\n' || (*r->p == '\r' && r->p + 1 < r->end && r->p[1] == '\n'))) {
        r->p += *r->p == '\r' ? 2 : 1;
        r->line++;
    }
    if (r->p >= r->end)
        return 0;
    *start = r->line;
    r->len = 0;
    r->nfields = 0;
    for (;;) {
        size_t field_start = r->len;
        if (r->nfields == MAX_FIELDS) {
            *why = "more than 256 fields";
            skip_line(r);
            return -1;
        }
        r->starts[r->nfields++] = field_start;
        if (r->p < r->end && (*r->p == '"' || *r->p == '\'')) {
            char q = *r->p++;
            for (;;) {
                if (r->p >= r->end) {
                    *why = q == '"' ? "a field quoted with \" is not closed"
                                    : "a field quoted with ' is not closed";
                    return -2;
                }
                char c = *r->p;
                if (c == q) {
                    if (r->p + 1 < r->end && r->p[1] == q) {
                        r->p += 2;
                    } else {
                        r->p++;
                        break;
                    }
                } else {
                    if (c == '\0') {
                        *why = "a NUL byte";
                        skip_line(r);
                        return -1;
                    }
                    if (c == '\n')
                        r->line++;
                    r->p++;
                }
                if (r->len - field_start >= GH_APIKEY_CSV_MAX_FIELD) {
                    *why = "a field is longer than 4096 bytes";
                    skip_line(r);
                    return -1;
                }
                if (put(r, c) != 0)
                    return -ENOMEM;
            }
            if (r->p < r->end && *r->p != ',' && *r->p != '\n' &&
                !(*r->p == '\r' && r->p + 1 < r->end && r->p[1] == '\n')) {
                *why = "text after the closing quote of a field";
                skip_line(r);
                return -1;
            }
        } else {
            while (r->p < r->end && *r->p != ',' && *r->p != '\n' && *r->p != '\r') {
                char c = *r->p;
                if (c == '"') {
                    *why = "a double quote inside an unquoted field (quote the whole field)";
                    skip_line(r);
                    return -1;
                }
                if (c == '\0') {
                    *why = "a NUL byte";
                    skip_line(r);
                    return -1;
                }
                if (r->len - field_start >= GH_APIKEY_CSV_MAX_FIELD) {
                    *why = "a field is longer than 4096 bytes";
                    skip_line(r);
                    return -1;
                }
                if (put(r, c) != 0)
                    return -ENOMEM;
                r->p++;
            }
            if (r->p < r->end && *r->p == '\r' && !(r->p + 1 < r->end && r->p[1] == '\n')) {
                *why = "a carriage return that does not end a line";
                skip_line(r);
                return -1;
            }
        }
        if (put(r, '\0') != 0)
            return -ENOMEM;
        if (r->p >= r->end)
            return 1;
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        /* LF or CRLF */
        r->p += *r->p == '\r' ? 2 : 1;
        r->line++;
        return 1;
    }
}

static const char *field(const reader_t *r, size_t i)
{
    return r->buf + r->starts[i];
}

static size_t field_len(const reader_t *r, size_t i)
{
    size_t end = i + 1 < r->nfields ? r->starts[i + 1] : r->len;
    return end - r->starts[i] - 1;
}

/* Returns 0 (cols set), 1 (an error was recorded: nothing to import) or
 * -ENOMEM. */
static int header_error(gh_apikey_csv_t *out, unsigned line, const char *what, const char *why)
{
    int rc = line == 0 ? add_error(out, 0, "%s", what)
                       : add_error(out, line, "header row: %s%s", what, why ? why : "");
    return rc != 0 ? rc : 1;
}

static int read_header(reader_t *r, gh_apikey_csv_t *out, int cols[NUM_COLS])
{
    unsigned line = 1;
    const char *why = NULL;
    int rc = read_record(r, &line, &why);
    if (rc == -ENOMEM)
        return rc;
    if (rc == 0)
        return header_error(out, 0, "the file is empty: it needs a header row with Name and Key",
                            NULL);
    if (rc < 0)
        return header_error(out, line, why, NULL);
    for (size_t c = 0; c < NUM_COLS; c++)
        cols[c] = -1;
    for (size_t i = 0; i < r->nfields; i++) {
        const char *f = field(r, i);
        size_t n = field_len(r, i);
        while (n > 0 && (*f == ' ' || *f == '\t')) {
            f++;
            n--;
        }
        while (n > 0 && (f[n - 1] == ' ' || f[n - 1] == '\t'))
            n--;
        for (size_t c = 0; c < NUM_COLS; c++) {
            if (strlen(col_names[c]) != n || strncasecmp(f, col_names[c], n) != 0)
                continue;
            if (cols[c] >= 0)
                return header_error(out, line, "this column is named twice: ", col_shown[c]);
            cols[c] = (int)i;
        }
    }
    if (cols[COL_NAME] < 0 || cols[COL_KEY] < 0)
        return header_error(out, line, "the columns Name and Key are required", NULL);
    return 0;
}

static uint64_t key_hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

/* The line of an earlier row with the same key, or 0 (and the row is
 * remembered as index idx). -ENOMEM. */
static long seen_before(parse_t *ps, const char *key, size_t len, size_t idx)
{
    if ((idx + 1) * 2 > ps->seen_cap) {
        size_t ncap = ps->seen_cap ? ps->seen_cap * 2 : 64;
        size_t *n = calloc(ncap, sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < ps->seen_cap; i++) {
            if (ps->seen[i] == 0)
                continue;
            const gh_apikey_csv_row_t *row = &ps->out->rows[ps->seen[i] - 1];
            size_t j = (size_t)key_hash(row->key, row->key_len) & (ncap - 1);
            while (n[j] != 0)
                j = (j + 1) & (ncap - 1);
            n[j] = ps->seen[i];
        }
        free(ps->seen);
        ps->seen = n;
        ps->seen_cap = ncap;
    }
    size_t j = (size_t)key_hash(key, len) & (ps->seen_cap - 1);
    while (ps->seen[j] != 0) {
        const gh_apikey_csv_row_t *row = &ps->out->rows[ps->seen[j] - 1];
        if (row->key_len == len && memcmp(row->key, key, len) == 0)
            return (long)row->line;
        j = (j + 1) & (ps->seen_cap - 1);
    }
    ps->seen[j] = idx + 1;
    return 0;
}

static int plan_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return 1;
}

/* UsagePlanIds -> one plan: *plan borrowed from opts (NULL: none). 0, or
 * 1 after recording an error. */
static int map_plans(parse_t *ps, unsigned line, const char *ids, const char **plan, int *oom)
{
    const gh_apikey_csv_opts_t *o = ps->opts;
    const char *chosen = NULL, *chosen_id = NULL;
    size_t chosen_id_len = 0;
    int any = 0;
    for (const char *p = ids; *p != '\0';) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *s = p;
        while (*p != '\0' && *p != ',')
            p++;
        size_t n = (size_t)(p - s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (*p == ',')
            p++;
        if (n == 0)
            continue;
        if (!plan_id_valid(s, n)) {
            *oom = add_error(ps->out, line,
                             "UsagePlanIds holds an id that is not 1 to 64 "
                             "letters and digits") != 0;
            return 1;
        }
        any = 1;
        const char *mapped = NULL;
        for (size_t i = 0; o != NULL && i < o->num_plan_map; i++) {
            const char *u = o->plan_map[i].usage_plan_id;
            if (strlen(u) == n && memcmp(u, s, n) == 0)
                mapped = o->plan_map[i].plan;
        }
        if (mapped == NULL) {
            /* Text as long as a key is not echoed: a file whose columns
             * are off would otherwise print keys. */
            if (n >= GH_APIKEY_MIN_LEN)
                *oom = add_error(ps->out, line,
                                 "a usage plan id of %zu characters has no plan mapping (not "
                                 "shown: it could be a key in the wrong column)",
                                 n) != 0;
            else
                *oom = add_error(ps->out, line,
                                 "usage plan '%.*s' has no plan mapping (--plan-map %.*s=PLAN)",
                                 (int)n, s, (int)n, s) != 0;
            return 1;
        }
        if (chosen != NULL && strcmp(chosen, mapped) != 0) {
            *oom = add_error(ps->out, line,
                             "usage plans '%.*s' and '%.*s' map to different plans (%s, %s); a "
                             "gatehouse key has one plan",
                             (int)chosen_id_len, chosen_id, (int)n, s, chosen, mapped) != 0;
            return 1;
        }
        chosen = mapped;
        chosen_id = s;
        chosen_id_len = n;
    }
    *plan = any ? chosen : (o != NULL ? o->default_plan : NULL);
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

/* One data record. 0, or -ENOMEM. Errors are recorded in ps->out. */
static int take_row(parse_t *ps, const reader_t *r, unsigned line, const int cols[NUM_COLS],
                    size_t ncols)
{
    gh_apikey_csv_t *out = ps->out;
    const char *why;
    int oom = 0;
    if (r->nfields != ncols)
        return add_error(out, line, "%zu fields, and the header row has %zu", r->nfields, ncols);
    const char *key = field(r, (size_t)cols[COL_KEY]);
    size_t key_len = field_len(r, (size_t)cols[COL_KEY]);
    const char *name = field(r, (size_t)cols[COL_NAME]);
    const char *desc = cols[COL_DESCRIPTION] >= 0 ? field(r, (size_t)cols[COL_DESCRIPTION]) : "";
    const char *enabled = cols[COL_ENABLED] >= 0 ? field(r, (size_t)cols[COL_ENABLED]) : "";
    const char *plans = cols[COL_PLANS] >= 0 ? field(r, (size_t)cols[COL_PLANS]) : "";
    const char *plan = NULL;
    int en = 1;

    /* A NUL inside a field was refused by the reader, so the lengths and
     * the strings agree. */
    if ((why = gh_apikey_check(key, key_len)) != NULL)
        return add_error(out, line, "Key is refused: %s", why);
    if ((why = gh_apikey_check_consumer(name)) != NULL)
        return add_error(out, line, "Name %s", why);
    if ((why = gh_apikey_check_description(desc)) != NULL)
        return add_error(out, line, "Description %s", why);
    if (strcasecmp(enabled, "false") == 0)
        en = 0;
    else if (enabled[0] != '\0' && strcasecmp(enabled, "true") != 0)
        return add_error(out, line, "Enabled must be true or false");
    if (map_plans(ps, line, plans, &plan, &oom) != 0)
        return oom ? -ENOMEM : 0;
    if (out->num_rows == ps->rows_cap) {
        size_t ncap = ps->rows_cap ? ps->rows_cap * 2 : 64;
        gh_apikey_csv_row_t *n = realloc(out->rows, ncap * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        out->rows = n;
        ps->rows_cap = ncap;
    }
    long before = seen_before(ps, key, key_len, out->num_rows);
    if (before < 0)
        return -ENOMEM;
    if (before > 0)
        return add_error(out, line, "the same key as line %ld", before);
    /* from here on the row is remembered as seen: an allocation failure
     * ends the parse */
    gh_apikey_csv_row_t *row = &out->rows[out->num_rows];
    memset(row, 0, sizeof(*row));
    row->line = line;
    row->key_len = key_len;
    row->enabled = en;
    row->key = malloc(key_len + 1);
    row->consumer = strdup(name);
    row->description = strdup(desc);
    row->plan = dup_or_null(plan);
    if (row->key == NULL || row->consumer == NULL || row->description == NULL ||
        (plan != NULL && row->plan == NULL)) {
        free(row->key);
        free(row->consumer);
        free(row->description);
        free(row->plan);
        return -ENOMEM;
    }
    memcpy(row->key, key, key_len);
    row->key[key_len] = '\0';
    out->num_rows++;
    return 0;
}

int gh_apikey_csv_parse(const char *buf, size_t len, const gh_apikey_csv_opts_t *opts,
                        gh_apikey_csv_t *out)
{
    reader_t r = {.p = buf, .end = buf + len, .line = 1};
    parse_t ps = {.out = out, .opts = opts};
    int cols[NUM_COLS];
    int rc = 0;
    memset(out, 0, sizeof(*out));
    if (len > GH_APIKEY_CSV_MAX_BYTES) {
        rc = add_error(out, 0, "the file is larger than %u bytes", GH_APIKEY_CSV_MAX_BYTES);
        goto out;
    }
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        r.p += 3;
    rc = read_header(&r, out, cols);
    if (rc != 0) {
        rc = rc < 0 ? rc : 0;
        goto out;
    }
    size_t ncols = r.nfields;
    for (;;) {
        unsigned line = r.line;
        const char *why = NULL;
        int got = read_record(&r, &line, &why);
        if (got == 0)
            break;
        if (got == -ENOMEM) {
            rc = got;
            break;
        }
        if (got < 0) {
            if ((rc = add_error(out, line, "%s", why)) != 0 || got == -2)
                break;
            continue;
        }
        if (out->num_rows + out->total_errors >= GH_APIKEY_CSV_MAX_ROWS) {
            rc = add_error(out, line, "more than %u rows", GH_APIKEY_CSV_MAX_ROWS);
            break;
        }
        if ((rc = take_row(&ps, &r, line, cols, ncols)) != 0)
            break;
    }
out:
    if (r.buf != NULL)
        OPENSSL_cleanse(r.buf, r.cap); /* fields held keys */
    free(r.buf);
    free(ps.seen);
    return rc;
}

void gh_apikey_csv_dispose(gh_apikey_csv_t *csv)
{
    for (size_t i = 0; i < csv->num_rows; i++) {
        gh_apikey_csv_row_t *row = &csv->rows[i];
        if (row->key != NULL)
            OPENSSL_cleanse(row->key, row->key_len); /* a secret */
        free(row->key);
        free(row->consumer);
        free(row->description);
        free(row->plan);
    }
    free(csv->rows);
    free(csv->errors);
    memset(csv, 0, sizeof(*csv));
}

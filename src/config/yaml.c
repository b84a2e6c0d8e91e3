/*
 * libyaml events -> gh_yaml_node_t tree. See yaml.h for what is refused.
 *
 * We build from the event API rather than yaml_parser_load() because the
 * document API expands nothing but still hands out shared nodes for aliases,
 * has no depth limit, and hides duplicate keys; here each of those is one
 * check at the point where the node is attached.
 */
#include <gatehouse/yaml.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

static gh_yaml_node_t *node_new(gh_yaml_doc_t *doc, gh_yaml_kind_t kind, yaml_mark_t mark,
                                const char *s, size_t len)
{
    /* A scalar's text lives in the same allocation as its node. */
    size_t extra = kind == GH_YAML_SCALAR ? len + 1 : 0;
    gh_yaml_node_t *n = calloc(1, sizeof(*n) + extra);
    if (n == NULL)
        return NULL;
    doc->num_nodes++;
    n->kind = kind;
    n->line = mark.line >= UINT32_MAX ? UINT32_MAX : (uint32_t)(mark.line + 1);
    n->col = mark.column >= UINT32_MAX ? UINT32_MAX : (uint32_t)(mark.column + 1);
    if (kind == GH_YAML_SCALAR) {
        char *text = (char *)(n + 1);
        if (len > 0)
            memcpy(text, s, len);
        text[len] = '\0';
        n->str = text;
        n->len = len;
    }
    n->all_next = doc->all;
    doc->all = n;
    return n;
}

void gh_yaml_doc_dispose(gh_yaml_doc_t *doc)
{
    gh_yaml_node_t *n = doc->all;
    while (n != NULL) {
        gh_yaml_node_t *next = n->all_next;
        free(n);
        n = next;
    }
    doc->all = NULL;
    doc->root = NULL;
    free(doc->keys);
    doc->keys = NULL;
    doc->keys_cap = doc->num_keys = 0;
}

__attribute__((format(printf, 4, 0))) static void vformat(const gh_yaml_doc_t *doc, uint32_t line,
                                                          uint32_t col, const char *fmt, va_list ap)
{
    char *msg = doc->err->msg;
    size_t cap = sizeof(doc->err->msg);
    int n;
    if (line > 0)
        n = snprintf(msg, cap, "%s:%u:%u: ", doc->name, line, col);
    else
        n = snprintf(msg, cap, "%s: ", doc->name);
    if (n < 0)
        n = 0;
    if ((size_t)n < cap)
        vsnprintf(msg + n, cap - (size_t)n, fmt, ap);
    for (char *p = msg; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            *p = '?';
    }
}

int gh_yaml_error(const gh_yaml_doc_t *doc, const gh_yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(doc, at != NULL ? at->line : 0, at != NULL ? at->col : 0, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

__attribute__((format(printf, 4, 5))) static int error_at(const gh_yaml_doc_t *doc, uint32_t line,
                                                          uint32_t col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(doc, line, col, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

int gh_yaml_oom(const gh_yaml_doc_t *doc)
{
    gh_yaml_error(doc, NULL, "out of memory");
    return -ENOMEM;
}

/* Reader errors (bad encoding) carry a byte offset, not a mark. */
static int parser_error(const gh_yaml_doc_t *doc, const yaml_parser_t *p, const char *buf,
                        size_t len)
{
    const char *problem = p->problem != NULL ? p->problem : "syntax error";
    if (p->error == YAML_MEMORY_ERROR)
        return gh_yaml_oom(doc);
    if (p->error == YAML_READER_ERROR) {
        uint32_t line = 1, col = 1;
        size_t off = p->problem_offset < len ? p->problem_offset : len;
        for (size_t i = 0; i < off; i++) {
            if (buf[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        return error_at(doc, line, col, "invalid YAML: %s", problem);
    }
    uint32_t line = (uint32_t)p->problem_mark.line + 1;
    uint32_t col = (uint32_t)p->problem_mark.column + 1;
    if (p->context != NULL)
        return error_at(doc, line, col, "invalid YAML: %s %s", problem, p->context);
    return error_at(doc, line, col, "invalid YAML: %s", problem);
}

/* ---- the duplicate-key check ----
 *
 * One open-addressing table for the whole document, keyed by (mapping, key
 * text): comparing each new key with every earlier key of its mapping made
 * a 100,000-key mapping cost 5e9 comparisons on the main loop at reload. */

static uint64_t key_hash(const gh_yaml_node_t *map, const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)map;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static int keys_grow(gh_yaml_doc_t *doc)
{
    size_t cap = doc->keys_cap ? doc->keys_cap * 2 : 256;
    gh_yaml_node_t **t = calloc(cap, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < doc->keys_cap; i++) {
        gh_yaml_node_t *k = doc->keys[i];
        if (k == NULL)
            continue;
        size_t j = (size_t)key_hash(k->parent, k->str, k->len) & (cap - 1);
        while (t[j] != NULL)
            j = (j + 1) & (cap - 1);
        t[j] = k;
    }
    free(doc->keys);
    doc->keys = t;
    doc->keys_cap = cap;
    return 0;
}

/* 1 when map already has a key with n's text; else records n and returns
 * 0 (or -ENOMEM). */
static int key_seen(gh_yaml_doc_t *doc, gh_yaml_node_t *map, gh_yaml_node_t *n)
{
    if (2 * (doc->num_keys + 1) > doc->keys_cap && keys_grow(doc) != 0)
        return -ENOMEM;
    size_t mask = doc->keys_cap - 1;
    size_t j = (size_t)key_hash(map, n->str, n->len) & mask;
    for (; doc->keys[j] != NULL; j = (j + 1) & mask) {
        const gh_yaml_node_t *k = doc->keys[j];
        if (k->parent == map && k->len == n->len && memcmp(k->str, n->str, n->len) == 0)
            return 1;
    }
    n->parent = map;
    doc->keys[j] = n;
    doc->num_keys++;
    return 0;
}

static int attach(gh_yaml_doc_t *doc, gh_yaml_node_t **stack, size_t depth, gh_yaml_node_t *n)
{
    if (depth == 0) {
        doc->root = n;
        return 0;
    }
    gh_yaml_node_t *parent = stack[depth - 1];
    if (parent->kind == GH_YAML_MAP && parent->tail != NULL && parent->tail->value == NULL) {
        parent->tail->value = n;
        return 0;
    }
    if (parent->kind == GH_YAML_MAP) {
        if (n->kind != GH_YAML_SCALAR)
            return gh_yaml_error(doc, n, "mapping keys must be scalars");
        int seen = key_seen(doc, parent, n);
        if (seen < 0)
            return gh_yaml_oom(doc);
        if (seen)
            return gh_yaml_error(doc, n, "duplicate key '%s'", n->str);
    }
    if (parent->tail != NULL)
        parent->tail->next = n;
    else
        parent->head = n;
    parent->tail = n;
    parent->count++;
    return 0;
}

int gh_yaml_doc_init(gh_yaml_doc_t *doc, const char *name, const char *buf, size_t len,
                     gh_config_error_t *err)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    gh_yaml_node_t *stack[GH_YAML_MAX_DEPTH];
    size_t depth = 0;
    int docs = 0;
    int rc = 0;

    memset(doc, 0, sizeof(*doc));
    doc->name = name;
    doc->err = err;
    err->msg[0] = '\0';

    if (len > GH_YAML_MAX_BYTES)
        return error_at(doc, 0, 0, "the document is larger than %u bytes", GH_YAML_MAX_BYTES);
    if (!yaml_parser_initialize(&parser))
        return gh_yaml_oom(doc);
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

    for (int done = 0; !done && rc == 0;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(doc, &parser, buf, len);
            break;
        }
        gh_yaml_node_t *n = NULL;
        if (doc->num_nodes >= GH_YAML_MAX_NODES &&
            (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
             ev.type == YAML_MAPPING_START_EVENT)) {
            rc = error_at(doc, (uint32_t)ev.start_mark.line + 1, (uint32_t)ev.start_mark.column + 1,
                          "more than %u YAML nodes (keys, values and list items)",
                          GH_YAML_MAX_NODES);
            yaml_event_delete(&ev);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                rc = error_at(doc, (uint32_t)ev.start_mark.line + 1,
                              (uint32_t)ev.start_mark.column + 1,
                              "only one YAML document is allowed");
            break;
        case YAML_ALIAS_EVENT:
            rc = error_at(doc, (uint32_t)ev.start_mark.line + 1, (uint32_t)ev.start_mark.column + 1,
                          "YAML aliases are not supported");
            break;
        case YAML_SCALAR_EVENT:
            n = node_new(doc, GH_YAML_SCALAR, ev.start_mark, (const char *)ev.data.scalar.value,
                         ev.data.scalar.length);
            if (n == NULL) {
                rc = gh_yaml_oom(doc);
                break;
            }
            n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            rc = attach(doc, stack, depth, n);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            n = node_new(doc, ev.type == YAML_MAPPING_START_EVENT ? GH_YAML_MAP : GH_YAML_SEQ,
                         ev.start_mark, NULL, 0);
            if (n == NULL) {
                rc = gh_yaml_oom(doc);
                break;
            }
            if (depth == GH_YAML_MAX_DEPTH) {
                rc = gh_yaml_error(doc, n, "nesting deeper than %d levels", GH_YAML_MAX_DEPTH);
                break;
            }
            rc = attach(doc, stack, depth, n);
            stack[depth++] = n;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }

    yaml_parser_delete(&parser);
    if (rc != 0)
        gh_yaml_doc_dispose(doc);
    return rc;
}

const gh_yaml_node_t *gh_yaml_map_key(const gh_yaml_node_t *map, const char *key)
{
    if (map == NULL || map->kind != GH_YAML_MAP)
        return NULL;
    size_t len = strlen(key);
    for (const gh_yaml_node_t *k = map->head; k != NULL; k = k->next) {
        if (k->len == len && memcmp(k->str, key, len) == 0)
            return k;
    }
    return NULL;
}

const gh_yaml_node_t *gh_yaml_map_get(const gh_yaml_node_t *map, const char *key)
{
    const gh_yaml_node_t *k = gh_yaml_map_key(map, key);
    return k != NULL ? k->value : NULL;
}

static const char *kind_name(gh_yaml_kind_t kind)
{
    switch (kind) {
    case GH_YAML_MAP:
        return "mapping";
    case GH_YAML_SEQ:
        return "list";
    case GH_YAML_SCALAR:
        break;
    }
    return "scalar";
}

int gh_yaml_expect(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_yaml_kind_t kind,
                   const char *what)
{
    if (node->kind == kind)
        return 0;
    return gh_yaml_error(doc, node, "expected a %s for %s", kind_name(kind), what);
}

int gh_yaml_check_keys(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map,
                       const char *const *allowed, const char *what)
{
    for (const gh_yaml_node_t *k = map->head; k != NULL; k = k->next) {
        const char *const *a = allowed;
        while (*a != NULL && !(strlen(*a) == k->len && memcmp(*a, k->str, k->len) == 0))
            a++;
        if (*a == NULL)
            return gh_yaml_error(doc, k, "unknown key '%s' in %s", k->str, what);
    }
    return 0;
}

int gh_yaml_require(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map, const char *key,
                    const char *what, const gh_yaml_node_t **out)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(map, key);
    if (v == NULL)
        return gh_yaml_error(doc, map, "%s is missing required key '%s'", what, key);
    *out = v;
    return 0;
}

int gh_yaml_str(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key,
                const char **out)
{
    if (node->kind != GH_YAML_SCALAR)
        return gh_yaml_error(doc, node, "'%s' must be a string", key);
    if (memchr(node->str, '\0', node->len) != NULL)
        return gh_yaml_error(doc, node, "'%s' must not contain NUL", key);
    *out = node->str;
    return 0;
}

static int parse_decimal(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int gh_yaml_uint(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key,
                 uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;
    if (node->kind != GH_YAML_SCALAR || !node->plain || parse_decimal(node->str, node->len, &v) ||
        v < min || v > max)
        return gh_yaml_error(doc, node, "'%s' must be an integer from %llu to %llu", key,
                             (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

int gh_yaml_bool(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key, int *out)
{
    static const char *const t[] = {"true", "True", "TRUE"};
    static const char *const f[] = {"false", "False", "FALSE"};
    if (node->kind == GH_YAML_SCALAR && node->plain) {
        for (size_t i = 0; i < 3; i++) {
            if (strcmp(node->str, t[i]) == 0) {
                *out = 1;
                return 0;
            }
            if (strcmp(node->str, f[i]) == 0) {
                *out = 0;
                return 0;
            }
        }
    }
    return gh_yaml_error(doc, node, "'%s' must be true or false", key);
}

/* ms in the largest unit that divides it: "7d" is not a unit, so "168h". */
static void format_ms(uint64_t ms, char *buf, size_t cap)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms % units[i].ms == 0) {
            snprintf(buf, cap, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
}

int gh_yaml_duration_max(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key,
                         uint64_t max_ms, uint64_t *ms)
{
    uint64_t v;
    if (node->kind != GH_YAML_SCALAR || memchr(node->str, '\0', node->len) != NULL ||
        gh_config_parse_duration(node->str, &v) != 0)
        return gh_yaml_error(doc, node,
                             "'%s' must be a duration greater than zero, such as 250ms, 5s, 2m "
                             "or 1h",
                             key);
    if (max_ms > GH_YAML_DURATION_MAX)
        max_ms = GH_YAML_DURATION_MAX;
    if (v > max_ms) {
        char max[32];
        format_ms(max_ms, max, sizeof(max));
        return gh_yaml_error(doc, node, "'%s' must be at most %s", key, max);
    }
    *ms = v;
    return 0;
}

int gh_yaml_duration(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key,
                     uint64_t *ms)
{
    return gh_yaml_duration_max(doc, node, key, GH_YAML_DURATION_MAX, ms);
}

int gh_yaml_size(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key,
                 uint64_t min, uint64_t max, uint64_t *bytes)
{
    uint64_t v;
    if (node->kind != GH_YAML_SCALAR || memchr(node->str, '\0', node->len) != NULL ||
        gh_config_parse_size(node->str, &v) != 0)
        return gh_yaml_error(doc, node, "'%s' must be a size, such as 512, 64KiB or 1MiB", key);
    if (v < min || v > max)
        return gh_yaml_error(doc, node, "'%s' must be from %llu to %llu bytes", key,
                             (unsigned long long)min, (unsigned long long)max);
    *bytes = v;
    return 0;
}

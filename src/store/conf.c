/*
 * The top-level `store` section (docs/config.md#store) and its defaults.
 * Parsed here, beside the backends, so that the keys a kind takes are
 * decided in one place, and a key of the other kind is refused at its
 * position in the file, not when the server starts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/store.h>

#include "store/backend.h"

#define MAX_BUSY_TIMEOUT_MS 60000u
#define MAX_REDIS_TIMEOUT_MS 60000u
#define MAX_USAGE_FLUSH_MS 60000u

static char *default_path(const char *state_dir)
{
    size_t n = strlen(state_dir);
    char *p = malloc(n + sizeof("/gatehouse.db"));
    if (p == NULL)
        return NULL;
    memcpy(p, state_dir, n);
    /* "state/" and "state" give the same file */
    while (n > 1 && p[n - 1] == '/')
        n--;
    memcpy(p + n, "/gatehouse.db", sizeof("/gatehouse.db"));
    return p;
}

int gh_store_conf_default(gh_store_conf_t *c, const char *state_dir)
{
    memset(c, 0, sizeof(*c));
    c->kind = GH_STORE_SQLITE;
    c->max_pending = 1024;
    c->usage_flush_ms = 1000;
    c->busy_timeout_ms = 5000;
    c->timeout_ms = 250;
    c->pool = 2;
    if (state_dir == NULL)
        state_dir = GH_STORE_DEFAULT_STATE_DIR;
    c->state_dir = strdup(state_dir);
    c->path = default_path(state_dir);
    c->path_is_default = 1;
    c->address = strdup("127.0.0.1:6379");
    c->prefix = strdup("gatehouse:");
    if (c->state_dir == NULL || c->path == NULL || c->address == NULL || c->prefix == NULL) {
        gh_store_conf_dispose(c);
        return -ENOMEM;
    }
    return 0;
}

void gh_store_conf_dispose(gh_store_conf_t *c)
{
    free(c->path);
    free(c->state_dir);
    free(c->address);
    free(c->prefix);
    c->path = c->state_dir = c->address = c->prefix = NULL;
}

static int set_str(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key, char **out)
{
    const char *v;
    int rc = gh_yaml_str(doc, n, key, &v);
    if (rc != 0)
        return rc;
    if (v[0] == '\0')
        return gh_yaml_error(doc, n, "%s must not be empty", key);
    char *copy = strdup(v);
    if (copy == NULL)
        return gh_yaml_oom(doc);
    free(*out);
    *out = copy;
    return 0;
}

/* "host:port" or "[v6]:port": the syntax only. The Redis store resolves
 * the host when it opens (a fleet's Redis is usually a DNS name), on the
 * main thread, never on a worker. */
static const char *address_refused(const char *a)
{
    const char *colon;
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        if (close == NULL || close == a + 1)
            return "has an unclosed or empty [IPv6] part";
        if (close[1] != ':')
            return "needs a port";
        colon = close + 1;
    } else {
        colon = strrchr(a, ':');
        if (colon == NULL)
            return "needs a port";
        if (colon == a)
            return "needs a host";
        if (memchr(a, ':', (size_t)(colon - a)) != NULL)
            return "has an IPv6 host without brackets";
    }
    for (const char *p = a; p < colon; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '/' || *p == '@')
            return "has a character that cannot be in a host";
    const char *port = colon + 1;
    long v = 0;
    if (*port == '\0')
        return "needs a port";
    for (const char *p = port; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || p - port > 5)
            return "has a port that is not a number from 1 to 65535";
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return "has a port that is not a number from 1 to 65535";
    return NULL;
}

static int sqlite_only(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_store_kind_t kind)
{
    static const char *const sqlite_keys[] = {"path", "busy_timeout", NULL};
    static const char *const redis_keys[] = {"address", "timeout", "pool", "prefix", NULL};
    const char *const *other = kind == GH_STORE_SQLITE ? redis_keys : sqlite_keys;
    for (size_t i = 0; other[i] != NULL; i++) {
        const gh_yaml_node_t *k = gh_yaml_map_key(node, other[i]);
        if (k != NULL)
            return gh_yaml_error(doc, k, "'%s' is a key of a %s store, and this store is %s",
                                 other[i], kind == GH_STORE_SQLITE ? "redis" : "sqlite",
                                 kind == GH_STORE_SQLITE ? "sqlite" : "redis");
    }
    return 0;
}

int gh_store_conf_parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *state_dir,
                        gh_store_conf_t *c)
{
    gh_store_kind_t kind = GH_STORE_SQLITE;
    const gh_yaml_node_t *n;
    int rc;
    if (node != NULL && node->kind == GH_YAML_MAP && (n = gh_yaml_map_get(node, "kind")) != NULL) {
        const char *v;
        if (gh_store_conf_default(c, state_dir) != 0)
            return gh_yaml_oom(doc);
        if ((rc = gh_yaml_str(doc, n, "kind", &v)) != 0)
            return rc;
        if (strcmp(v, "sqlite") == 0)
            kind = GH_STORE_SQLITE;
        else if (strcmp(v, "redis") == 0)
            kind = GH_STORE_REDIS;
        else
            return gh_yaml_error(doc, n, "store kind must be sqlite or redis, not '%s'", v);
        gh_store_conf_dispose(c);
    }
    return gh_store_conf_parse_kind(doc, node, state_dir, kind, c);
}

int gh_store_conf_parse_kind(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                             const char *state_dir, gh_store_kind_t kind, gh_store_conf_t *c)
{
    static const char *const keys[] = {"kind", "path",   "busy_timeout", "address",     "timeout",
                                       "pool", "prefix", "max_pending",  "usage_flush", NULL};
    const gh_yaml_node_t *n;
    uint64_t u;
    int rc;
    if (gh_store_conf_default(c, state_dir) != 0)
        return gh_yaml_oom(doc);
    c->kind = kind;
    if (node == NULL)
        return 0;
    if ((rc = gh_yaml_expect(doc, node, GH_YAML_MAP, "store")) != 0 ||
        (rc = gh_yaml_check_keys(doc, node, keys, "store")) != 0 ||
        (rc = sqlite_only(doc, node, c->kind)) != 0)
        return rc;
    if ((n = gh_yaml_map_get(node, "path")) != NULL) {
        if ((rc = set_str(doc, n, "path", &c->path)) != 0)
            return rc;
        c->path_is_default = 0;
    }
    if ((n = gh_yaml_map_get(node, "busy_timeout")) != NULL &&
        (rc = gh_yaml_duration_max(doc, n, "busy_timeout", MAX_BUSY_TIMEOUT_MS,
                                   &c->busy_timeout_ms)) != 0)
        return rc;
    if ((n = gh_yaml_map_get(node, "address")) != NULL) {
        const char *why;
        if ((rc = set_str(doc, n, "address", &c->address)) != 0)
            return rc;
        if ((why = address_refused(c->address)) != NULL)
            return gh_yaml_error(doc, n, "store address '%s' %s", c->address, why);
    }
    if ((n = gh_yaml_map_get(node, "timeout")) != NULL &&
        (rc = gh_yaml_duration_max(doc, n, "timeout", MAX_REDIS_TIMEOUT_MS, &c->timeout_ms)) != 0)
        return rc;
    if ((n = gh_yaml_map_get(node, "pool")) != NULL) {
        if ((rc = gh_yaml_uint(doc, n, "pool", 1, 64, &u)) != 0)
            return rc;
        c->pool = (uint32_t)u;
    }
    if ((n = gh_yaml_map_get(node, "prefix")) != NULL) {
        if ((rc = set_str(doc, n, "prefix", &c->prefix)) != 0)
            return rc;
        for (const char *p = c->prefix; *p != '\0'; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                return gh_yaml_error(doc, n, "store prefix must be printable ASCII without spaces");
        if (strlen(c->prefix) > 64)
            return gh_yaml_error(doc, n, "store prefix must be at most 64 characters");
    }
    if ((n = gh_yaml_map_get(node, "max_pending")) != NULL) {
        if ((rc = gh_yaml_uint(doc, n, "max_pending", 1, 1000000, &u)) != 0)
            return rc;
        c->max_pending = (uint32_t)u;
    }
    if ((n = gh_yaml_map_get(node, "usage_flush")) != NULL &&
        (rc = gh_yaml_duration_max(doc, n, "usage_flush", MAX_USAGE_FLUSH_MS,
                                   &c->usage_flush_ms)) != 0)
        return rc;
    return 0;
}

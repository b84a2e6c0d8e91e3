/* The operational sections of the config: admin, access_log, tracing. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/sections.h"
#include "gatehouse/file.h"

const char *const gh_access_log_field_names[GH_LOG_FIELD_COUNT] = {
    "time",
    "request_id",
    "listener",
    "route",
    "method",
    "path",
    "query",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "upstream",
    "upstream_duration_ms",
    "client",
    "user_agent",
    "principal",
    "consumer",
    "trace_id",
    "error",
    "filter",
};

static int dup_str(const gh_yaml_doc_t *doc, const char *s, char **out)
{
    *out = strdup(s);
    return *out == NULL ? gh_yaml_oom(doc) : 0;
}

static int opt_str(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map, const char *key, char **out)
{
    const gh_yaml_node_t *n = gh_yaml_map_get(map, key);
    const char *v;
    int rc;
    if (n == NULL)
        return 0;
    if ((rc = gh_yaml_str(doc, n, key, &v)) != 0)
        return rc;
    if (v[0] == '\0')
        return gh_yaml_error(doc, n, "%s must not be empty", key);
    return dup_str(doc, v, out);
}

static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* Reads the token file at load time, so a missing or empty file is a
 * config error rather than an admin API that silently refuses everyone. */
static int load_token_file(const gh_yaml_doc_t *doc, const gh_yaml_node_t *at, const char *path,
                           char **out)
{
    size_t n = 0;
    char *buf = gh_file_read(path, 4096, &n); /* never blocks: a named pipe is refused */
    if (buf == NULL) {
        if (errno == EFBIG)
            return gh_yaml_error(doc, at, "token_file '%s' is larger than 4 KiB", path);
        return gh_yaml_error(doc, at, "cannot read token_file '%s': %s", path,
                             gh_file_strerror(errno));
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    int rc = 0;
    if (n < 16)
        rc = gh_yaml_error(doc, at, "token_file '%s' must hold a token of 16 characters or more",
                           path);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (buf[i] < 0x21 || buf[i] > 0x7e)
            rc = gh_yaml_error(doc, at, "token_file '%s' holds a non-printable character", path);
    if (rc == 0)
        rc = dup_str(doc, buf, out);
    free(buf);
    return rc;
}

int gh_config_parse_admin(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg)
{
    static const char *const keys[] = {"listen", "token_file", "token_env", "max_import_body",
                                       NULL};
    gh_admin_conf_t *a = &cfg->admin;
    int rc;
    a->max_import_body = GH_ADMIN_IMPORT_BODY_DEFAULT;
    if (node == NULL)
        return 0;
    if ((rc = gh_yaml_expect(doc, node, GH_YAML_MAP, "admin")) != 0 ||
        (rc = gh_yaml_check_keys(doc, node, keys, "admin")) != 0 ||
        (rc = opt_str(doc, node, "listen", &a->address)) != 0 ||
        (rc = opt_str(doc, node, "token_file", &a->token_file)) != 0 ||
        (rc = opt_str(doc, node, "token_env", &a->token_env)) != 0)
        return rc;
    const gh_yaml_node_t *mib = gh_yaml_map_get(node, "max_import_body");
    if (mib != NULL && (rc = gh_yaml_size(doc, mib, "max_import_body", GH_ADMIN_IMPORT_BODY_MIN,
                                          GH_ADMIN_IMPORT_BODY_MAX, &a->max_import_body)) != 0)
        return rc;
    a->enabled = 1;
    if (a->address == NULL && (rc = dup_str(doc, "127.0.0.1:9901", &a->address)) != 0)
        return rc;
    const gh_yaml_node_t *at = gh_yaml_map_get(node, "listen");
    if (gh_config_numeric_addr(a->address, &a->addr, &a->addrlen) != NULL)
        return gh_yaml_error(doc, at ? at : node, "admin listen '%s' is not a numeric address:port",
                             a->address);
    if (a->token_file != NULL && a->token_env != NULL)
        return gh_yaml_error(doc, node, "admin takes token_file or token_env, not both");
    if (a->token_file != NULL && (rc = load_token_file(doc, gh_yaml_map_get(node, "token_file"),
                                                       a->token_file, &a->token)) != 0)
        return rc;
    if (a->token_env != NULL) {
        const char *v = getenv(a->token_env);
        if (v == NULL || strlen(v) < 16)
            return gh_yaml_error(doc, gh_yaml_map_get(node, "token_env"),
                                 "environment variable %s must hold a token of 16 characters "
                                 "or more",
                                 a->token_env);
        if ((rc = dup_str(doc, v, &a->token)) != 0)
            return rc;
    }
    /* An admin API reachable from the network without a token would hand
     * out the config and the cluster map to anyone. */
    if (a->token == NULL && !is_loopback(&a->addr))
        return gh_yaml_error(doc, at ? at : node,
                             "admin listens on non-loopback %s without token_file or token_env",
                             a->address);
    return 0;
}

int gh_config_parse_access_log(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                               gh_config_t *cfg)
{
    static const char *const keys[] = {"path", "fields", "secret_query", NULL};
    gh_access_log_conf_t *l = &cfg->access_log;
    int rc;
    if (node == NULL)
        return 0;
    if ((rc = gh_yaml_expect(doc, node, GH_YAML_MAP, "access_log")) != 0 ||
        (rc = gh_yaml_check_keys(doc, node, keys, "access_log")) != 0 ||
        (rc = opt_str(doc, node, "path", &l->path)) != 0)
        return rc;
    l->enabled = 1;
    if (l->path != NULL && strcmp(l->path, "stdout") == 0) {
        free(l->path);
        l->path = NULL;
    }
    l->fields = (1u << GH_LOG_FIELD_COUNT) - 1;
    const gh_yaml_node_t *f = gh_yaml_map_get(node, "fields");
    if (f != NULL) {
        if ((rc = gh_yaml_expect(doc, f, GH_YAML_SEQ, "access_log fields")) != 0)
            return rc;
        l->fields = 0;
        for (const gh_yaml_node_t *it = f->head; it != NULL; it = it->next) {
            const char *name;
            if ((rc = gh_yaml_str(doc, it, "field", &name)) != 0)
                return rc;
            int found = -1;
            for (int i = 0; i < GH_LOG_FIELD_COUNT; i++)
                if (strcmp(name, gh_access_log_field_names[i]) == 0)
                    found = i;
            if (found < 0)
                return gh_yaml_error(doc, it, "unknown access_log field '%s'", name);
            l->fields |= 1u << found;
        }
    }
    const gh_yaml_node_t *q = gh_yaml_map_get(node, "secret_query");
    if (q != NULL) {
        if ((rc = gh_yaml_expect(doc, q, GH_YAML_SEQ, "access_log secret_query")) != 0)
            return rc;
        l->secret_query = calloc(q->count + 1, sizeof(char *));
        if (l->secret_query == NULL)
            return gh_yaml_oom(doc);
        for (const gh_yaml_node_t *it = q->head; it != NULL; it = it->next) {
            const char *name;
            if ((rc = gh_yaml_str(doc, it, "secret_query", &name)) != 0 ||
                (rc = dup_str(doc, name, &l->secret_query[l->num_secret_query])) != 0)
                return rc;
            l->num_secret_query++;
        }
    }
    return 0;
}

/* Whose sampled flag (traceparent, b3) decides whether a span is exported:
 * a client that sets it on every request makes every request exported. */
static int parse_incoming_sampled(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, int *out)
{
    const char *v;
    int rc = gh_yaml_str(doc, n, "incoming_sampled", &v);
    if (rc != 0)
        return rc;
    if (strcmp(v, "trusted_proxies") == 0)
        *out = GH_TRACE_SAMPLED_FROM_TRUSTED;
    else if (strcmp(v, "any") == 0)
        *out = GH_TRACE_SAMPLED_FROM_ANY;
    else if (strcmp(v, "none") == 0)
        *out = GH_TRACE_SAMPLED_FROM_NONE;
    else
        return gh_yaml_error(doc, n,
                             "incoming_sampled must be trusted_proxies, any or none, not '%s'", v);
    return 0;
}

int gh_config_parse_tracing(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg)
{
    static const char *const keys[] = {"collector",      "sampling",         "service_name",
                                       "queue_size",     "batch_size",       "flush_interval",
                                       "export_timeout", "incoming_sampled", NULL};
    gh_tracing_conf_t *t = &cfg->tracing;
    const gh_yaml_node_t *n;
    uint64_t u;
    int rc;
    t->sampling = 1.0;
    t->queue_size = 2048;
    t->batch_size = 256;
    t->flush_interval_ms = 1000;
    t->export_timeout_ms = 2000;
    if (node == NULL)
        return 0;
    if ((rc = gh_yaml_expect(doc, node, GH_YAML_MAP, "tracing")) != 0 ||
        (rc = gh_yaml_check_keys(doc, node, keys, "tracing")) != 0 ||
        (rc = gh_yaml_require(doc, node, "collector", "tracing", &n)) != 0 ||
        (rc = opt_str(doc, node, "collector", &t->collector)) != 0 ||
        (rc = opt_str(doc, node, "service_name", &t->service_name)) != 0)
        return rc;
    if (strncmp(t->collector, "http://", 7) != 0 && strncmp(t->collector, "https://", 8) != 0)
        return gh_yaml_error(doc, n, "tracing collector must be an http:// or https:// URL");
    if (t->service_name == NULL && (rc = dup_str(doc, "gatehouse", &t->service_name)) != 0)
        return rc;
    if ((n = gh_yaml_map_get(node, "sampling")) != NULL) {
        const char *v;
        char *end;
        if ((rc = gh_yaml_str(doc, n, "sampling", &v)) != 0)
            return rc;
        double d = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || !(d >= 0.0 && d <= 1.0))
            return gh_yaml_error(doc, n, "sampling must be a number from 0 to 1, not '%s'", v);
        t->sampling = d;
    }
    if ((n = gh_yaml_map_get(node, "queue_size")) != NULL) {
        if ((rc = gh_yaml_uint(doc, n, "queue_size", 1, 1000000, &u)) != 0)
            return rc;
        t->queue_size = (uint32_t)u;
    }
    if ((n = gh_yaml_map_get(node, "batch_size")) != NULL) {
        if ((rc = gh_yaml_uint(doc, n, "batch_size", 1, 100000, &u)) != 0)
            return rc;
        t->batch_size = (uint32_t)u;
    }
    if ((n = gh_yaml_map_get(node, "flush_interval")) != NULL &&
        (rc = gh_yaml_duration_max(doc, n, "flush_interval", 60000, &t->flush_interval_ms)) != 0)
        return rc;
    if ((n = gh_yaml_map_get(node, "export_timeout")) != NULL &&
        (rc = gh_yaml_duration_max(doc, n, "export_timeout", 60000, &t->export_timeout_ms)) != 0)
        return rc;
    if ((n = gh_yaml_map_get(node, "incoming_sampled")) != NULL &&
        (rc = parse_incoming_sampled(doc, n, &t->incoming_sampled)) != 0)
        return rc;
    t->enabled = 1;
    return 0;
}

void gh_config_free_sections(gh_config_t *cfg)
{
    gh_config_free_providers(cfg);
    gh_config_free_authorizers(cfg);
    free(cfg->admin.address);
    free(cfg->admin.token_file);
    free(cfg->admin.token_env);
    free(cfg->admin.token);
    free(cfg->access_log.path);
    for (size_t i = 0; i < cfg->access_log.num_secret_query; i++)
        free(cfg->access_log.secret_query[i]);
    free(cfg->access_log.secret_query);
    free(cfg->tracing.collector);
    free(cfg->tracing.service_name);
}

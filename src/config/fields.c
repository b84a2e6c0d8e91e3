/*
 * Config checks about HTTP fields: which header names an option may set,
 * and the listener's trusted_proxies.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gatehouse/config.h>
#include <gatehouse/fields.h>
#include <gatehouse/h1.h>

#include "config/sections.h"

const char *gh_config_header_name_refused(const char *name)
{
    return gh_field_owned(name, strlen(name));
}

int gh_config_parse_trusted_proxies(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                                    gh_listener_conf_t *l)
{
    int rc;
    if (n == NULL)
        return 0;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_SEQ, "'trusted_proxies'")) != 0)
        return rc;
    l->trusted_proxies = calloc(n->count + 1, sizeof(*l->trusted_proxies));
    if (l->trusted_proxies == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *it = n->head; it != NULL; it = it->next) {
        const char *v, *why;
        if ((rc = gh_yaml_str(doc, it, "trusted_proxies entry", &v)) != 0)
            return rc;
        if ((why = gh_cidr_parse(v, &l->trusted_proxies[l->num_trusted_proxies])) != NULL)
            return gh_yaml_error(doc, it, "trusted_proxies entry '%s' %s", v, why);
        l->num_trusted_proxies++;
    }
    return 0;
}

int gh_config_parse_default_host(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, char **out)
{
    const char *v;
    int rc = gh_yaml_str(doc, n, "default_host", &v);
    if (rc != 0)
        return rc;
    if (!gh_h1_authority_is_valid(v, strlen(v)))
        return gh_yaml_error(doc, n, "default_host '%s' is not a valid host[:port]", v);
    *out = strdup(v);
    return *out == NULL ? gh_yaml_oom(doc) : 0;
}

/* ---- strings and names shared by the sections' parsers (sections.h) ---- */

int gh_config_dup(const gh_yaml_doc_t *doc, const char *s, char **out)
{
    *out = strdup(s);
    return *out == NULL ? gh_yaml_oom(doc) : 0;
}

int gh_config_dup_lower(const gh_yaml_doc_t *doc, const char *s, char **out)
{
    int rc = gh_config_dup(doc, s, out);
    for (char *p = rc == 0 ? *out : NULL; p != NULL && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return rc;
}

int gh_config_str(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key, char **out)
{
    const char *v;
    int rc = gh_yaml_str(doc, n, key, &v);
    if (rc != 0)
        return rc;
    if (v[0] == '\0')
        return gh_yaml_error(doc, n, "%s must not be empty", key);
    return gh_config_dup(doc, v, out);
}

static int is_token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c && strchr(extra, c))))
            return 0;
    }
    return 1;
}

int gh_config_header(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key, char **out)
{
    const char *v;
    int rc = gh_yaml_str(doc, n, key, &v);
    if (rc != 0)
        return rc;
    if (!is_token(v))
        return gh_yaml_error(doc, n, "%s '%s' is not a valid header name", key, v);
    return gh_config_dup_lower(doc, v, out);
}

/* A header an option makes gatehouse set upstream: a valid name, and not
 * one of the fields gatehouse owns (`sub: content-length` would send two
 * Content-Length fields). */
int gh_config_set_header(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key,
                         char **out)
{
    int rc = gh_config_header(doc, n, key, out);
    if (rc != 0)
        return rc;
    const char *why = gh_config_header_name_refused(*out);
    if (why != NULL)
        return gh_yaml_error(doc, n, "%s '%s' %s", key, *out, why);
    return 0;
}

/* A list of strings, or one string. */
int gh_config_str_list(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key,
                       char ***out, size_t *count)
{
    size_t cap = n->kind == GH_YAML_SEQ ? n->count : 1;
    if (n->kind == GH_YAML_MAP)
        return gh_yaml_error(doc, n, "%s must be a string or a list of strings", key);
    if (n->kind == GH_YAML_SEQ && n->count == 0)
        return gh_yaml_error(doc, n, "%s must not be an empty list", key);
    *out = calloc(cap + 1, sizeof(char *));
    if (*out == NULL)
        return gh_yaml_oom(doc);
    if (n->kind == GH_YAML_SCALAR) {
        *count = 1;
        return gh_config_str(doc, n, key, &(*out)[0]);
    }
    for (const gh_yaml_node_t *it = n->head; it != NULL; it = it->next) {
        int rc = gh_config_str(doc, it, key, &(*out)[*count]);
        if (rc != 0)
            return rc;
        (*count)++;
    }
    return 0;
}

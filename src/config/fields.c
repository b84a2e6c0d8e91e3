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

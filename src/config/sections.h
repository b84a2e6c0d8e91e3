/*
 * Config sections that live outside config.c: each parses its own key of
 * the root mapping (node is NULL when the key is absent) into cfg, and
 * gh_config_free_sections() releases what they allocated.
 */
#ifndef GATEHOUSE_CONFIG_SECTIONS_H
#define GATEHOUSE_CONFIG_SECTIONS_H

#include <gatehouse/yaml.h>

/* "IPv4:port" or "[IPv6]:port", numeric only, into ss. Returns NULL, or
 * why not ("needs a port" ...), to follow the address in a message. */
const char *gh_config_numeric_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

int gh_config_parse_admin(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg);
int gh_config_parse_access_log(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                               gh_config_t *cfg);
int gh_config_parse_tracing(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg);
int gh_config_parse_providers(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                              gh_config_t *cfg);
void gh_config_free_providers(gh_config_t *cfg);
/* providers.authorizers (authorizers.c), after the jwt and apikeys ones. */
int gh_config_parse_authorizers(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                                gh_config_t *cfg);
void gh_config_free_authorizers(gh_config_t *cfg);
/* The `lambda:` block of authorizers and lambda clusters (lambda.c):
 * function (a name or an ARN; a full ARN's region is the region), region,
 * qualifier, endpoint (a cluster's name, or none: gh_config_lambda_bind) and
 * profile; extra lists more keys the caller reads itself (NULL-terminated,
 * or NULL). The strings are the caller's, also after an error. */
typedef struct {
    char *function, *region, *qualifier, *endpoint, *profile;
} gh_config_lambda_t;
int gh_config_parse_lambda(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                           const char *const *extra, gh_config_lambda_t *out);
void gh_config_lambda_dispose(gh_config_lambda_t *a);
/* Once every cluster is parsed: a->region, when the block gave none, from
 * the AWS environment or profile (none: an error, for authorizers and
 * clusters alike), and the cluster that answers the Invoke API: the one
 * a->endpoint names, or the implicit one (gh_config_lambda_endpoint), whose
 * name then becomes a->endpoint. owner names the block in errors
 * ("cluster 'orders'"). *out is borrowed from cfg. */
int gh_config_lambda_bind(const gh_yaml_doc_t *doc, const gh_yaml_node_t *block, gh_config_t *cfg,
                          const char *owner, gh_config_lambda_t *a, gh_cluster_t **out);
/* A cluster of type lambda: n is its mapping; sets cl->lambda (freed with
 * gh_config_free_lambda_cluster, also after an error). bind runs once every
 * cluster is parsed: it resolves lambda.endpoint, and loads the region
 * (when the config gives none) and the credentials (main thread). */
int gh_config_parse_lambda_cluster(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                                   gh_cluster_t *cl);
int gh_config_bind_lambda_cluster(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                                  gh_config_t *cfg, gh_cluster_t *cl);
void gh_config_free_lambda_cluster(gh_lambda_cluster_t *l);
/* plans: parsed before the listeners, their route names checked after. */
int gh_config_parse_plans(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg);
int gh_config_check_plans(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                          const gh_config_t *cfg);
void gh_config_free_plans(gh_config_t *cfg);
void gh_config_free_sections(gh_config_t *cfg);

/* The cluster that answers Invoke API calls for a lambda block that names
 * none (config.c): AWS_ENDPOINT_URL_LAMBDA, else AWS_ENDPOINT_URL (the AWS
 * SDKs' variables; http:// or https://, an authority only), else
 * https://lambda.REGION.amazonaws.com, verified against the system's
 * trusted certificates. One cluster per URL, named by it, added to
 * cfg->clusters (in room parse_clusters left) and borrowed by the caller.
 * NULL after an error reported at `at`. */
gh_cluster_t *gh_config_lambda_endpoint(const gh_yaml_doc_t *doc, const gh_yaml_node_t *at,
                                        gh_config_t *cfg, const char *region);
/* A cluster's default_host: a valid authority (as in Host), into *out. */
int gh_config_parse_default_host(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, char **out);
/* A cluster's tls mapping (tls.c) into *out (allocated, context built);
 * errors name the key's file:line:col. */
int gh_config_parse_cluster_tls(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                                gh_cluster_tls_t **out);
void gh_config_cluster_tls_free(gh_cluster_tls_t *tls);
/* TLS verified against the system's trusted certificates (OpenSSL's
 * default paths; SSL_CERT_FILE and SSL_CERT_DIR move them), the server
 * name from the endpoint: the implicit Lambda endpoint's. */
int gh_config_cluster_tls_system(const gh_yaml_doc_t *doc, const gh_yaml_node_t *at,
                                 gh_cluster_tls_t **out);
/* A listener's trusted_proxies: a list of CIDRs (node NULL: none). */
int gh_config_parse_trusted_proxies(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                                    gh_listener_conf_t *l);

/* Helpers of the sections' parsers (fields.c). Each returns 0, or the
 * error of gh_yaml_error/gh_yaml_oom; what they allocate is the caller's. */
int gh_config_dup(const gh_yaml_doc_t *doc, const char *s, char **out);
/* The same, ASCII upper case made lower. */
int gh_config_dup_lower(const gh_yaml_doc_t *doc, const char *s, char **out);
/* A non-empty string at n, copied. */
int gh_config_str(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key, char **out);
/* A header name (an RFC 9110 token), copied lower-case. */
int gh_config_header(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key,
                     char **out);
/* The same for a header an option makes gatehouse set upstream: not one
 * of the fields gatehouse owns (gh_config_header_name_refused). */
int gh_config_set_header(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key,
                         char **out);
/* A string or a non-empty list of them: *out NULL-terminated, *count set. */
int gh_config_str_list(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key,
                       char ***out, size_t *count);

#endif

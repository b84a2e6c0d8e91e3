/*
 * The `lambda:` block, as authorizers and `type: lambda` clusters write it
 * (docs/lambda.md, docs/authorizers.md):
 *
 *   lambda: { function: NAME-OR-ARN, region: us-east-1, qualifier: live,
 *             endpoint: CLUSTER, profile: NAME }
 *
 * and the lambda clusters themselves, which add payload and max_body:
 *
 *   clusters:
 *     orders-fn:
 *       type: lambda
 *       lambda: { function: orders, endpoint: lambda-api, payload: "2.0", max_body: 1MiB }
 *     lambda-api: { endpoints: [127.0.0.1:9000] }
 *
 * The block's rules live here once, so that an authorizer and a cluster
 * naming the same function accept and refuse the same spellings.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/aws.h>
#include <gatehouse/config.h>
#include <gatehouse/yaml.h>

#include "config/sections.h"

#define LAMBDA_DEFAULT_MAX_BODY (1024 * 1024)
/* Lambda takes at most 6 MB of event (its synchronous Invoke limit); a body
 * sent base64 grows by a third, so more than 4.5 MiB could never fit. */
#define LAMBDA_MAX_BODY (4608 * 1024)

/* A Lambda function: a name (1-64 of [A-Za-z0-9_-]), a partial ARN
 * (ACCOUNT:function:NAME) or a full one (arn:aws:lambda:REGION:ACCOUNT:
 * function:NAME[:QUALIFIER]); the full ARN's region is the region. */
static int parse_function(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_lambda_t *a)
{
    int rc = gh_config_str(doc, n, "lambda.function", &a->function);
    if (rc != 0)
        return rc;
    const char *f = a->function;
    size_t len = strlen(f);
    if (len > 170)
        return gh_yaml_error(doc, n, "lambda.function is at most 170 characters");
    for (const char *p = f; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == ':'))
            return gh_yaml_error(doc, n,
                                 "lambda.function '%s' is not a function name or ARN (letters, "
                                 "digits, '-', '_', ':')",
                                 f);
    if (strncmp(f, "arn:", 4) == 0) {
        /* arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER] */
        char part[8][80];
        size_t np = 0, at = 0;
        for (const char *p = f;; p++) {
            if (*p == ':' || *p == '\0') {
                if (np == 8 || at == 0 || at >= sizeof(part[0]))
                    return gh_yaml_error(doc, n,
                                         "lambda.function '%s' is not a Lambda function ARN", f);
                part[np][at] = '\0';
                np++;
                at = 0;
                if (*p == '\0')
                    break;
                continue;
            }
            if (at + 1 < sizeof(part[0]))
                part[np < 8 ? np : 7][at] = *p;
            at++;
        }
        if (np < 7 || strcmp(part[2], "lambda") != 0 || strcmp(part[5], "function") != 0)
            return gh_yaml_error(doc, n,
                                 "lambda.function '%s' is not a Lambda function ARN "
                                 "(arn:aws:lambda:REGION:ACCOUNT:function:NAME)",
                                 f);
        if (a->region == NULL && (rc = gh_config_dup(doc, part[3], &a->region)) != 0)
            return rc;
        if (strcmp(a->region, part[3]) != 0)
            return gh_yaml_error(doc, n,
                                 "lambda.function is in region '%s', lambda.region says '%s'",
                                 part[3], a->region);
    }
    return 0;
}

int gh_config_parse_lambda(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                           const char *const *extra, gh_config_lambda_t *a)
{
    static const char *const base[] = {"function", "region", "qualifier", "endpoint", "profile"};
    const char *keys[16];
    size_t nk = 0;
    const gh_yaml_node_t *v;
    int rc;
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
        keys[nk++] = base[i];
    for (size_t i = 0; extra != NULL && extra[i] != NULL && nk + 1 < 16; i++)
        keys[nk++] = extra[i];
    keys[nk] = NULL;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "lambda")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "lambda")) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "region")) != NULL) {
        if ((rc = gh_config_str(doc, v, "lambda.region", &a->region)) != 0)
            return rc;
        if (!gh_aws_name_is_valid(a->region))
            return gh_yaml_error(doc, v, "lambda.region '%s' is not a region name", a->region);
    }
    if ((rc = gh_yaml_require(doc, n, "function", "lambda", &v)) != 0 ||
        (rc = parse_function(doc, v, a)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "qualifier")) != NULL) {
        if ((rc = gh_config_str(doc, v, "lambda.qualifier", &a->qualifier)) != 0)
            return rc;
        for (const char *p = a->qualifier; *p; p++)
            if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '$'))
                return gh_yaml_error(doc, v, "lambda.qualifier '%s' is not a version or alias",
                                     a->qualifier);
        if (strlen(a->qualifier) > 128)
            return gh_yaml_error(doc, v, "lambda.qualifier is at most 128 characters");
    }
    if ((v = gh_yaml_map_get(n, "profile")) != NULL &&
        (rc = gh_config_str(doc, v, "lambda.profile", &a->profile)) != 0)
        return rc;
    /* The Invoke API is reached through a cluster: without one named,
     * AWS's regional endpoint or the AWS_ENDPOINT_URL* one
     * (gh_config_lambda_bind). */
    if ((v = gh_yaml_map_get(n, "endpoint")) != NULL)
        return gh_config_str(doc, v, "lambda.endpoint", &a->endpoint);
    return 0;
}

int gh_config_lambda_bind(const gh_yaml_doc_t *doc, const gh_yaml_node_t *block, gh_config_t *cfg,
                          const char *owner, gh_config_lambda_t *a, gh_cluster_t **out)
{
    const gh_yaml_node_t *at = gh_yaml_map_get(block, "endpoint");
    *out = NULL;
    if (a->endpoint != NULL) {
        for (size_t i = 0; i < cfg->num_clusters; i++)
            if (!cfg->clusters[i].implicit && strcmp(cfg->clusters[i].name, a->endpoint) == 0)
                *out = &cfg->clusters[i];
        if (*out == NULL)
            return gh_yaml_error(doc, at, "lambda.endpoint names unknown cluster '%s'",
                                 a->endpoint);
        if ((*out)->lambda != NULL)
            return gh_yaml_error(doc, at,
                                 "lambda.endpoint '%s' is a lambda cluster: it must be one with "
                                 "endpoints that answer the Invoke API",
                                 a->endpoint);
    }
    /* The region signs every call and names AWS's endpoint: without one in
     * the config, the AWS environment's or the profile's, read now. */
    if (a->region == NULL) {
        char region[64], err[512];
        if (gh_aws_region_load(NULL, a->profile, region, sizeof(region), err, sizeof(err)) != 0)
            return gh_yaml_error(doc, block,
                                 "%s: no region for the Lambda function (set lambda.region, or "
                                 "give a full ARN): %s",
                                 owner, err);
        if ((a->region = strdup(region)) == NULL)
            return gh_yaml_oom(doc);
    }
    if (*out != NULL)
        return 0;
    gh_cluster_t *cl = gh_config_lambda_endpoint(doc, block, cfg, a->region);
    if (cl == NULL)
        return -EINVAL;
    if ((a->endpoint = strdup(cl->name)) == NULL)
        return gh_yaml_oom(doc);
    *out = cl;
    return 0;
}

void gh_config_lambda_dispose(gh_config_lambda_t *a)
{
    free(a->function);
    free(a->region);
    free(a->qualifier);
    free(a->endpoint);
    free(a->profile);
    memset(a, 0, sizeof(*a));
}

/* ---- type: lambda clusters ---- */

int gh_config_parse_lambda_cluster(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                                   gh_cluster_t *cl)
{
    static const char *const keys[] = {"type", "lambda", NULL};
    static const char *const extra[] = {"payload", "max_body", NULL};
    const gh_yaml_node_t *block, *v;
    gh_config_lambda_t ref = {0};
    int rc;
    if ((v = gh_yaml_map_get(n, "endpoints")) != NULL)
        return gh_yaml_error(doc, gh_yaml_map_key(n, "endpoints"),
                             "cluster '%s' is a lambda: it has no endpoints (its "
                             "lambda.endpoint cluster has them)",
                             cl->name);
    if ((rc = gh_yaml_check_keys(doc, n, keys, "a lambda cluster")) != 0 ||
        (rc = gh_yaml_require(doc, n, "lambda", "a lambda cluster", &block)) != 0)
        return rc;
    gh_lambda_cluster_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return gh_yaml_oom(doc);
    cl->lambda = l;
    l->payload = 2;
    l->max_body = LAMBDA_DEFAULT_MAX_BODY;
    rc = gh_config_parse_lambda(doc, block, extra, &ref);
    l->function = ref.function;
    l->region = ref.region;
    l->qualifier = ref.qualifier;
    l->endpoint = ref.endpoint;
    l->profile = ref.profile;
    if (rc != 0)
        return rc;
    if ((v = gh_yaml_map_get(block, "payload")) != NULL) {
        /* A YAML 2.0 unquoted is the float 2; both spellings mean it. */
        if (v->kind == GH_YAML_SCALAR && (strcmp(v->str, "2.0") == 0 || strcmp(v->str, "2") == 0))
            l->payload = 2;
        else if (v->kind == GH_YAML_SCALAR &&
                 (strcmp(v->str, "1.0") == 0 || strcmp(v->str, "1") == 0))
            l->payload = 1;
        else
            return gh_yaml_error(doc, v, "lambda.payload is \"2.0\" or \"1.0\"");
    }
    if ((v = gh_yaml_map_get(block, "max_body")) != NULL) {
        if (v->kind == GH_YAML_SCALAR && strcmp(v->str, "0") == 0)
            l->max_body = 0;
        else if ((rc = gh_yaml_size(doc, v, "lambda.max_body", 1, LAMBDA_MAX_BODY, &l->max_body)) !=
                 0)
            return rc;
    }
    return 0;
}

int gh_config_bind_lambda_cluster(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                                  gh_config_t *cfg, gh_cluster_t *cl)
{
    gh_lambda_cluster_t *l = cl->lambda;
    gh_config_lambda_t ref = {.region = l->region, .endpoint = l->endpoint, .profile = l->profile};
    char owner[96], err[512];
    snprintf(owner, sizeof(owner), "cluster '%s'", cl->name);
    int rc = gh_config_lambda_bind(doc, gh_yaml_map_get(n, "lambda"), cfg, owner, &ref,
                                   &l->endpoint_cluster);
    l->region = ref.region;
    l->endpoint = ref.endpoint;
    if (rc != 0)
        return rc;
    l->creds = gh_aws_creds_load(NULL, l->profile, err, sizeof(err));
    if (l->creds == NULL && (l->creds_error = strdup(err)) == NULL)
        return gh_yaml_oom(doc);
    return 0;
}

void gh_config_free_lambda_cluster(gh_lambda_cluster_t *l)
{
    if (l == NULL)
        return;
    free(l->function);
    free(l->region);
    free(l->qualifier);
    free(l->endpoint);
    free(l->profile);
    gh_aws_creds_free(l->creds);
    free(l->creds_error);
    free(l);
}

/*
 * The configuration: YAML file -> validated, immutable tree.
 *
 * gh_config_load() builds the whole tree or nothing: on any error it returns
 * NULL and fills err with "file:line:col: message". Everything in the tree is
 * owned by it and released by gh_config_free(); the proxy shares one tree
 * between workers read-only (through gh_snapshot_t, which adds the refcount).
 *
 * Every key is documented in docs/config.md with its default.
 */
#ifndef GATEHOUSE_CONFIG_H
#define GATEHOUSE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <gatehouse/cidr.h>
#include <gatehouse/limiter.h>

#include <gatehouse/path.h>

typedef struct {
    char msg[512];
} gh_config_error_t;

typedef enum {
    GH_MATCH_EXACT = 0,
    GH_MATCH_PREFIX,
    GH_MATCH_REGEX, /* PCRE2, JIT-compiled when available; unanchored unless the pattern anchors */
    GH_MATCH_PRESENT, /* headers and query only: the name is present (any value) */
    GH_MATCH_ABSENT,  /* headers and query only: the name is absent */
} gh_match_kind_t;

typedef struct {
    gh_match_kind_t kind;
    char *value; /* exact/prefix literal or regex source, NUL-terminated */
    size_t value_len;
    pcre2_code *re;              /* GH_MATCH_REGEX only */
    pcre2_match_data *md_unused; /* reserved; workers allocate their own match data */
} gh_strmatch_t;

typedef struct {
    char *name; /* headers: lower-cased; query: as written */
    size_t name_len;
    gh_strmatch_t match;
} gh_kvmatch_t;

typedef struct {
    char *name; /* lower-cased header name */
    size_t name_len;
    char *value;
    size_t value_len;
} gh_header_kv_t;

typedef struct gh_cluster_s gh_cluster_t;

typedef struct {
    gh_cluster_t *cluster; /* borrowed from config->clusters */
    uint32_t weight;       /* >= 1 (default 1) */
} gh_route_target_t;

typedef struct {
    int status; /* 200..599: a 1xx is not a final response */
    gh_header_kv_t *headers;
    size_t num_headers;
    char *body; /* may be NULL */
    size_t body_len;
} gh_direct_response_t;

/* ---- token authentication (providers.jwt, route authn) ---- */

typedef enum {
    GH_TOKEN_FROM_HEADER = 0, /* value after an optional prefix ("Bearer " by default) */
    GH_TOKEN_FROM_QUERY,
    GH_TOKEN_FROM_COOKIE,
} gh_token_from_kind_t;

typedef struct {
    gh_token_from_kind_t kind;
    char *name; /* header names lower-cased */
    size_t name_len;
    char *prefix; /* headers only; matched case-insensitively; may be NULL */
    size_t prefix_len;
} gh_token_from_t;

typedef enum {
    GH_CLAIM_EXACT = 0, /* the claim equals the one value */
    GH_CLAIM_ONE_OF,    /* the claim equals one of the values */
    GH_CLAIM_CONTAINS,  /* an array claim, or a space-separated string (scope), holds every value */
} gh_claim_op_t;

typedef struct {
    char *claim; /* dotted path for nested claims */
    gh_claim_op_t op;
    char **values;
    size_t num_values;
} gh_claim_req_t;

typedef struct {
    char *claim;  /* dotted path */
    char *header; /* lower-cased */
} gh_claim_header_t;

typedef enum {
    GH_JWKS_INLINE = 0,
    GH_JWKS_FILE,
    GH_JWKS_URI,
    GH_JWKS_DISCOVERY, /* jwks_uri from the issuer's well-known document */
    GH_JWKS_SELF,      /* issuer: self: the issuer section's keys (gatehouse/issuer_keys.h) */
} gh_jwks_source_t;

#define GH_CONFIG_JWT_ALGS                                                                         \
    13 /* RS256..512, PS256..512, ES256..512, EdDSA, HS256..512 (bit order) */
extern const char *const gh_jwt_alg_names[GH_CONFIG_JWT_ALGS];

/* The most clock skew a JWT provider may allow past exp (clock_skew),
 * seconds: also how long past its exp a revoked token of the local issuer
 * stays known (src/filters/issuer), so that no provider takes it again. */
#define GH_JWT_MAX_CLOCK_SKEW 300

typedef struct {
    char *name;
    size_t index;
    char *issuer;
    char **audiences;
    size_t num_audiences;
    uint64_t clock_skew_s; /* default 60, at most GH_JWT_MAX_CLOCK_SKEW */
    int exp_optional;      /* default 0: exp is required */
    char *typ;             /* required "typ" header, e.g. "at+jwt"; NULL = any */
    gh_claim_req_t *required_claims;
    size_t num_required_claims;

    gh_jwks_source_t jwks_source;
    char *jwks_inline; /* document text */
    char *jwks_file;
    char *jwks_uri;            /* for URI; for DISCOVERY the issuer's well-known URL */
    uint64_t refresh_ms;       /* default 5m */
    uint64_t min_refresh_ms;   /* lower bound of Cache-Control max-age and of unknown-kid refetches;
                                  default 30s */
    uint64_t max_refresh_ms;   /* upper bound of Cache-Control max-age; default 24h */
    uint64_t fetch_timeout_ms; /* default 5s */
    int allow_symmetric;       /* oct keys and HS* algorithms; inline or file JWKS only */
    uint32_t algorithms;       /* bit set over gh_jwt_alg_names; default all asymmetric */

    gh_token_from_t *from; /* default: Authorization with prefix "Bearer " */
    size_t num_from;
    gh_claim_header_t *claims_to_headers;
    size_t num_claims_to_headers;
    char *payload_header;   /* lower-cased; NULL = none */
    int forward_token;      /* default 1 */
    char *realm;            /* WWW-Authenticate realm; default "gatehouse" */
    uint32_t cache_entries; /* verified tokens per worker; default 10000; 0 disables */
    /* "audiences: any": aud not checked (num_audiences is 0) */
    int audiences_any;
    /* jwks.insecure_http: http:// key and discovery URLs allowed */
    int insecure_http;
    /* 0: none; else iat is required and now - iat may not exceed it */
    uint64_t max_token_age_s;
} gh_jwt_provider_conf_t;

/* providers.apikeys.NAME: API keys kept in the store (docs/api-keys.md). */
typedef struct {
    char *name;
    size_t index;
    char *header;          /* lower-case field the key is read from, or NULL (query only) */
    char *query;           /* query parameter the key is read from, or NULL */
    char *consumer_header; /* set upstream to the key's consumer (client copies dropped), or NULL */
    size_t consumer_header_len;
    int forward_key;          /* 0 (default): the key is removed before forwarding */
    uint64_t cache_ttl_ms;    /* a found key is trusted this long per worker: revocation delay */
    uint64_t negative_ttl_ms; /* an unknown key is remembered this long per worker */
    uint32_t cache_entries;   /* per worker */
    char *realm;              /* for WWW-Authenticate */
    /* header and query as token locations (names borrowed from above), for
     * removing the key before forwarding */
    gh_token_from_t from[2];
    size_t num_from;
} gh_apikey_provider_conf_t;

/* providers.authorizers.NAME: a custom authorizer gatehouse calls, an AWS
 * API Gateway Lambda authorizer or an Envoy ext_authz service
 * (docs/authorizers.md). */
typedef enum {
    GH_AUTHORIZER_AWS_V2 = 1,     /* HTTP API payload format 2.0 */
    GH_AUTHORIZER_AWS_V1_TOKEN,   /* REST API TOKEN authorizer */
    GH_AUTHORIZER_AWS_V1_REQUEST, /* REST API REQUEST authorizer */
    GH_AUTHORIZER_ENVOY,          /* Envoy's ext_authz HTTP protocol */
} gh_authorizer_format_t;

typedef enum {
    GH_AUTHZ_SOURCE_HEADER = 1,
    GH_AUTHZ_SOURCE_QUERY,
    GH_AUTHZ_SOURCE_COOKIE,
} gh_authz_source_kind_t;

/* An identity source: where a value the authorizer needs is read. */
typedef struct {
    int kind;   /* gh_authz_source_kind_t */
    char *name; /* header: lower-case; query parameter and cookie: as written */
    size_t name_len;
    int authorization; /* the header source Authorization (one field per request) */
    char *text;        /* as written in the config ("$request.header.Authorization") */
} gh_authz_source_t;

/* A header set upstream from the authorizer's answer. */
typedef struct {
    char *header; /* lower-case; never a field gatehouse owns */
    char *source; /* "principalId", "usageIdentifierKey" or "context.KEY" */
} gh_authz_header_map_t;

typedef enum {
    GH_AUTHZ_ON_ERROR_500 = 0, /* API Gateway's answer */
    GH_AUTHZ_ON_ERROR_503,
    GH_AUTHZ_ON_ERROR_ALLOW, /* the request goes on without an identity */
} gh_authz_on_error_t;

/* Who shares an authorizer's answer cache. */
typedef enum {
    GH_AUTHZ_CACHE_WORKER = 0, /* each worker its own (the default) */
    GH_AUTHZ_CACHE_PROCESS,    /* one for every worker of the process */
} gh_authz_cache_scope_t;

typedef struct {
    char *name;
    size_t index;
    int format; /* gh_authorizer_format_t */

    /* The target: exactly one of http (a cluster of the config) and
     * lambda (the Invoke API, through lambda_endpoint's cluster). */
    char *cluster;   /* http.cluster */
    char *path;      /* http.path: where the event is POSTed; envoy: the prefix */
    char *function;  /* lambda.function: a name, a partial or a full ARN */
    char *region;    /* lambda.region, from the ARN, or from the environment at load */
    char *qualifier; /* lambda.qualifier, or NULL */
    char *endpoint;  /* lambda.endpoint: the cluster answering the Invoke API */
    char *profile;   /* lambda.profile: the AWS credentials profile, or NULL */

    gh_authz_source_t *sources; /* identity_sources, in order */
    size_t num_sources;
    int simple_responses;   /* aws-v2: an answer with isAuthorized is a simple one */
    char *token_validation; /* aws-v1-token: a regex the token must match, or NULL */
    void *token_re;         /* its pcre2_code */
    uint64_t ttl_ms;        /* result cache: 0 (off) to 3600 s, default 300 s */
    /* usageIdentifierKey: how long the worker trusts what the store said
     * about the key (found, unknown), as an apikeys provider's cache_ttl
     * and negative_cache_ttl (defaults 30 s and 5 s). */
    uint64_t usage_ttl_ms, usage_negative_ttl_ms;
    uint32_t cache_entries; /* per worker, or per process with cache_scope process */
    int cache_scope;        /* gh_authz_cache_scope_t */
    uint64_t timeout_ms;    /* one call, default 5 s */
    size_t max_response;    /* bytes of an answer, default 1 MiB */
    int on_error;           /* gh_authz_on_error_t */
    gh_authz_header_map_t *headers;
    size_t num_headers;
    char *realm; /* for WWW-Authenticate on 401 */

    /* The API these events describe (method ARNs, requestContext). */
    char *account_id, *api_id, *stage, *api_region;

    /* envoy: request fields sent to the service (lower-case; authorization,
     * host and the method/path are always sent), fields of an allowing
     * answer set upstream, fields of a denying answer passed to the
     * client, and the request body sent (0: none). */
    char **allowed_headers;
    size_t num_allowed_headers;
    char **upstream_headers;
    size_t num_upstream_headers;
    char **client_headers;
    size_t num_client_headers;
    size_t max_request_body;
} gh_authorizer_conf_t;

typedef struct {
    int all;                            /* every provider must accept (all:), else any one (any:) */
    int optional;                       /* a missing token passes; an invalid one never does */
    gh_jwt_provider_conf_t **providers; /* borrowed from config */
    size_t num_providers;
    gh_strmatch_t *exempt; /* paths that skip authentication */
    size_t num_exempt;
    /* API-key providers named by the route, borrowed from config, in the
     * order written (providers holds the JWT ones). */
    gh_apikey_provider_conf_t **apikeys;
    size_t num_apikeys;
    /* Authorizers named by the route, borrowed from config, in order. */
    gh_authorizer_conf_t **authorizers;
    size_t num_authorizers;
} gh_authn_conf_t;

typedef struct {
    char *name; /* from config, or "listener/#index" when omitted */
    size_t index;
    size_t listener; /* its listener's index in gh_config_t.listeners */

    /* match; a missing part matches everything */
    char **hosts; /* lower-cased; exact "api.example.com" or wildcard "*.example.com" */
    size_t num_hosts;
    int has_path;
    gh_strmatch_t path; /* exact, prefix or regex; matched against the path without the query */
    char **methods;     /* upper-case as written; NULL = any */
    size_t num_methods;
    gh_kvmatch_t *headers;
    size_t num_headers;
    gh_kvmatch_t *query;
    size_t num_query;

    /* action: exactly one of targets or direct */
    gh_route_target_t *targets;
    size_t num_targets;
    uint32_t total_weight;
    gh_direct_response_t *direct; /* the direct_response filter's conf, or NULL (borrowed) */

    gh_authn_conf_t *authn; /* the authn filter's conf, or NULL: no authentication (borrowed) */

    /* The sections of registered filter types (gatehouse/filter.h) this
     * route has, in registry (phase) order, including those it has only
     * because its listener has them (a type's parse_listener); each conf
     * owned here and freed by its type's free_conf. */
    struct gh_route_filter_s {
        const struct gh_filter_type_s *type;
        void *conf;
    } * filters;
    size_t num_filters;

    uint64_t max_body;   /* bytes; default 1 GiB; 0 = no body allowed */
    uint64_t timeout_ms; /* upstream response timeout (first byte of head); default 15s */
    /* Request trailer names forwarded upstream, lower-cased; none by default. */
    char **forward_trailers;
    size_t num_forward_trailers;
} gh_route_t;

typedef struct {
    char *name;
    char *address; /* as written: "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:80" */
    struct sockaddr_storage addr;
    socklen_t addrlen;

    uint64_t header_timeout_ms; /* 408 if a request head is not complete; default 10s */
    uint64_t idle_timeout_ms;   /* keep-alive idle close; default 60s */
    uint64_t body_timeout_ms;   /* max gap between body reads/writes; default 60s */
    size_t max_head;            /* request head bytes (431); default 64KiB */
    size_t max_headers;         /* header field count (431); default 100 */
    size_t max_uri;             /* request-target bytes (414); default 8KiB */

    gh_route_t *routes;
    size_t num_routes;

    gh_path_opts_t path; /* normalize_path, merge_slashes, escaped_slashes, path_params */
    /* Peers whose forwarding fields (X-Forwarded-*, Forwarded, X-Real-IP,
     * X-Request-Id) and trace sampling flags are believed; see
     * docs/http.md. Empty: nobody's. */
    gh_cidr_t *trusted_proxies;
    size_t num_trusted_proxies;
    uint32_t max_connections;       /* open client connections per worker; default 10000 */
    uint32_t max_conns_per_address; /* per client address, per worker; default 0 = no limit */
    /* Sections of filter types that a listener may carry for all its
     * routes (gh_filter_type_t.parse_listener), in registry order; each
     * conf owned here and freed by its type's free_conf. */
    struct gh_route_filter_s *filters;
    size_t num_filters;
} gh_listener_conf_t;

typedef enum {
    GH_LB_ROUND_ROBIN = 0,
    GH_LB_LEAST_REQUEST, /* power of two random choices */
    GH_LB_RANDOM,
} gh_lb_kind_t;

typedef struct {
    char *address;                /* as written: "127.0.0.1:9000" or "localhost:9000" */
    struct sockaddr_storage addr; /* resolved at load time (first result) */
    socklen_t addrlen;
    uint32_t weight; /* >= 1, default 1 */
} gh_endpoint_conf_t;

/* clusters.NAME with `type: lambda` (docs/lambda.md): an AWS Lambda
 * function behind the Invoke API, reached through another cluster. */
typedef struct {
    char *function;  /* lambda.function: a name, a partial ARN or a full ARN, as written */
    char *region;    /* lambda.region, the ARN's, or the AWS environment's or profile's */
    char *qualifier; /* lambda.qualifier (a version or alias), or NULL */
    char *endpoint;  /* lambda.endpoint: the name of the cluster that answers the Invoke API */
    char *profile;   /* lambda.profile, or NULL: the AWS default chain */
    gh_cluster_t *endpoint_cluster; /* that cluster (an HTTP one), borrowed from config */
    int payload;                    /* lambda.payload: 2 ("2.0", default) or 1 ("1.0") */
    uint64_t max_body;              /* request body bytes sent to the function; default 1 MiB */
    /* Static credentials, loaded with the config on the main thread
     * (gatehouse/aws.h); owned, immutable, shared by the workers. NULL
     * when they could not be loaded: creds_error says why, and requests
     * to the cluster are answered 503 (a config without them still loads,
     * so that `gatehouse validate` and the CLI work without AWS keys). */
    struct gh_aws_creds_s *creds;
    char *creds_error;
} gh_lambda_cluster_t;

/* A cluster's `tls` (docs/tls.md): TLS to its endpoints. The context is
 * built at load from these settings (certificates read then), shared by
 * every worker, and freed with the config. */
typedef struct {
    char *sni;       /* server name sent and verified; NULL: the endpoint's host when a name */
    char *ca_file;   /* trust anchors; NULL: OpenSSL's default paths (the system store) */
    char *cert_file; /* client certificate chain (mTLS), or NULL */
    char *key_file;  /* its key; set exactly when cert_file is */
    int verify;      /* 0 only with insecure_skip_verify: true */
    int min_version; /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
    void *ctx;       /* SSL_CTX, owned */
} gh_cluster_tls_t;

struct gh_cluster_s {
    char *name;
    size_t index; /* position in config->clusters */
    /* type: lambda: the function (owned); num_endpoints is then 0. NULL:
     * an HTTP cluster (the default type). */
    gh_lambda_cluster_t *lambda;
    gh_endpoint_conf_t *endpoints;
    size_t num_endpoints;
    uint32_t total_weight;
    gh_lb_kind_t lb;
    uint64_t connect_timeout_ms; /* default 2s */
    uint64_t idle_timeout_ms;    /* pooled upstream keep-alive; default 30s */
    uint32_t max_idle;           /* idle pooled connections per endpoint per worker; default 64 */
    size_t max_response_head;    /* default 64KiB */
    size_t max_response_headers; /* default 100 */
    /* Host sent for an HTTP/1.0 request without one; NULL: the endpoint's
     * address. A valid authority (checked at load). */
    char *default_host;
    /* Open connections per endpoint per worker (default 1024), and requests
     * waiting for one of them (default 1024). */
    uint32_t max_connections;
    uint32_t max_pending;
    gh_cluster_tls_t *tls; /* owned; NULL: plain TCP */
    /* It has an `inject` section (docs/inject.md): routes to it get the
     * inject filter, which parses the section itself. */
    int has_inject;
    /* Made for a Lambda endpoint URL (gh_config_lambda_endpoint), not
     * written: no key of the config names it, so that what a name means
     * does not hang on which lambda block came first. */
    int implicit;
};

/* admin: the admin API's own listener. Off unless the key is present. */
#define GH_ADMIN_IMPORT_BODY_DEFAULT (16u << 20)
#define GH_ADMIN_IMPORT_BODY_MIN 1024u
#define GH_ADMIN_IMPORT_BODY_MAX (64u << 20) /* the CSV parser's own bound */
typedef struct {
    int enabled;
    char *address; /* default "127.0.0.1:9901" */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *token_file;         /* bearer token read from this file (trimmed) ... */
    char *token_env;          /* ... or from this environment variable */
    char *token;              /* the token itself, loaded at config time; a secret */
    uint64_t max_import_body; /* POST /apikeys/import's CSV body; default 16 MiB */
} gh_admin_conf_t;

/* Access log fields, in output order. */
enum {
    GH_LOG_FIELD_TIME = 0,
    GH_LOG_FIELD_REQUEST_ID,
    GH_LOG_FIELD_LISTENER,
    GH_LOG_FIELD_ROUTE,
    GH_LOG_FIELD_METHOD,
    GH_LOG_FIELD_PATH,
    GH_LOG_FIELD_QUERY,
    GH_LOG_FIELD_STATUS,
    GH_LOG_FIELD_BYTES_IN,
    GH_LOG_FIELD_BYTES_OUT,
    GH_LOG_FIELD_DURATION,
    GH_LOG_FIELD_UPSTREAM,
    GH_LOG_FIELD_UPSTREAM_DURATION,
    GH_LOG_FIELD_CLIENT,
    GH_LOG_FIELD_USER_AGENT,
    GH_LOG_FIELD_PRINCIPAL,
    GH_LOG_FIELD_CONSUMER,
    GH_LOG_FIELD_TRACE_ID,
    GH_LOG_FIELD_ERROR,
    GH_LOG_FIELD_FILTER,
    GH_LOG_FIELD_COUNT
};
/* JSON key of each field, indexed by GH_LOG_FIELD_*. */
extern const char *const gh_access_log_field_names[GH_LOG_FIELD_COUNT];

/* access_log: one JSON object per request. Off unless the key is present. */
typedef struct {
    int enabled;
    char *path;          /* NULL = stdout */
    uint32_t fields;     /* bit set of GH_LOG_FIELD_*; default all */
    char **secret_query; /* query parameter names whose values are masked */
    size_t num_secret_query;
} gh_access_log_conf_t;

/* tracing.incoming_sampled: whose traceparent/b3 sampled flag decides. */
enum {
    GH_TRACE_SAMPLED_FROM_TRUSTED = 0, /* "trusted_proxies" (default) */
    GH_TRACE_SAMPLED_FROM_ANY,         /* "any" */
    GH_TRACE_SAMPLED_FROM_NONE,        /* "none": always the sampling ratio */
};

/* tracing: spans exported as OTLP/HTTP JSON. Off unless the key is present. */
typedef struct {
    int enabled;
    char *collector;            /* URL, e.g. http://127.0.0.1:4318/v1/traces (required) */
    double sampling;            /* 0..1, for new traces; default 1.0 */
    char *service_name;         /* default "gatehouse" */
    uint32_t queue_size;        /* spans waiting for export; default 2048 */
    uint32_t batch_size;        /* spans per export request; default 256 */
    uint64_t flush_interval_ms; /* default 1s */
    uint64_t export_timeout_ms; /* default 2s */
    int incoming_sampled;       /* GH_TRACE_SAMPLED_FROM_*: whose sampled flag is honoured */
} gh_tracing_conf_t;

/* store: where API keys and usage counts live (gatehouse/store.h,
 * docs/config.md#store). Always set: the defaults when the key is absent. */
typedef enum {
    GH_STORE_SQLITE = 0,
    GH_STORE_REDIS,
} gh_store_kind_t;

typedef struct {
    gh_store_kind_t kind;
    uint32_t max_pending;    /* lookups in flight at once; default 1024 */
    uint64_t usage_flush_ms; /* how often batched usage counts are written; default 1s */
    /* sqlite */
    char *path;               /* default "<state_dir>/gatehouse.db" */
    int path_is_default;      /* its directory (state_dir) is created on first open */
    char *state_dir;          /* the directory made for a default path */
    uint64_t busy_timeout_ms; /* wait for another writer's lock; default 5s */
    /* redis (src/store/redis_store.c) */
    char *address;       /* "host:port"; default "127.0.0.1:6379" */
    uint64_t timeout_ms; /* per lookup command; default 250ms */
    uint32_t pool;       /* connections per worker; default 2 */
    char *prefix;        /* prefix of every key; default "gatehouse:" */
} gh_store_conf_t;

/* ---- usage plans (plans:), docs/rate-limits.md ---- */

typedef struct {
    char *route;      /* a route's name (in any listener) */
    int has_throttle; /* a throttle per consumer on that route, besides the plan's */
    gh_rate_t throttle;
} gh_plan_route_t;

typedef struct {
    char *name;
    int has_throttle; /* per consumer, on every route: steady rate and burst */
    gh_rate_t throttle;
    int has_quota; /* per consumer: requests per day, week or month */
    gh_quota_t quota;
    int restrict_routes; /* `routes:` given: a key of this plan may call only those */
    gh_plan_route_t *routes;
    size_t num_routes;
    int fleet;     /* mode: fleet: counted in the shared store (store.kind: redis) */
    int fail_open; /* on_error: open: a fleet plan whose store fails lets requests pass */
} gh_plan_t;

/* issuer: the OAuth 2.0 token service (docs/issuer.md). NULL in the
 * config when the key is absent. Durations in seconds. */
typedef struct {
    char *url;              /* issuer: "iss" of every token; https://HOST[:PORT], no path */
    uint64_t token_ttl;     /* access token lifetime; default 3600 (60..86400) */
    int alg;                /* gh_jwt_alg_t of new signing keys: ES256 (default), RS256, EdDSA */
    int rsa_bits;           /* 2048 (default), 3072, 4096 */
    char *default_audience; /* for clients registered without audiences; NULL: none */
    uint64_t jwks_max_age;  /* the JWKS's Cache-Control max-age; default 300 */
    uint64_t publish_lead;  /* a new key's publishing before signing; default 360 */
    uint64_t leeway;        /* clock skew verifiers allow; default 60 */
    uint64_t assertion_lifetime; /* longest private_key_jwt assertion; default 3600 */
    uint32_t failed_auth_limit;  /* failed client authentications per minute per client id
                                    and address before 429 (an address alone: ten times);
                                    default 10 */
    char **introspectors;        /* client ids that may introspect any token (resource
                                    servers); others only their own */
    size_t num_introspectors;
    uint64_t revocation_poll_ms; /* how often revocations are read from the store; 5 s */
    uint32_t replay_capacity;    /* assertion jti kept; default 65536 */
} gh_issuer_conf_t;

typedef struct {
    char *path;                /* the file it came from */
    uint32_t workers;          /* 0 = one per core; the --workers flag overrides */
    uint64_t drain_timeout_ms; /* default 30s */

    gh_listener_conf_t *listeners;
    size_t num_listeners;
    gh_cluster_t *clusters;
    size_t num_clusters;
    /* The array's room: the written clusters, then the implicit Lambda
     * endpoints made while lambda blocks are parsed (docs/lambda.md). */
    size_t clusters_cap;

    gh_jwt_provider_conf_t *jwt_providers;
    size_t num_jwt_providers;
    gh_apikey_provider_conf_t *apikey_providers;
    size_t num_apikey_providers;
    gh_authorizer_conf_t *authorizers;
    size_t num_authorizers;

    /* Top-level sections owned by filter types (gh_filter_type_t
     * .parse_section: `policies`), in registry order; each freed by its
     * type's free_section. */
    struct gh_config_section_s {
        const struct gh_filter_type_s *type;
        void *section;
    } * sections;
    size_t num_sections;

    gh_admin_conf_t admin;
    gh_access_log_conf_t access_log;
    gh_tracing_conf_t tracing;

    gh_issuer_conf_t *issuer; /* owned; NULL: this gatehouse issues no tokens */

    char *state_dir; /* files gatehouse makes (the store); default "state" */
    gh_store_conf_t store;
    gh_plan_t *plans;
    size_t num_plans;
} gh_config_t;

/* Loads and validates path. Returns a new tree (caller owns; free with
 * gh_config_free) or NULL with err->msg = "path:line:col: message".
 * Endpoint host names are resolved here (getaddrinfo, first result). With the
 * environment variable GH_CONFIG_NO_DNS set (and not "0"), only numeric hosts
 * and "localhost" are accepted, so tests and fuzzing never touch DNS. */
gh_config_t *gh_config_load(const char *path, gh_config_error_t *err);

/* Same, from a buffer; name is used in error messages. For tests and fuzzing. */
gh_config_t *gh_config_load_buffer(const char *name, const char *buf, size_t len,
                                   gh_config_error_t *err);

void gh_config_free(gh_config_t *cfg);

/* "250ms", "5s", "2m", "1h" -> milliseconds. Returns 0 or -EINVAL. */
int gh_config_parse_duration(const char *s, uint64_t *ms);
/* "512", "64KiB", "1MiB", "2GiB" (also KB/MB/GB = 1000-based) -> bytes. */
int gh_config_parse_size(const char *s, uint64_t *bytes);

/* ---- for filters' config hooks (gatehouse/filter.h) ---- */

/* The route's authn section (the authn filter's parse): providers named
 * from the config's providers section; sets r->authn (freed with
 * gh_config_free_authn). */
struct gh_yaml_doc_s;
struct gh_yaml_node_s;
int gh_config_parse_authn(const struct gh_yaml_doc_s *doc, const struct gh_yaml_node_s *node,
                          const gh_config_t *cfg, gh_route_t *r);
void gh_config_free_authn(gh_authn_conf_t *a);

/* Rates and quotas as `plans:` and `rate_limits:` write them (src/config/
 * plans.c): a rate ("10/s" or {requests, per}); a map's `rate` and
 * optional `burst` (default: the rate's requests); a quota {limit, period,
 * offset}. Errors through gh_yaml_error. */
int gh_config_parse_rate(const struct gh_yaml_doc_s *doc, const struct gh_yaml_node_s *node,
                         gh_rate_t *out);
int gh_config_parse_rate_burst(const struct gh_yaml_doc_s *doc, const struct gh_yaml_node_s *map,
                               gh_rate_t *out);
int gh_config_parse_quota(const struct gh_yaml_doc_s *doc, const struct gh_yaml_node_s *node,
                          gh_quota_t *out);
/* Whether a rate (a bucket) or a quota (a window) fits the exact integer
 * arithmetic of a shared store's decision (`mode: fleet`): NULL when it
 * does, else why not. Either may be NULL. */
const char *gh_config_fleet_check(const gh_rate_t *rate, const gh_quota_t *quota);
/* The plan called name, or NULL. */
const gh_plan_t *gh_config_plan_find(const gh_config_t *cfg, const char *name);
/* A filter type's top-level section (gh_filter_type_t.parse_section), or
 * NULL when the type has none or parsed it into NULL. Borrowed. */
const void *gh_config_section(const gh_config_t *cfg, const struct gh_filter_type_s *type);
/* The conf a filter type parsed from listener number `listener`
 * (gh_filter_type_t.parse_listener), or NULL. Borrowed. */
const void *gh_config_listener_conf(const gh_config_t *cfg, size_t listener,
                                    const struct gh_filter_type_s *type);

/* The one check of a header name that an option makes gatehouse set or
 * drop (claims_to_headers, payload_header, direct_response headers, and
 * whatever comes next): NULL when allowed, else why not, to follow the
 * name in a message. Compared case-insensitively. */
const char *gh_config_header_name_refused(const char *name);

#endif

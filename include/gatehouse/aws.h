/*
 * AWS: static credentials, the region, and Signature Version 4 signing, for
 * gatehouse's calls to AWS APIs (the Lambda Invoke API of authorizers and of
 * `lambda` clusters). docs/internals/aws.md says what is signed and how, and
 * where credentials come from.
 *
 * Credentials and the region are resolved the way the AWS CLI and SDKs
 * resolve static keys: the environment (AWS_ACCESS_KEY_ID ...), then a
 * profile of the shared credentials file, then of the shared config file.
 * Loading reads files and the environment: do it on the main thread at
 * config load or reload, never on a worker. Assume-role, SSO, web identity,
 * credential_process, container and instance (IMDS) credentials are not
 * supported; a profile that asks for one of them is refused by name.
 *
 * Signing is a pure function of the request, the credentials, the region,
 * the service and a time given by the caller (no clock is read): any thread
 * may sign with one shared gh_aws_creds_t. It allocates nothing of its own;
 * OpenSSL's digest and HMAC calls may allocate inside.
 *
 * No function here logs, and no error message holds a secret (a secret key
 * or a session token) or a line of a credentials file.
 */
#ifndef GATEHOUSE_AWS_H
#define GATEHOUSE_AWS_H

#include <stddef.h>
#include <stdint.h>

/* ---- credentials and region ---- */

typedef struct gh_aws_creds_s gh_aws_creds_t;

/* Where the environment comes from: getenv(name, arg) returns a value the
 * caller keeps alive during the call, or NULL when the variable is unset.
 * Passing NULL for a gh_aws_env_t means the process environment (getenv(3),
 * so the main thread only). Tests inject everything through it, HOME too:
 * nothing below reads the real HOME when an env is given. */
typedef struct {
    const char *(*getenv)(const char *name, void *arg);
    void *arg;
} gh_aws_env_t;

/* Credentials from explicit values (copied; the caller may wipe its own).
 * session_token may be NULL or "". NULL with a message in err when a value
 * is malformed (an access key id of 1-128 [A-Za-z0-9_], a secret of 1-256
 * visible ASCII characters, a token of at most 16384 of them) or when out
 * of memory. The result is freed with gh_aws_creds_free. */
gh_aws_creds_t *gh_aws_creds_new(const char *access_key_id, const char *secret_access_key,
                                 const char *session_token, char *err, size_t errcap);

/* Resolves static credentials (docs/internals/aws.md, "Credentials"):
 *   1. unless profile is given: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
 *      with AWS_SESSION_TOKEN (or the older AWS_SECURITY_TOKEN);
 *   2. the profile (profile, else AWS_PROFILE, else "default") in the shared
 *      credentials file (AWS_SHARED_CREDENTIALS_FILE, else
 *      ~/.aws/credentials), section [NAME];
 *   3. the same profile in the shared config file (AWS_CONFIG_FILE, else
 *      ~/.aws/config), section [profile NAME] (or [default]).
 * Borrows env (NULL: the process environment) and profile (NULL: none
 * given). Returns new credentials (gh_aws_creds_free), or NULL with a
 * message in err: none found (it says where it looked), a named profile
 * that exists nowhere, half a key pair, a profile (or AWS_ROLE_ARN with
 * AWS_WEB_IDENTITY_TOKEN_FILE) that needs an unsupported provider, an
 * unreadable or malformed file (FILE:LINE: why). */
gh_aws_creds_t *gh_aws_creds_load(const gh_aws_env_t *env, const char *profile, char *err,
                                  size_t errcap);

/* Wipes the secrets and frees. NULL is fine. */
void gh_aws_creds_free(gh_aws_creds_t *c);

/* The access key id (not a secret: every signed request carries it), and
 * where the credentials came from ("environment", "profile NAME in PATH",
 * "explicit"): for log lines. Borrowed from c. */
const char *gh_aws_creds_access_key_id(const gh_aws_creds_t *c);
const char *gh_aws_creds_source(const gh_aws_creds_t *c);
int gh_aws_creds_has_session_token(const gh_aws_creds_t *c);

/* Resolves the region: AWS_REGION, else AWS_DEFAULT_REGION, else `region`
 * in the profile (chosen as for credentials; the credentials file's value
 * wins over the config file's). Writes it NUL-terminated into region[cap]
 * (64 bytes always suffice) and returns 0; -ENOENT when none is set (err
 * says where it looked); another negative errno with err for a malformed
 * value or file. */
int gh_aws_region_load(const gh_aws_env_t *env, const char *profile, char *region, size_t cap,
                       char *err, size_t errcap);

/* Whether s is a well-formed region or service name: 1-63 of [a-z0-9-]. */
int gh_aws_name_is_valid(const char *s);

/* ---- Signature Version 4 ---- */

/* A header of the request to sign: name and value as they will be sent. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} gh_aws_header_t;

/* Bounds of one request (larger ones are refused with -E2BIG). */
#define GH_AWS_SIGV4_MAX_HEADERS 32
#define GH_AWS_SIGV4_MAX_PARAMS 32
#define GH_AWS_SIGV4_MAX_PATH 4096
#define GH_AWS_SIGV4_MAX_QUERY 4096
#define GH_AWS_SIGV4_AUTH_MAX 1024

/* Everything borrowed for the call only. */
typedef struct {
    const char *method; /* NUL-terminated, an upper-case token: "POST" */
    /* The path exactly as it goes on the request line, already
     * percent-encoded ("/2015-03-31/functions/arn%3Aaws%3A.../invocations"),
     * starting with '/'. The signer normalizes it (dot segments, empty
     * segments) and percent-encodes it once more: the double encoding AWS
     * asks of every service but S3 (which this signer does not serve). */
    const char *path;
    size_t path_len;
    /* The query after '?', as it goes on the wire (NULL or "" for none).
     * Each name and value is percent-decoded and encoded again the RFC 3986
     * way, so %7e and ~ sign alike; '+' is a plus sign, not a space. Empty
     * pairs ("a&&b") and a '%' without two hex digits are refused. */
    const char *query;
    size_t query_len;
    /* Every header that will be sent and should be signed. Host is
     * required, once. Authorization, X-Amz-Date and X-Amz-Security-Token
     * are refused (the signer makes them). Hop-by-hop and proxy-rewritten
     * headers (connection, expect, keep-alive, proxy-authenticate,
     * proxy-authorization, te, trailer, transfer-encoding, upgrade,
     * user-agent, x-amzn-trace-id) may be given and are not signed, as
     * botocore does not sign them. Names are tokens; values visible ASCII,
     * spaces and tabs (obs-fold and other bytes are refused). */
    const gh_aws_header_t *headers;
    size_t num_headers;
    const void *payload; /* the whole body (NULL when payload_len is 0) */
    size_t payload_len;
    const char *region;  /* "us-east-1" */
    const char *service; /* "lambda" */
    int64_t time;        /* seconds since the epoch, UTC: the signing time */
} gh_aws_sigv4_req_t;

/* What to add to the request: the headers X-Amz-Date, X-Amz-Security-Token
 * (when security_token is not NULL) and Authorization, with these values.
 * security_token is borrowed from the credentials. */
typedef struct {
    char amz_date[17]; /* "20150830T123600Z" */
    const char *security_token;
    char authorization[GH_AWS_SIGV4_AUTH_MAX];
    size_t authorization_len;
    char payload_sha256[65]; /* lowercase hex, as signed */
    const char *error;       /* static text: why a call failed */
} gh_aws_sigv4_out_t;

/* Signs req with creds. Returns 0 and fills out, or -EINVAL (a malformed
 * request: out->error says what), -E2BIG (past a bound above), -ENOMEM
 * (OpenSSL). */
int gh_aws_sigv4_sign(const gh_aws_sigv4_req_t *req, const gh_aws_creds_t *creds,
                      gh_aws_sigv4_out_t *out);

/* Writes out's headers as HTTP/1.1 field lines ("Name: value\r\n" each)
 * into buf[cap] when they fit. Returns their length (a larger value than
 * cap means nothing was written). */
size_t gh_aws_sigv4_headers(const gh_aws_sigv4_out_t *out, char *buf, size_t cap);

#endif

/*
 * Test driver, not a test: signs requests read from stdin and prints what
 * gatehouse's signer made of each, for tests/integration/test_aws_sigv4.py
 * to compare with botocore. Built with the unit tests (build/aws_sigv4_driver).
 *
 * One JSON object per input line; every byte string is hex, so any byte can
 * be sent:
 *   {"method": "POST", "path": HEX, "query": HEX, "headers": [[HEX, HEX], ...],
 *    "payload": HEX, "region": "us-east-1", "service": "lambda", "time": 1440938160,
 *    "access_key": "AKID", "secret_key": "...", "token": "..." | null}
 * One JSON object per output line, in order:
 *   {"rc": 0, "creq": "...", "sts": "...", "authorization": "...", "amz_date": "...",
 *    "token": "..." | null, "headers": "X-Amz-Date: ...\r\n..."}
 *   {"rc": -22, "error": "..."}
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../../src/aws/sigv4.c"

static int unhex(const char *s, char **out, size_t *len)
{
    if (s == NULL)
        return -1;
    size_t n = strlen(s);
    if (n % 2 != 0)
        return -1;
    char *b = malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = gh_hex_value((unsigned char)s[2 * i]),
            lo = gh_hex_value((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return -1;
        }
        b[i] = (char)(hi << 4 | lo);
    }
    b[n / 2] = '\0';
    *out = b;
    *len = n / 2;
    return 0;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static json_t *sign_one(json_t *in)
{
    char err[256];
    json_t *tok = json_object_get(in, "token");
    gh_aws_creds_t *c =
        gh_aws_creds_new(str(in, "access_key"), str(in, "secret_key"),
                         json_is_string(tok) ? json_string_value(tok) : NULL, err, sizeof(err));
    if (c == NULL)
        return json_pack("{s:i, s:s}", "rc", -EINVAL, "error", err);
    char *path = NULL, *query = NULL, *payload = NULL;
    size_t path_len = 0, query_len = 0, payload_len = 0;
    json_t *hs = json_object_get(in, "headers");
    size_t nh = json_array_size(hs);
    gh_aws_header_t *headers = calloc(nh + 1, sizeof(*headers));
    int bad = unhex(str(in, "path"), &path, &path_len) ||
              unhex(str(in, "query"), &query, &query_len) ||
              unhex(str(in, "payload"), &payload, &payload_len);
    for (size_t i = 0; i < nh && !bad; i++) {
        json_t *h = json_array_get(hs, i);
        char *n = NULL, *v = NULL;
        bad = unhex(json_string_value(json_array_get(h, 0)), &n, &headers[i].name_len) ||
              unhex(json_string_value(json_array_get(h, 1)), &v, &headers[i].value_len);
        headers[i].name = n;
        headers[i].value = v;
    }
    json_t *res;
    if (bad) {
        res = json_pack("{s:i, s:s}", "rc", -EINVAL, "error", "driver: bad hex");
    } else {
        gh_aws_sigv4_req_t req = {
            .method = str(in, "method"),
            .path = path,
            .path_len = path_len,
            .query = query,
            .query_len = query_len,
            .headers = headers,
            .num_headers = nh,
            .payload = payload_len > 0 ? payload : NULL,
            .payload_len = payload_len,
            .region = str(in, "region"),
            .service = str(in, "service"),
            .time = json_integer_value(json_object_get(in, "time")),
        };
        static char creq[65536];
        sigv4_trace_t tr = {.creq = creq, .creq_cap = sizeof(creq) - 1};
        gh_aws_sigv4_out_t out;
        int rc = sign(&req, c, &out, &tr);
        if (rc != 0) {
            res = json_pack("{s:i, s:s}", "rc", rc, "error", out.error);
        } else {
            creq[tr.creq_len < sizeof(creq) ? tr.creq_len : sizeof(creq) - 1] = '\0';
            char hb[32768];
            size_t hn = gh_aws_sigv4_headers(&out, hb, sizeof(hb) - 1);
            hb[hn < sizeof(hb) ? hn : 0] = '\0';
            res = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s?, s:s, s:s}", "rc", 0, "creq", creq,
                            "sts", tr.sts, "authorization", out.authorization, "amz_date",
                            out.amz_date, "token", out.security_token, "headers", hb,
                            "payload_sha256", out.payload_sha256);
        }
    }
    for (size_t i = 0; i < nh; i++) {
        free((char *)headers[i].name);
        free((char *)headers[i].value);
    }
    free(headers);
    free(path);
    free(query);
    free(payload);
    gh_aws_creds_free(c);
    return res;
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
        json_error_t je;
        json_t *in = json_loads(line, 0, &je);
        if (in == NULL) {
            fprintf(stderr, "aws_sigv4_driver: %s\n", je.text);
            free(line);
            return 2;
        }
        json_t *res = sign_one(in);
        char *s = json_dumps(res, JSON_COMPACT);
        puts(s);
        fflush(stdout);
        free(s);
        json_decref(res);
        json_decref(in);
    }
    free(line);
    return 0;
}

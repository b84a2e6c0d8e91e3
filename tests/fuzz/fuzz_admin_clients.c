/* libFuzzer target: what gatehouse reads to register an OAuth client
 * (src/admin/clients.c, src/store/client.c): the JSON bodies of create and
 * rotate-secret, the routing of /clients paths, and the checks of
 * names, scope and audience lists, method names and client JWKS on the
 * raw input. Checks that a refusal says why in printable ASCII, that an
 * accepted list is "a b c" of items without separators or odd bytes, that
 * a route's id is a client id, and that numbers stay in their bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/client.h>

#include "admin/clients.h"

static void check_why(int rc, const char *why)
{
    if (rc == 0)
        return;
    if (why[0] == '\0' && rc != -12 /* ENOMEM */)
        abort();
    for (const char *p = why; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            abort();
}

/* "a b c": printable ASCII items, one space apart, no '"' or '\\'. */
static void check_list(const char *s)
{
    size_t n = strlen(s);
    if (n > 0 && (s[0] == ' ' || s[n - 1] == ' ' || strstr(s, "  ") != NULL))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '"' ||
            s[i] == '\\' || s[i] == ',')
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1); /* exactly size bytes: ASan sees overreads */
    char *z = malloc(size + 1);        /* the same, NUL-terminated, for the string checks */
    if (s == NULL || z == NULL) {
        free(s);
        free(z);
        return 0;
    }
    memcpy(s, data, size);
    memcpy(z, data, size);
    z[size] = '\0';
    char why[400];

    gh_admin_cl_create_t c;
    why[0] = '\0';
    int rc = gh_admin_cl_parse_create(s, size, &c, why, sizeof(why));
    check_why(rc, why);
    if (rc == 0) {
        if (c.name == NULL || c.audiences == NULL || c.token_ttl < 0 ||
            c.token_ttl > GH_CLIENT_TTL_MAX || (c.auth_methods & ~(unsigned)GH_CLIENT_AUTH_ALL))
            abort();
        gh_admin_cl_create_dispose(&c);
    }
    int64_t grace;
    why[0] = '\0';
    rc = gh_admin_cl_parse_rotate(s, size, &grace, why, sizeof(why));
    check_why(rc, why);
    if (rc == 0 && (grace < 0 || grace > GH_CLIENT_GRACE_MAX))
        abort();

    const char *w = NULL;
    char *l = gh_client_scopes_normalize(z, &w);
    if (l != NULL) {
        check_list(l);
        free(l);
    } else if (w == NULL) {
        abort();
    }
    l = gh_client_audiences_normalize(z, &w);
    if (l != NULL) {
        check_list(l);
        if (l[0] == '\0' || strchr(l, '#') != NULL)
            abort();
        free(l);
    }
    unsigned m;
    if (gh_client_auth_parse(z, &m, &w) == 0 && (m & ~(unsigned)GH_CLIENT_AUTH_ALL))
        abort();
    (void)gh_client_check_name(z);
    why[0] = '\0';
    check_why(gh_client_check_jwks(s, size, why, sizeof(why)), why);
    if (gh_client_id_valid_n(s, size) && size != GH_CLIENT_ID_LEN)
        abort();

    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT"};
    char *path = malloc(size + 9);
    if (path != NULL) {
        memcpy(path, "/clients/", 9);
        memcpy(path + 9, s, size);
        for (size_t k = 0; k < 4; k++) {
            gh_admin_cl_route_t rt;
            gh_admin_reply_t r;
            memset(&r, 0, sizeof(r));
            if (gh_admin_cl_route(methods[k], strlen(methods[k]), path, size + 9, &rt, &r) == 0) {
                if (rt.op != GH_CL_LIST && rt.op != GH_CL_CREATE && !gh_client_id_valid(rt.id))
                    abort();
            } else if (r.body != NULL && r.status != 404 && r.status != 405) {
                abort();
            }
            gh_admin_reply_dispose(&r);
        }
        free(path);
    }
    free(s);
    free(z);
    return 0;
}

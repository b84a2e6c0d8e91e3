/*
 * AWS shared credentials / config files: one profile's keys (ini.h says the
 * grammar). One pass over the text, no allocation; every byte of every line
 * is looked at, so a malformed file is refused wherever the error is, not
 * only inside the profile read.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "aws/ini.h"

const char *const gh_aws_ini_key_names[GH_AWS_INI_NUM_KEYS] = {
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_security_token",
    "region",
};

/* Keys of a profile that select a provider gatehouse does not have. botocore
 * tries assume-role (role_arn, also with web_identity_token_file) and SSO
 * (sso_account_id / sso_role_name) before a profile's static keys, and
 * credential_process after them; using the keys in the first case would
 * sign as a different identity than the CLI does. */
static const char *const unsupported_before[] = {"role_arn", "sso_account_id", "sso_role_name"};
static const char *const unsupported_after[] = {"credential_process"};

__attribute__((format(printf, 5, 6))) static int
syntax_error(char *err, size_t cap, const char *file, unsigned line, const char *fmt, ...)
{
    if (cap > 0) {
        int n = snprintf(err, cap, "%s:%u: ", file, line);
        if (n >= 0 && (size_t)n < cap) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, cap - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int eq_nocase(const char *a, size_t n, const char *b)
{
    size_t m = strlen(b);
    if (n != m)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return 1;
}

/* Whether the section name s[0..n) is profile's section in a file of kind. */
static int section_matches(const char *s, size_t n, gh_aws_ini_kind_t kind, const char *profile)
{
    size_t plen = strlen(profile);
    if (kind == GH_AWS_INI_CREDENTIALS)
        return n == plen && memcmp(s, profile, n) == 0;
    if (strcmp(profile, "default") == 0 && n == 7 && memcmp(s, "default", 7) == 0)
        return 1;
    /* "profile" + blanks + name: botocore splits the name with shlex, so
     * any run of blanks separates. */
    if (n < 8 || memcmp(s, "profile", 7) != 0 || !is_blank(s[7]))
        return 0;
    size_t i = 8;
    while (i < n && is_blank(s[i]))
        i++;
    return n - i == plen && memcmp(s + i, profile, plen) == 0;
}

/* A setting name: visible ASCII but the separators and brackets. */
static int key_is_valid(const char *k, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c <= 0x20 || c >= 0x7f || c == '=' || c == ':' || c == '[' || c == ']')
            return 0;
    }
    return 1;
}

int gh_aws_ini_read(const char *text, size_t len, const char *file, gh_aws_ini_kind_t kind,
                    const char *profile, gh_aws_ini_profile_t *out, char *err, size_t errcap)
{
    memset(out, 0, sizeof(*out));
    const char *p = text, *end = text + len;
    unsigned line = 0;
    int have_section = 0, in_profile = 0;
    /* The setting an indented line would continue: its indent, and which of
     * ours it is (-1: another key, -2: none). */
    size_t key_indent = 0;
    int key_index = -2;

    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl != NULL ? nl : end;
        const char *next = nl != NULL ? nl + 1 : end;
        if (eol > p && eol[-1] == '\r')
            eol--;
        if ((size_t)(eol - p) > GH_AWS_INI_MAX_LINE)
            return syntax_error(err, errcap, file, line, "line longer than %d bytes",
                                GH_AWS_INI_MAX_LINE);
        for (const char *q = p; q < eol; q++) {
            unsigned char c = (unsigned char)*q;
            if (c == '\0')
                return syntax_error(err, errcap, file, line, "NUL byte");
            if (c == '\r')
                return syntax_error(err, errcap, file, line, "carriage return inside a line");
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return syntax_error(err, errcap, file, line, "control character 0x%02x", c);
        }
        const char *s = p;
        while (s < eol && is_blank(*s))
            s++;
        size_t indent = (size_t)(s - p);
        p = next;
        if (s == eol || *s == '#' || *s == ';')
            continue; /* blank or comment: a value may continue after it */
        const char *e = eol;
        while (e > s && is_blank(e[-1]))
            e--;

        if (key_index != -2 && indent > key_indent) {
            /* Continues the value above (configparser's multi-line values,
             * AWS's nested "s3 =" blocks). A key read here must be one line:
             * botocore would read the joined lines as the key. */
            if (key_index >= 0)
                return syntax_error(err, errcap, file, line,
                                    "%s continues on an indented line; a value is one line",
                                    gh_aws_ini_key_names[key_index]);
            continue;
        }
        key_index = -2;

        if (*s == '[') {
            const char *close = memchr(s, ']', (size_t)(e - s));
            if (close == NULL)
                return syntax_error(err, errcap, file, line, "section header without ']'");
            const char *rest = close + 1;
            while (rest < e && is_blank(*rest))
                rest++;
            if (rest < e && *rest != '#' && *rest != ';')
                return syntax_error(err, errcap, file, line, "text after a section header");
            const char *name = s + 1;
            size_t n = (size_t)(close - name);
            if (n == 0)
                return syntax_error(err, errcap, file, line, "empty section name");
            if (memchr(name, '[', n) != NULL)
                return syntax_error(err, errcap, file, line, "'[' inside a section name");
            if (is_blank(name[0]) || is_blank(name[n - 1]))
                /* botocore does not trim them: "[ default ]" is not the
                 * default profile there, so it is not one here either. */
                return syntax_error(err, errcap, file, line,
                                    "blank inside the brackets of a section name");
            have_section = 1;
            in_profile = section_matches(name, n, kind, profile);
            if (in_profile) {
                if (out->section_line != 0)
                    return syntax_error(err, errcap, file, line,
                                        "profile %s has a second section (the first is on line %u)",
                                        profile, out->section_line);
                out->section_line = line;
            }
            continue;
        }

        const char *eq = memchr(s, '=', (size_t)(e - s));
        if (eq == NULL)
            return syntax_error(err, errcap, file, line,
                                "expected a [section] or a setting KEY = VALUE");
        const char *ke = eq;
        while (ke > s && is_blank(ke[-1]))
            ke--;
        if (!key_is_valid(s, (size_t)(ke - s)))
            return syntax_error(err, errcap, file, line,
                                "malformed setting name (a name is visible ASCII without '=', ':', "
                                "'[' or ']')");
        if (!have_section)
            return syntax_error(err, errcap, file, line, "setting before any [section]");
        const char *v = eq + 1;
        while (v < e && is_blank(*v))
            v++;
        size_t klen = (size_t)(ke - s);
        key_indent = indent;
        key_index = -1;
        if (!in_profile)
            continue;
        for (int i = 0; i < GH_AWS_INI_NUM_KEYS; i++) {
            if (!eq_nocase(s, klen, gh_aws_ini_key_names[i]))
                continue;
            if (out->v[i].p != NULL)
                return syntax_error(err, errcap, file, line, "%s set twice (first on line %u)",
                                    gh_aws_ini_key_names[i], out->v[i].line);
            out->v[i].p = v;
            out->v[i].len = (size_t)(e - v);
            out->v[i].line = line;
            key_index = i;
        }
        for (size_t i = 0; i < sizeof(unsupported_before) / sizeof(unsupported_before[0]); i++)
            if (out->unsupported_before == NULL && eq_nocase(s, klen, unsupported_before[i])) {
                out->unsupported_before = unsupported_before[i];
                out->unsupported_before_line = line;
            }
        for (size_t i = 0; i < sizeof(unsupported_after) / sizeof(unsupported_after[0]); i++)
            if (out->unsupported_after == NULL && eq_nocase(s, klen, unsupported_after[i])) {
                out->unsupported_after = unsupported_after[i];
                out->unsupported_after_line = line;
            }
    }
    return 0;
}

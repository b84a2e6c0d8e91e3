/*
 * The INI dialect of AWS's shared credentials and config files, read for one
 * profile. Internal to src/aws (creds.c and the fuzz target).
 *
 * Grammar, as the AWS CLI (Python's configparser under botocore) reads it,
 * with the ambiguous parts refused instead of guessed:
 *   - lines end in LF or CRLF; a CR elsewhere, a NUL byte or a line longer
 *     than GH_AWS_INI_MAX_LINE bytes is an error;
 *   - blank lines and lines whose first non-blank byte is '#' or ';' are
 *     skipped (a '#' after a value is part of the value, as in botocore);
 *   - "[name]" opens a section (blanks around the brackets and the name are
 *     ignored; anything after ']' is an error);
 *   - "key = value" sets a key of the current section (blanks around both
 *     trimmed; keys compared ignoring ASCII case; only '=' separates: a ':'
 *     is not a separator here); a setting before any section is an error;
 *   - an indented line after a setting continues its value (AWS uses that
 *     for nested blocks such as "s3 =" and its sub-settings). That is
 *     skipped for other keys and an error for the keys read here.
 * Only the sections of the profile asked for are looked into: a key read
 * here set twice in it, or the profile's section twice, is an error.
 */
#ifndef GATEHOUSE_AWS_INI_H
#define GATEHOUSE_AWS_INI_H

#include <stddef.h>

#define GH_AWS_INI_MAX_LINE 4096

typedef enum {
    GH_AWS_INI_CREDENTIALS, /* profile P is the section [P] */
    GH_AWS_INI_CONFIG,      /* [profile P]; for "default" also [default] */
} gh_aws_ini_kind_t;

/* A value in the text: a slice (not NUL-terminated), and its line. p is NULL
 * when the key was not in the section. */
typedef struct {
    const char *p;
    size_t len;
    unsigned line;
} gh_aws_ini_val_t;

enum {
    GH_AWS_INI_ACCESS_KEY_ID,
    GH_AWS_INI_SECRET_ACCESS_KEY,
    GH_AWS_INI_SESSION_TOKEN,
    GH_AWS_INI_SECURITY_TOKEN, /* the older name botocore still reads */
    GH_AWS_INI_REGION,
    GH_AWS_INI_NUM_KEYS
};

typedef struct {
    unsigned section_line; /* 0: the profile's section is not in the text */
    gh_aws_ini_val_t v[GH_AWS_INI_NUM_KEYS];
    /* The first key of the section that asks for a credential provider
     * gatehouse lacks, before static keys (role_arn, web_identity_token_file,
     * sso_*) or after them (credential_process); NULL when none. */
    const char *unsupported_before;
    unsigned unsupported_before_line;
    const char *unsupported_after;
    unsigned unsupported_after_line;
} gh_aws_ini_profile_t;

/* The key names above, by index ("aws_access_key_id" ...). */
extern const char *const gh_aws_ini_key_names[GH_AWS_INI_NUM_KEYS];

/* Reads profile's section of text[0..len). file names the text in error
 * messages ("FILE:LINE: why"). Borrows everything; out's slices point into
 * text. Returns 0 (out->section_line is 0 when the profile is absent), or
 * -EINVAL with err set. A message never quotes the text. */
int gh_aws_ini_read(const char *text, size_t len, const char *file, gh_aws_ini_kind_t kind,
                    const char *profile, gh_aws_ini_profile_t *out, char *err, size_t errcap);

#endif

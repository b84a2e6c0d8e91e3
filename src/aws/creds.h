/*
 * The credentials record, shared by creds.c (which fills it) and sigv4.c
 * (which signs with it). Internal to src/aws.
 */
#ifndef GATEHOUSE_AWS_CREDS_H
#define GATEHOUSE_AWS_CREDS_H

#include <stddef.h>

#include <gatehouse/aws.h>

/* One allocation holds the struct and every string after it, so that
 * gh_aws_creds_free wipes all of it with one call. Immutable once made:
 * workers read it concurrently. */
struct gh_aws_creds_s {
    size_t size; /* of the whole allocation */
    const char *access_key_id;
    size_t access_key_id_len;
    const char *secret;
    size_t secret_len;
    const char *token; /* NULL when there is none */
    size_t token_len;
    const char *source;
};

#define GH_AWS_ACCESS_KEY_ID_MAX 128
#define GH_AWS_SECRET_MAX 256
#define GH_AWS_TOKEN_MAX 16384

#endif

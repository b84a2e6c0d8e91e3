/*
 * Equality of secrets in time that depends on their length only
 * (src/core/ct.c): cached tokens and identity-source values are compared
 * with what a client sent, and an early exit would tell a prober how much
 * of one it has right.
 */
#ifndef GATEHOUSE_CT_H
#define GATEHOUSE_CT_H

#include <stddef.h>

/* 1 when a[0..n) equals b[0..n), else 0. Every byte is read, whatever
 * differs. */
int gh_ct_equal(const void *a, const void *b, size_t n);

#endif

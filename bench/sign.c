/*
 * bench/sign.c: OpenSSL's own signing cost, the floor under a token
 * endpoint's cost per token (bench/issuer). Signs the same 300-byte JWS
 * signing input N times with EVP_DigestSign under a key made at start:
 *
 *   bench_sign ES256|RS256|EdDSA N [KEY.pem]
 *
 * with the key from KEY.pem when given (bench/issuer passes the issuer's
 * own: an RSA key made at start would make the count vary with its primes),
 * else one made now.
 * bench/issuer runs it under callgrind for two N and takes the difference
 * (instructions per sign), and without it for signs per second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

static EVP_PKEY *make_key(const char *alg)
{
    if (strcmp(alg, "RS256") == 0)
        return EVP_RSA_gen(2048);
    if (strcmp(alg, "EdDSA") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: bench_sign ES256|RS256|EdDSA N [KEY.pem]\n");
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    EVP_PKEY *key = NULL;
    if (argc == 4) {
        FILE *f = fopen(argv[3], "r");
        if (f != NULL) {
            key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
            fclose(f);
        }
    } else {
        key = make_key(argv[1]);
    }
    if (key == NULL || n <= 0)
        return 1;
    int ed = strcmp(argv[1], "EdDSA") == 0;
    unsigned char msg[300], sig[512];
    memset(msg, 'a', sizeof(msg));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        size_t len = sizeof(sig);
        if (ctx == NULL ||
            EVP_DigestSignInit(ctx, NULL, ed ? NULL : EVP_sha256(), NULL, key) != 1 ||
            EVP_DigestSign(ctx, sig, &len, msg, sizeof(msg)) != 1)
            return 1;
        EVP_MD_CTX_free(ctx);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%s %ld signs in %.3f s: %.0f signs/s\n", argv[1], n, s, (double)n / s);
    EVP_PKEY_free(key);
    return 0;
}

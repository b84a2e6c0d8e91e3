/*
 * Constant-time equality (gatehouse/ct.h). The differences are OR-ed
 * together and tested once at the end. Bearer tokens run to hundreds of
 * bytes and are compared on every request that a cache answers, so from
 * 32 bytes on AVX2 is used where the CPU has it (checked per call: a load
 * of what the compiler's runtime read at start-up), 256 bytes a step;
 * else SSE2 (every x86-64) 16 bytes a step; else words. A tail shorter
 * than a step is read as the vector that ends at the last byte,
 * overlapping bytes already compared: OR-ing a difference twice changes
 * nothing. About as many instructions as glibc's memcmp for a 658-byte
 * token (callgrind: 109 against 105 plus the call), which stops at the
 * first difference.
 */
#include <stdint.h>
#include <string.h>

#include <gatehouse/ct.h>

#ifdef __SSE2__
#include <immintrin.h>
#endif

#if defined(__SSE2__) && defined(__GNUC__)
#define HAVE_AVX2_PATH 1
/* Set only by tests, to run the SSE2 path on a CPU with AVX2 too. */
static int avx2_off;

__attribute__((target("avx2"))) static inline __m256i diff32(const char *a, const char *b)
{
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)a),
                            _mm256_loadu_si256((const __m256i *)(const void *)b));
}

/* The four vectors at a and b, OR-ed. */
__attribute__((target("avx2"))) static inline __m256i diff128(const char *a, const char *b)
{
    return _mm256_or_si256(_mm256_or_si256(diff32(a, b), diff32(a + 32, b + 32)),
                           _mm256_or_si256(diff32(a + 64, b + 64), diff32(a + 96, b + 96)));
}

/* 32 <= n <= 64: the first and the last 32 bytes (identity-source
 * values, API keys), no loop. */
__attribute__((target("avx2"))) static int equal_avx2_short(const char *a, const char *b, size_t n)
{
    __m256i d = _mm256_or_si256(diff32(a, b), diff32(a + n - 32, b + n - 32));
    __asm__ volatile("" : "+x"(d));
    return _mm256_testz_si256(d, d);
}

/* n > 64. 256 bytes a step, then what is left in straight lines: at most
 * one block each of 128, 64 and 32 bytes and the overlapping last vector
 * (a token of 658 bytes: two steps, 128, the last 32). */
__attribute__((target("avx2"))) static int equal_avx2(const char *a, const char *b, size_t n)
{
    __m256i d = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 256 <= n; i += 256)
        d = _mm256_or_si256(
            d, _mm256_or_si256(diff128(a + i, b + i), diff128(a + i + 128, b + i + 128)));
    if (i + 128 <= n) {
        d = _mm256_or_si256(d, diff128(a + i, b + i));
        i += 128;
    }
    if (i + 64 <= n) {
        d = _mm256_or_si256(d,
                            _mm256_or_si256(diff32(a + i, b + i), diff32(a + i + 32, b + i + 32)));
        i += 64;
    }
    if (i + 32 <= n) {
        d = _mm256_or_si256(d, diff32(a + i, b + i));
        i += 32;
    }
    if (i < n)
        d = _mm256_or_si256(d, diff32(a + n - 32, b + n - 32));
    __asm__ volatile("" : "+x"(d));
    return _mm256_testz_si256(d, d);
}
#endif

#ifdef __SSE2__
static inline __m128i diff16(const char *a, const char *b)
{
    return _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)a),
                         _mm_loadu_si128((const __m128i *)(const void *)b));
}
#endif

int gh_ct_equal(const void *pa, const void *pb, size_t n)
{
    const char *a = pa, *b = pb;
    size_t i = 0;
#ifdef HAVE_AVX2_PATH
    if (n >= 32 && !avx2_off && __builtin_cpu_supports("avx2"))
        return n <= 64 ? equal_avx2_short(a, b, n) : equal_avx2(a, b, n);
#endif
#ifdef __SSE2__
    if (n >= 16) {
        /* The first and the last sixteen bytes, and what is between. */
        __m128i d = _mm_or_si128(diff16(a, b), diff16(a + n - 16, b + n - 16));
        for (i = 16; i + 16 < n; i += 16)
            d = _mm_or_si128(d, diff16(a + i, b + i));
        __asm__ volatile("" : "+x"(d));
        return _mm_movemask_epi8(_mm_cmpeq_epi8(d, _mm_setzero_si128())) == 0xffff;
    }
#endif
    uint64_t d = 0, x, y;
    if (n >= 8) {
        for (; i + 8 <= n; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            d |= x ^ y;
        }
        if (i < n) {
            memcpy(&x, a + n - 8, 8);
            memcpy(&y, b + n - 8, 8);
            d |= x ^ y;
        }
    } else {
        for (; i < n; i++)
            d |= (uint64_t)((unsigned char)a[i] ^ (unsigned char)b[i]);
    }
    __asm__ volatile("" : "+r"(d));
    return d == 0;
}

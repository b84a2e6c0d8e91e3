/* src/core/file.c: whole-file reads and their error paths. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/file.h>

static void write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}

static void test_reads_whole_file_nul_terminated(void **state)
{
    (void)state;
    char path[] = "/tmp/gh_file_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    /* Longer than the first 8 KiB buffer, so the growth path runs. */
    size_t n = 20000;
    char *text = malloc(n);
    for (size_t i = 0; i < n; i++)
        text[i] = (char)('a' + i % 26);
    write_file(path, text, n);
    size_t len = 0;
    char *got = gh_file_read(path, n, &len);
    assert_non_null(got);
    assert_int_equal(len, n);
    assert_memory_equal(got, text, n);
    assert_int_equal(got[n], '\0');
    free(got);
    free(text);
    unlink(path);
}

static void test_over_the_limit_is_efbig(void **state)
{
    (void)state;
    char path[] = "/tmp/gh_file_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, "0123456789", 10);
    size_t len = 0;
    errno = 0;
    assert_null(gh_file_read(path, 9, &len));
    assert_int_equal(errno, EFBIG);
    char *ok = gh_file_read(path, 10, &len); /* exactly the limit is fine */
    assert_non_null(ok);
    assert_int_equal(len, 10);
    free(ok);
    unlink(path);
}

static void test_empty_and_missing(void **state)
{
    (void)state;
    char path[] = "/tmp/gh_file_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    size_t len = 99;
    char *e = gh_file_read(path, 10, &len);
    assert_non_null(e);
    assert_int_equal(len, 0);
    assert_int_equal(e[0], '\0');
    free(e);
    unlink(path);
    errno = 0;
    assert_null(gh_file_read(path, 10, &len));
    assert_int_equal(errno, ENOENT);
}

static void test_directory_fails(void **state)
{
    (void)state;
    size_t len;
    errno = 0;
    assert_null(gh_file_read("/tmp", 1 << 20, &len));
    assert_string_equal(gh_file_strerror(errno), "not a regular file");
}

/* A named pipe without a writer used to block open() (the main loop) until
 * one came; it is refused at once, as is a device. */
static void test_fifo_and_device_refused(void **state)
{
    (void)state;
    char dir[] = "/tmp/gh_fifo_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/pipe", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    size_t len;
    errno = 0;
    assert_null(gh_file_read(path, 1 << 20, &len));
    assert_int_equal(errno, GH_FILE_ENOTREG);
    assert_string_equal(gh_file_strerror(errno), "not a regular file");
    errno = 0;
    assert_int_equal(gh_file_open(path), -1);
    assert_int_equal(errno, GH_FILE_ENOTREG);
    errno = 0;
    assert_null(gh_file_read("/dev/null", 1 << 20, &len));
    assert_int_equal(errno, GH_FILE_ENOTREG);
    unlink(path);
    rmdir(dir);
    /* Other errors keep their own text. */
    assert_string_equal(gh_file_strerror(ENOENT), strerror(ENOENT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_whole_file_nul_terminated),
        cmocka_unit_test(test_over_the_limit_is_efbig),
        cmocka_unit_test(test_empty_and_missing),
        cmocka_unit_test(test_directory_fails),
        cmocka_unit_test(test_fifo_and_device_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

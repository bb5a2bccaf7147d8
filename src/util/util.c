/* Checked arithmetic, strings, bounded file reads (writes: output.c). */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

bool sfp_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

bool sfp_mul_i64(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0) return false;
    if (a != 0 && b > INT64_MAX / a) return false;
    *out = a * b;
    return true;
}

char *sfp_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

char *sfp_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

const char *sfp_q(const char *s)
{
    static char bufs[4][256];
    static int next;
    char *b = bufs[next];
    next = (next + 1) % 4;
    return sfp_escape(s, b, sizeof bufs[0]);
}

int sfp_read_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                  sfp_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return sfp_errorf(err, SFP_EIO, "%s: cannot open: %s", sfp_q(path), strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return sfp_errorf(err, SFP_EIO, "%s: cannot stat: %s", sfp_q(path), strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sfp_errorf(err, SFP_EIO, "%s: not a regular file", sfp_q(path));
    }
    if ((uint64_t)st.st_size > (uint64_t)max_len) {
        close(fd);
        return sfp_errorf(err, SFP_EIO, "%s: file of %lld bytes is larger than the %zu allowed",
                          sfp_q(path), (long long)st.st_size, max_len);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        close(fd);
        return sfp_errorf(err, SFP_ENOMEM, "%s: out of memory reading %zu bytes", sfp_q(path), len);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            return sfp_errorf(err, SFP_EIO, "%s: read failed: %s", sfp_q(path),
                              r == 0 ? "file shrank while reading" : strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *out_len = len;
    return 0;
}

int sfp_grow(void **arr, int *cap, int need, size_t elem, sfp_error_t *err)
{
    if (need <= *cap) return 0;
    int ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > (1 << 28)) return sfp_errorf(err, SFP_ENOMEM, "too many elements (%d)", need);
        ncap *= 2;
    }
    size_t bytes = 0;
    if (!sfp_mul_size((size_t)ncap, elem, &bytes))
        return sfp_errorf(err, SFP_ENOMEM, "array size overflow");
    void *p = realloc(*arr, bytes);
    if (!p) return sfp_errorf(err, SFP_ENOMEM, "out of memory growing an array to %d", ncap);
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return 0;
}

void sfp_buf_append(sfp_buf_t *b, const void *bytes, size_t n)
{
    if (b->failed) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

double sfp_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

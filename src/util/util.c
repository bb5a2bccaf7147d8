/* Checked arithmetic, strings, bounded file reads and atomic writes. */
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

/* Creates path + ".tmp.XXXXXX" with O_EXCL and mode 0644, so the kernel
 * applies the umask (no umask() juggling, which would race with threads). */
static int create_temp(const char *path, char *tmp, size_t tmp_size)
{
    static unsigned long counter;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned long x = ((unsigned long)getpid() << 16) ^ (unsigned long)time(NULL) ^ (++counter * 2654435761u);
        snprintf(tmp, tmp_size, "%s.tmp.%06lx", path, x & 0xffffffUL);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

/* fsync of the folder holding path, so the rename itself is durable. */
static void sync_parent(const char *path)
{
    char *dir = sfp_strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else strcpy(dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

static bool is_replica;

void sfp_set_replica(bool replica)
{
    is_replica = replica;
}

int sfp_write_file_atomic(const char *path, const uint8_t *data, size_t len, sfp_error_t *err)
{
    if (is_replica) return 0;
    size_t tmp_size = strlen(path) + 24;
    char *tmp = malloc(tmp_size);
    if (!tmp) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    int fd = create_temp(path, tmp, tmp_size);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return sfp_errorf(err, SFP_EIO, "%s: cannot create a temporary file beside it: %s", sfp_q(path), strerror(e));
    }
    int rc = 0;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            rc = sfp_errorf(err, SFP_EIO, "%s: write failed: %s", sfp_q(path), w == 0 ? "no progress" : strerror(errno));
            break;
        }
        done += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = sfp_errorf(err, SFP_EIO, "%s: fsync failed: %s", sfp_q(path), strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = sfp_errorf(err, SFP_EIO, "%s: close failed: %s", sfp_q(path), strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = sfp_errorf(err, SFP_EIO, "%s: rename failed: %s", sfp_q(path), strerror(errno));
    if (rc != 0) unlink(tmp);
    else sync_parent(path);
    free(tmp);
    return rc;
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

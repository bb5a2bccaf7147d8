/* Writing an output file as DESIGN.md's "Paths" promises: "-" (or a name of
 * the process's own stdout) is written through stdout; a symlink is followed
 * and its target replaced; a FIFO or device is written in place; a regular
 * file, or a new one, goes to a temporary file beside it and is renamed over
 * it only when complete, so a reader never sees a partial file. */
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

/* Links followed before giving up (the kernel's own limit is 40). */
enum { MAX_LINK_HOPS = 40 };

static bool is_replica;

void sfp_set_replica(bool replica)
{
    is_replica = replica;
}

/* True when st is the file open as fd. */
static bool same_as_fd(const struct stat *st, int fd)
{
    struct stat fs;
    return fstat(fd, &fs) == 0 && fs.st_dev == st->st_dev && fs.st_ino == st->st_ino;
}

bool sfp_path_is_stdout(const char *path)
{
    struct stat st;
    if (!strcmp(path, "-")) return true;
    /* a regular file may also be stdout (> file): written through it, not renamed over */
    return stat(path, &st) == 0 && same_as_fd(&st, STDOUT_FILENO);
}

static int write_all(int fd, const uint8_t *data, size_t len, const char *path, sfp_error_t *err)
{
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return sfp_errorf(err, SFP_EIO, "%s: write failed: %s", sfp_q(path), w == 0 ? "no progress" : strerror(errno));
        done += (size_t)w;
    }
    return 0;
}

/* Through stdio, so the bytes land after whatever the command printed before. */
static int write_stdout(const char *path, const uint8_t *data, size_t len, sfp_error_t *err)
{
    if ((len && fwrite(data, 1, len, stdout) != len) || fflush(stdout) != 0)
        return sfp_errorf(err, SFP_EIO, "%s: writing to stdout failed: %s", sfp_q(path), strerror(errno));
    return 0;
}

/* A FIFO or a device: opened and written as it is (a FIFO waits for its reader). */
static int write_in_place(const char *path, const uint8_t *data, size_t len, sfp_error_t *err)
{
    int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return sfp_errorf(err, SFP_EIO, "%s: cannot open for writing: %s", sfp_q(path), strerror(errno));
    int rc = write_all(fd, data, len, path, err);
    if (close(fd) != 0 && rc == 0) rc = sfp_errorf(err, SFP_EIO, "%s: close failed: %s", sfp_q(path), strerror(errno));
    return rc;
}

int sfp_follow_links(const char *path, char **out, sfp_error_t *err)
{
    char *cur = sfp_strdup(path);
    if (!cur) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int hop = 0;; hop++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) break;
        if (hop == MAX_LINK_HOPS) {
            free(cur);
            return sfp_errorf(err, SFP_EIO, "%s: more than %d symbolic links", sfp_q(path), MAX_LINK_HOPS);
        }
        char target[4096];
        ssize_t n = readlink(cur, target, sizeof target - 1);
        if (n < 0) {
            int e = errno;
            free(cur);
            return sfp_errorf(err, SFP_EIO, "%s: cannot read the link: %s", sfp_q(path), strerror(e));
        }
        target[n] = '\0';
        const char *slash = strrchr(cur, '/');
        size_t dir_len = target[0] != '/' && slash ? (size_t)(slash - cur) + 1 : 0;
        char *next = malloc(dir_len + (size_t)n + 1);
        if (!next) {
            free(cur);
            return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        }
        memcpy(next, cur, dir_len);
        memcpy(next + dir_len, target, (size_t)n + 1);
        free(cur);
        cur = next;
    }
    *out = cur;
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
    else snprintf(dir, 2, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* target (a regular file or none) replaced by a temporary file beside it;
 * messages name path, what the user gave. */
static int write_replace(const char *path, const char *target, const uint8_t *data, size_t len, sfp_error_t *err)
{
    size_t tmp_size = strlen(target) + 24;
    char *tmp = malloc(tmp_size);
    if (!tmp) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    int fd = create_temp(target, tmp, tmp_size);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return sfp_errorf(err, SFP_EIO, "%s: cannot create a temporary file beside it: %s", sfp_q(path), strerror(e));
    }
    int rc = write_all(fd, data, len, path, err);
    if (rc == 0 && fsync(fd) != 0) rc = sfp_errorf(err, SFP_EIO, "%s: fsync failed: %s", sfp_q(path), strerror(errno));
    if (close(fd) != 0 && rc == 0) rc = sfp_errorf(err, SFP_EIO, "%s: close failed: %s", sfp_q(path), strerror(errno));
    if (rc == 0 && rename(tmp, target) != 0)
        rc = sfp_errorf(err, SFP_EIO, "%s: rename failed: %s", sfp_q(path), strerror(errno));
    if (rc != 0) unlink(tmp);
    else sync_parent(target);
    free(tmp);
    return rc;
}

int sfp_write_file_atomic(const char *path, const uint8_t *data, size_t len, sfp_error_t *err)
{
    if (is_replica) return 0;
    if (sfp_path_is_stdout(path)) return write_stdout(path, data, len, err);
    struct stat st;
    if (stat(path, &st) == 0) { /* exists (links followed) */
        if (S_ISDIR(st.st_mode)) return sfp_errorf(err, SFP_EIO, "%s: is a directory", sfp_q(path));
        if (S_ISSOCK(st.st_mode))
            return sfp_errorf(err, SFP_EIO, "%s: is a socket (give a file, a FIFO or a device)", sfp_q(path));
        if (!S_ISREG(st.st_mode)) return write_in_place(path, data, len, err);
    }
    char *target = NULL;
    int rc = sfp_follow_links(path, &target, err);
    if (rc == 0) rc = write_replace(path, target, data, len, err);
    free(target);
    return rc;
}

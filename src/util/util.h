/* Small shared helpers: checked size arithmetic, owned strings, whole-file
 * reads with a size bound, and output files written safely (output.c). */
#ifndef SFP_UTIL_H
#define SFP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnxsfp/error.h"

/* a*b into *out; false on overflow. */
bool sfp_mul_size(size_t a, size_t b, size_t *out);
bool sfp_mul_i64(int64_t a, int64_t b, int64_t *out);

/* strdup that accepts NULL: NULL for NULL, and NULL when out of memory. */
char *sfp_strdup(const char *s);
char *sfp_strndup(const char *s, size_t n);

/* Escaped copy of an untrusted name for messages; a few rotating static
 * buffers so several can appear in one sfp_errorf call. Not thread safe. */
const char *sfp_q(const char *s);

/* Reads a whole regular file, refusing files above max_len bytes. */
int sfp_read_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                  sfp_error_t *err);

/* Writes len bytes to the output path as DESIGN.md's "Paths" says: "-" or a
 * name of this process's stdout: through stdout; a FIFO or device: in place;
 * a symlink: followed, its target replaced; a regular file or a new name: a
 * temporary file beside it (fsync, mode 0644 minus umask) renamed over it,
 * never a partial file. A directory or a socket is an SFP_EIO error. */
int sfp_write_file_atomic(const char *path, const uint8_t *data, size_t len, sfp_error_t *err);
/* A data-parallel replica (every process but 0 of an MPI job) writes no
 * files: sfp_write_file_atomic then returns 0 without writing. Set once,
 * by main, before any command runs. */
void sfp_set_replica(bool replica);
/* *out (malloc'd): the name path's last component finally stands for, its
 * symlinks followed (a relative link from the link's folder); for a dangling
 * link, the name it points at (which a write creates). */
int sfp_follow_links(const char *path, char **out, sfp_error_t *err);
/* True when path is "-" or names the file open as this process's stdout. */
bool sfp_path_is_stdout(const char *path);

/* A growing byte buffer: the first failed allocation sets failed, later
 * appends then do nothing, so a writer checks once at the end. data is
 * malloc'd (free it); a zeroed struct is an empty buffer. */
typedef struct sfp_buf {
    uint8_t *data;
    size_t len, cap;
    bool failed;
} sfp_buf_t;
void sfp_buf_append(sfp_buf_t *b, const void *bytes, size_t n);

/* Seconds on a monotonic clock (timing runs, progress, ETA). */
double sfp_now_seconds(void);

/* Grows *arr (element size elem) so it holds at least need elements. */
int sfp_grow(void **arr, int *cap, int need, size_t elem, sfp_error_t *err);

#endif

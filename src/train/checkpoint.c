/* Training checkpoints: one file holding everything a resumed run needs to
 * continue exactly — the run's state as a JSON line, the current model and
 * the best one as ONNX bytes, the optimiser's momentum buffers and an opaque
 * block for the pruning schedule — ended by a CRC-32 of all that precedes it.
 * Written atomically; read with every length checked against the file. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "train/train.h"
#include "util/util.h"

#define CKPT_MAGIC "SFPCKPT1"
#define CKPT_MAX_BYTES ((size_t)1 << 36) /* 64 GiB: far above any model this tool trains */
#define CKPT_MAX_BUFFERS 1000000

/* Little-endian fixed-width integers, so a checkpoint moves between machines. */
static void put_u64(sfp_buf_t *b, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
    sfp_buf_append(b, le, 8);
}

static void put_block(sfp_buf_t *b, const void *src, size_t n)
{
    put_u64(b, n);
    sfp_buf_append(b, src, n);
}

int checkpoint_write(const char *path, const sfp_checkpoint_t *ck, sfp_error_t *err)
{
    sfp_buf_t b = {0};
    sfp_buf_append(&b, CKPT_MAGIC, 8);
    put_block(&b, ck->state_json, strlen(ck->state_json));
    put_block(&b, ck->model, ck->model_len);
    put_block(&b, ck->best, ck->best_len);
    put_block(&b, ck->extra, ck->extra_len);
    put_u64(&b, (uint64_t)ck->n_buffers);
    for (int i = 0; i < ck->n_buffers; i++) {
        put_block(&b, ck->buffer_names[i], strlen(ck->buffer_names[i]));
        put_block(&b, ck->buffers[i], (size_t)ck->buffer_numel[i] * sizeof(float));
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; !b.failed && off < b.len;) { /* crc32 takes a uInt length */
        size_t n = b.len - off > (1u << 30) ? (1u << 30) : b.len - off;
        crc = crc32(crc, b.data + off, (uInt)n);
        off += n;
    }
    put_u64(&b, (uint64_t)crc);
    int rc = b.failed ? sfp_errorf(err, SFP_ENOMEM, "checkpoint %s: out of memory", sfp_q(path))
                      : sfp_write_file_atomic(path, b.data, b.len, err);
    free(b.data);
    return rc;
}

/* ---- reading: a cursor that refuses to run past the end ---- */
typedef struct in_buf {
    const uint8_t *data;
    size_t len, pos;
} in_buf_t;

static bool get_u64(in_buf_t *b, uint64_t *v)
{
    if (b->len - b->pos < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; i++) *v |= (uint64_t)b->data[b->pos + (size_t)i] << (8 * i);
    b->pos += 8;
    return true;
}

/* A block's bytes, copied into a new allocation with a NUL after them. */
static bool get_block(in_buf_t *b, uint8_t **out, size_t *out_len)
{
    uint64_t n = 0;
    if (!get_u64(b, &n) || n > b->len - b->pos) return false;
    *out = malloc((size_t)n + 1);
    if (!*out) return false;
    memcpy(*out, b->data + b->pos, (size_t)n);
    (*out)[n] = 0;
    *out_len = (size_t)n;
    b->pos += (size_t)n;
    return true;
}

void checkpoint_clear(sfp_checkpoint_t *ck)
{
    if (!ck) return;
    free(ck->state_json);
    free(ck->model);
    free(ck->best);
    free(ck->extra);
    for (int i = 0; i < ck->n_buffers; i++) {
        if (ck->buffer_names) free(ck->buffer_names[i]);
        if (ck->buffers) free(ck->buffers[i]);
    }
    free(ck->buffer_names);
    free(ck->buffers);
    free(ck->buffer_numel);
    memset(ck, 0, sizeof *ck);
}

int checkpoint_read(const char *path, sfp_checkpoint_t *ck, sfp_error_t *err)
{
    memset(ck, 0, sizeof *ck);
    uint8_t *file = NULL;
    size_t len = 0;
    int rc = sfp_read_file(path, CKPT_MAX_BYTES, &file, &len, err);
    if (rc < 0) return rc;
    const char *why = NULL;
    if (len < 16 || memcmp(file, CKPT_MAGIC, 8) != 0) why = "not an onnx-sfp checkpoint (no SFPCKPT1 header)";
    if (!why) {
        uint64_t stored = 0;
        for (int i = 0; i < 8; i++) stored |= (uint64_t)file[len - 8 + (size_t)i] << (8 * i);
        uLong crc = crc32(0L, Z_NULL, 0);
        for (size_t off = 0; off < len - 8;) {
            size_t n = len - 8 - off > (1u << 30) ? (1u << 30) : len - 8 - off;
            crc = crc32(crc, file + off, (uInt)n);
            off += n;
        }
        if (stored != (uint64_t)crc) why = "checksum mismatch (truncated or corrupted file)";
    }
    in_buf_t b = {file, len - 8, 8};
    size_t state_len = 0, buf_len = 0;
    uint64_t n_buffers = 0;
    uint8_t *state = NULL;
    if (!why && (!get_block(&b, &state, &state_len) || !get_block(&b, &ck->model, &ck->model_len) ||
                 !get_block(&b, &ck->best, &ck->best_len) || !get_block(&b, &ck->extra, &ck->extra_len) ||
                 !get_u64(&b, &n_buffers)))
        why = "a block runs past the end of the file";
    ck->state_json = (char *)state;
    if (!why && n_buffers > CKPT_MAX_BUFFERS) why = "too many optimiser buffers";
    if (!why && n_buffers > 0) {
        ck->buffer_names = calloc((size_t)n_buffers, sizeof *ck->buffer_names);
        ck->buffers = calloc((size_t)n_buffers, sizeof *ck->buffers);
        ck->buffer_numel = calloc((size_t)n_buffers, sizeof *ck->buffer_numel);
        if (!ck->buffer_names || !ck->buffers || !ck->buffer_numel) why = "out of memory";
        ck->n_buffers = (int)n_buffers;
    }
    for (int i = 0; !why && i < ck->n_buffers; i++) {
        uint8_t *name = NULL, *data = NULL;
        if (!get_block(&b, &name, &buf_len)) why = "a buffer name runs past the end of the file";
        ck->buffer_names[i] = (char *)name;
        if (!why && !get_block(&b, &data, &buf_len)) why = "a buffer runs past the end of the file";
        ck->buffers[i] = (float *)data; /* malloc'd: suitably aligned for float */
        if (!why && buf_len % sizeof(float)) why = "a buffer is not a whole number of floats";
        ck->buffer_numel[i] = (int64_t)(buf_len / sizeof(float));
    }
    if (!why && b.pos != b.len) why = "unexpected bytes after the last block";
    free(file);
    if (why) {
        checkpoint_clear(ck);
        return sfp_errorf(err, SFP_EBADDATA, "checkpoint %s: %s", sfp_q(path), why);
    }
    if (strlen(ck->state_json) != state_len) {
        checkpoint_clear(ck);
        return sfp_errorf(err, SFP_EBADDATA, "checkpoint %s: state holds a NUL byte", sfp_q(path));
    }
    return 0;
}

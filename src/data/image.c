/* Image files: decoding with stb_image and fitting to the model's input with
 * stb_image_resize, both compiled here as static functions (no symbol can
 * clash with another copy). The size a file declares is checked against its
 * byte count before decoding, so a small file cannot make us allocate much.
 * Debian's stb_image (v2.27) has known memory-safety bugs on crafted JPEG,
 * PNG and GIF files (nothings/stb#1289, #1291, #1166, fixed in 2.28), so all
 * decoding runs in a child process writing into shared memory: a decoder bug
 * can only kill the child, and the file is then refused as bad data. Before
 * stb_image sees a file, the child also refuses what fuzzing showed it to
 * mishandle: JPEG Huffman tables of more than 256 codes (out-of-bounds
 * writes) and scans using tables never defined (out-of-bounds reads), PNG
 * chunks longer than the file (allocations of gigabytes), PNM headers whose
 * numbers overflow or whose pixels are missing. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/data.h"
#include "util/util.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_STDIO
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_PNM
#define STBI_FAILURE_USERMSG
#define STBI_MAX_DIMENSIONS (1 << 15)
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_STATIC
/* Named here (they are stb's own defaults) because a trained model records
 * them: DATA_RESIZE_FILTER_DOWN / _UP in data.h. */
#define STBIR_DEFAULT_FILTER_DOWNSAMPLE STBIR_FILTER_MITCHELL
#define STBIR_DEFAULT_FILTER_UPSAMPLE STBIR_FILTER_CATMULLROM
#if defined(__GNUC__)
/* Static stb functions we do not call; reported at the end of the file, so
 * this one stays off for the whole file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#define IMAGE_MAX_FILE_BYTES ((size_t)256 << 20)
/* Decoded bytes a file may declare: generous for PNG (deflate tops out at
 * 1032:1) and JPEG, far below what a hostile header could claim. */
#define IMAGE_MAX_RATIO 2048u
#define IMAGE_SLACK_BYTES ((size_t)1 << 20)

typedef struct image_file {
    uint8_t *bytes;
    size_t len;
    int width, height, comp; /* as declared; comp 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
} image_file_t;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* PNG: every chunk must fit in the file. stb_image grows its IDAT buffer to
 * the length a chunk declares before reading it (up to 4 GB for a 50-byte
 * file). */
static int png_check(const char *path, const uint8_t *b, size_t len, sfp_error_t *err)
{
    for (size_t off = 8; len - off >= 12; ) {
        uint32_t n = be32(b + off);
        if (n > len - off - 12) {
            char type[5] = {(char)b[off + 4], (char)b[off + 5], (char)b[off + 6], (char)b[off + 7], 0};
            return sfp_errorf(err, SFP_EBADDATA, "%s: PNG chunk '%s' at byte %zu declares %u bytes, beyond the end "
                              "of the file", sfp_q(path), sfp_q(type), off, n);
        }
        if (memcmp(b + off + 4, "IEND", 4) == 0) break;
        off += 12 + (size_t)n;
    }
    return 0;
}

/* JPEG scan header at off (SOS): each component's Huffman tables that the
 * scan decodes with must have been defined (bit tc * 4 + th of `defined`);
 * stb_image 2.27 decodes with the uninitialised table otherwise and indexes
 * out of its arrays. Baseline scans use both tables, progressive ones the DC
 * table when they start at 0 and the AC table when they end after 0. */
static int jpeg_scan_check(const char *path, const uint8_t *b, size_t len, size_t off, unsigned defined,
                           bool progressive, sfp_error_t *err)
{
    size_t n_comps = off + 4 < len ? b[off + 4] : 0, spec = off + 5 + 2 * n_comps;
    if (n_comps > 4 || spec + 1 >= len) return 0; /* stb_image refuses the scan itself */
    bool uses_dc = !progressive || b[spec] == 0, uses_ac = !progressive || b[spec + 1] > 0;
    for (size_t i = 0; i < n_comps; i++) {
        unsigned dc = b[off + 6 + 2 * i] >> 4, ac = b[off + 6 + 2 * i] & 15u;
        if ((uses_dc && dc <= 3 && !(defined & 1u << dc)) || (uses_ac && ac <= 3 && !(defined & 1u << (4 + ac))))
            return sfp_errorf(err, SFP_EBADDATA, "%s: JPEG scan at byte %zu decodes with a Huffman table that was "
                              "never defined", sfp_q(path), off);
    }
    return 0;
}

/* JPEG: each Huffman table of a DHT segment may hold at most 256 codes;
 * stb_image 2.27 writes past its tables otherwise (nothings/stb#1289, #1291);
 * and scans may only use tables defined before them (jpeg_scan_check).
 * Markers are found at least as eagerly as stb_image finds them: any 0xFF
 * followed by a byte other than 0x00, 0xFF and RSTn, also between segments
 * and inside entropy-coded data, up to EOI; segments are skipped by their
 * length, as stb_image skips or parses them. */
static int jpeg_check(const char *path, const uint8_t *b, size_t len, size_t off, sfp_error_t *err)
{
    unsigned defined = 0;
    bool progressive = false;
    while (off + 1 < len) {
        uint8_t marker = b[off + 1];
        if (b[off] != 0xFF || marker == 0x00 || marker == 0xFF || (marker >= 0xD0 && marker <= 0xD8)) {
            off++;
            continue;
        }
        if (marker == 0xD9) break; /* EOI */
        if (marker == 0x01 || len - off < 4) {
            off += 2;
            continue;
        }
        size_t end = off + 2 + ((size_t)b[off + 2] << 8 | b[off + 3]);
        /* stb_image reads a table's 17 header bytes while any byte of the
         * segment is left, past its end if need be (zeros past the file's). */
        for (size_t p = off + 4; marker == 0xC4 && p < end; ) {
            unsigned n_codes = 0;
            for (size_t i = p + 1; i <= p + 16 && i < len; i++) n_codes += b[i];
            if (n_codes > 256)
                return sfp_errorf(err, SFP_EBADDATA, "%s: JPEG Huffman table at byte %zu declares %u codes (at most "
                                  "256)", sfp_q(path), p, n_codes);
            unsigned q = p < len ? b[p] : 0;
            if (q >> 4 <= 1 && (q & 15u) <= 3) defined |= 1u << ((q >> 4) * 4 + (q & 15u));
            p += 17 + n_codes;
        }
        if (marker == 0xC2) progressive = true;
        int rc = marker == 0xDA ? jpeg_scan_check(path, b, len, off, defined, progressive, err) : 0;
        if (rc < 0) return rc;
        off = end;
    }
    return 0;
}

/* Binary PGM/PPM: the header's numbers read as stb_image reads them (blanks
 * and # comments between), each under 10 digits (stb_image's int parser
 * overflows beyond), and the pixels they declare present (stb_image returns
 * a short file's missing pixels uninitialised). */
static int pnm_check(const char *path, const uint8_t *b, size_t len, sfp_error_t *err)
{
    size_t pos = 2;
    uint64_t value[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        for (;;) {
            while (pos < len && (b[pos] == ' ' || (b[pos] >= '\t' && b[pos] <= '\r'))) pos++;
            if (pos >= len || b[pos] != '#') break;
            while (pos < len && b[pos] != '\n' && b[pos] != '\r') pos++;
        }
        for (int digits = 0; pos < len && b[pos] >= '0' && b[pos] <= '9'; pos++) {
            if (++digits > 9)
                return sfp_errorf(err, SFP_EBADDATA, "%s: PNM header holds a number of more than 9 digits at byte %zu",
                                  sfp_q(path), pos);
            value[k] = value[k] * 10 + (uint64_t)(b[pos] - '0');
        }
    }
    pos++; /* the one blank after the maximum value */
    size_t need = (b[1] == '6' ? 3 : 1) * (value[2] > 255 ? 2 : 1);
    if (!sfp_mul_size(need, (size_t)value[0], &need) || !sfp_mul_size(need, (size_t)value[1], &need) || pos > len ||
        len - pos < need)
        return sfp_errorf(err, SFP_EBADDATA, "%s: truncated: PNM header declares %llux%llu pixels, the file holds %zu "
                          "bytes of pixel data", sfp_q(path), (unsigned long long)value[0],
                          (unsigned long long)value[1], pos > len ? (size_t)0 : len - pos);
    return 0;
}

/* Checks for what stb_image 2.27 mishandles, before it sees the file. */
static int image_precheck(const char *path, const uint8_t *b, size_t len, sfp_error_t *err)
{
    size_t fill = 0; /* stb_image takes a JPEG's SOI after any number of 0xFF */
    while (fill < len && b[fill] == 0xFF) fill++;
    if (len >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return png_check(path, b, len, err);
    if (fill > 0 && fill < len && b[fill] == 0xD8) return jpeg_check(path, b, len, fill + 1, err);
    if (len >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) return pnm_check(path, b, len, err);
    return 0;
}

/* Reads path and its declared geometry, refusing what its size cannot hold. */
static int image_read(const char *path, image_file_t *img, sfp_error_t *err)
{
    memset(img, 0, sizeof *img);
    int rc = sfp_read_file(path, IMAGE_MAX_FILE_BYTES, &img->bytes, &img->len, err);
    if (rc < 0) return rc;
    if ((rc = image_precheck(path, img->bytes, img->len, err)) < 0) {
        free(img->bytes);
        img->bytes = NULL;
        return rc;
    }
    if (!stbi_info_from_memory(img->bytes, (int)img->len, &img->width, &img->height, &img->comp)) {
        free(img->bytes);
        img->bytes = NULL;
        return sfp_errorf(err, SFP_EBADDATA, "%s: not a readable PNG/JPEG/BMP/GIF/PGM/PPM image (%s)", sfp_q(path),
                          stbi_failure_reason());
    }
    size_t pixels = 0, decoded = 0;
    size_t bound = img->len <= (SIZE_MAX - IMAGE_SLACK_BYTES) / IMAGE_MAX_RATIO
                       ? img->len * IMAGE_MAX_RATIO + IMAGE_SLACK_BYTES
                       : SIZE_MAX;
    if (img->width < 1 || img->height < 1 || img->comp < 1 || img->comp > 4 ||
        !sfp_mul_size((size_t)img->width, (size_t)img->height, &pixels) ||
        !sfp_mul_size(pixels, (size_t)img->comp, &decoded) || decoded > bound) {
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: declares %dx%d pixels, more than a %zu-byte image file can hold",
                        sfp_q(path), img->width, img->height, img->len);
        free(img->bytes);
        img->bytes = NULL;
        return rc;
    }
    return 0;
}

static int image_probe(const char *path, int *channels, int *height, int *width, sfp_error_t *err)
{
    image_file_t img;
    int rc = image_read(path, &img, err);
    if (rc < 0) return rc;
    free(img.bytes);
    *channels = img.comp <= 2 ? 1 : 3;
    *height = img.height;
    *width = img.width;
    return 0;
}

/* BT.601 luminance, rounded. */
static uint8_t luminance(const uint8_t *rgb)
{
    return (uint8_t)((299u * rgb[0] + 587u * rgb[1] + 114u * rgb[2] + 500u) / 1000u);
}

/* Decoded HWC pixels (comp channels) -> HWC with `channels` (1 or 3). */
static void convert_channels(const uint8_t *src, int comp, size_t n_pixels, int channels, uint8_t *dst)
{
    for (size_t p = 0; p < n_pixels; p++) {
        const uint8_t *s = src + p * (size_t)comp;
        uint8_t *d = dst + p * (size_t)channels;
        bool gray = comp <= 2;
        if (channels == 1) d[0] = gray ? s[0] : luminance(s);
        else for (int c = 0; c < 3; c++) d[c] = gray ? s[0] : s[c];
    }
}

/* Decodes, converts and fits one file in this process (the child's job);
 * info gets the file's own geometry. */
static int image_decode(const char *path, int channels, int height, int width, uint8_t *out_chw,
                        data_image_info_t *info, sfp_error_t *err)
{
    image_file_t img;
    int rc = image_read(path, &img, err);
    if (rc < 0) return rc;
    int w = 0, h = 0, comp = 0;
    uint8_t *decoded = stbi_load_from_memory(img.bytes, (int)img.len, &w, &h, &comp, 0);
    free(img.bytes);
    if (!decoded)
        return sfp_errorf(err, SFP_EBADDATA, "%s: cannot decode the image: %s", sfp_q(path), stbi_failure_reason());
    info->channels = comp <= 2 ? 1 : 3;
    info->height = h;
    info->width = w;
    size_t n_pixels = (size_t)w * (size_t)h; /* stb allocated w * h * comp bytes */
    uint8_t *hwc = malloc(n_pixels * (size_t)channels);
    uint8_t *resized = NULL;
    if (!hwc) {
        stbi_image_free(decoded);
        return sfp_errorf(err, SFP_ENOMEM, "%s: out of memory for %dx%d pixels", sfp_q(path), w, h);
    }
    convert_channels(decoded, comp, n_pixels, channels, hwc);
    stbi_image_free(decoded);

    /* Fit: same size copies, smaller pads centred with black, else resize. */
    size_t plane = (size_t)height * (size_t)width;
    const uint8_t *src = hwc;
    int top = 0, left = 0, src_w = w, src_h = h;
    if (w <= width && h <= height) {
        memset(out_chw, 0, plane * (size_t)channels);
        top = (height - h) / 2;
        left = (width - w) / 2;
    } else {
        resized = malloc(plane * (size_t)channels);
        if (!resized || !stbir_resize_uint8(hwc, w, h, 0, resized, width, height, 0, channels)) {
            free(hwc);
            free(resized);
            return sfp_errorf(err, SFP_ENOMEM, "%s: out of memory resizing %dx%d to %dx%d", sfp_q(path), w, h,
                              width, height);
        }
        src = resized;
        src_w = width;
        src_h = height;
    }
    for (int c = 0; c < channels; c++)
        for (int y = 0; y < src_h; y++)
            for (int x = 0; x < src_w; x++)
                out_chw[(size_t)c * plane + (size_t)(y + top) * (size_t)width + (size_t)(x + left)] =
                    src[((size_t)y * (size_t)src_w + (size_t)x) * (size_t)channels + (size_t)c];
    free(hwc);
    free(resized);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The decoding child                                                       */

#define SANDBOX_CHUNK_BYTES ((size_t)64 << 20) /* pixels decoded per child */

enum { CHILD_RUNNING = 0, CHILD_DONE = 1, CHILD_FAILED = 2 };

/* Shared between parent and child, followed by the pixels and one
 * data_image_info_t per file. */
typedef struct sandbox_header {
    volatile int64_t current; /* index of the file being decoded */
    volatile int state;
    int rc;
    int probed[3];            /* channels, height, width of a probe */
    sfp_error_t err;
} sandbox_header_t;

#define SANDBOX_PIXELS_OFFSET ((sizeof(sandbox_header_t) + 63) & ~(size_t)63)

/* The child's job: probe paths[0] (pixels NULL) or decode count files; the
 * outcome goes into hdr. With skip_bad a file that does not decode leaves
 * zero pixels and its reason in infos, and the next one is decoded. */
static void child_work(sandbox_header_t *hdr, uint8_t *pixels, data_image_info_t *infos, const char *const *paths,
                       int64_t count, int channels, int height, int width, bool skip_bad)
{
    size_t row = (size_t)channels * (size_t)height * (size_t)width;
    int rc = 0;
    if (!pixels) {
        rc = image_probe(paths[0], &hdr->probed[0], &hdr->probed[1], &hdr->probed[2], &hdr->err);
    } else {
        for (int64_t i = 0; i < count && rc == 0; i++) {
            hdr->current = i;
            rc = image_decode(paths[i], channels, height, width, pixels + (size_t)i * row, &infos[i], &hdr->err);
            if (rc < 0 && skip_bad && rc != SFP_EINTERRUPTED) {
                memset(pixels + (size_t)i * row, 0, row);
                infos[i].rc = rc;
                snprintf(infos[i].reason, sizeof infos[i].reason, "%s", hdr->err.msg);
                rc = 0;
            }
        }
    }
    hdr->rc = rc;
    hdr->state = rc == 0 ? CHILD_DONE : CHILD_FAILED;
}

static void child_main(sandbox_header_t *hdr, uint8_t *pixels, data_image_info_t *infos, const char *const *paths,
                       int64_t count, int channels, int height, int width, bool skip_bad)
{
    /* The parent reports a crash; a sanitizer's report of stb's bug on a
     * crafted file would only be noise on the terminal. */
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull >= 0) dup2(devnull, STDERR_FILENO);
    child_work(hdr, pixels, infos, paths, count, channels, height, width, skip_bad);
    _exit(hdr->state == CHILD_DONE ? 0 : 1);
}

/* Probes paths[0] (out_chw NULL, results in probed) or decodes count files
 * into out_chw (count x row bytes) and infos in a child process. *n_done
 * gets the files whose pixels and infos were copied back: count, or on a
 * failure the files before the one that failed. */
static int sandbox_run(const char *const *paths, int64_t count, int channels, int height, int width,
                       uint8_t *out_chw, data_image_info_t *out_infos, bool skip_bad, int *probed, int64_t *n_done,
                       sfp_error_t *err)
{
    size_t row = (size_t)channels * (size_t)height * (size_t)width;
    size_t infos_offset = SANDBOX_PIXELS_OFFSET + (out_chw ? ((size_t)count * row + 63) & ~(size_t)63 : 0);
    size_t map_bytes = infos_offset + (out_chw ? (size_t)count * sizeof(data_image_info_t) : 0);
    void *map = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    *n_done = 0;
    if (map == MAP_FAILED)
        return sfp_errorf(err, SFP_ENOMEM, "cannot map %zu bytes for decoding images: %s", map_bytes,
                          strerror(errno));
    sandbox_header_t *hdr = map;
    uint8_t *pixels = out_chw ? (uint8_t *)map + SANDBOX_PIXELS_OFFSET : NULL;
    data_image_info_t *infos = out_chw ? (data_image_info_t *)(void *)((uint8_t *)map + infos_offset) : NULL;
    int rc = 0, status = 0;
    pid_t pid = 0, waited = 0;
#ifdef SFP_IMAGE_IN_PROCESS
    /* Fuzzing builds only (tests/fuzz/fuzz.mk): the fuzzer needs the decoder's
     * coverage and sanitizer reports, which a child would keep to itself. */
    child_work(hdr, pixels, infos, paths, count, channels, height, width, skip_bad);
#else
    pid = fork();
    if (pid == 0) child_main(hdr, pixels, infos, paths, count, channels, height, width, skip_bad);
    if (pid < 0) {
        rc = sfp_errorf(err, SFP_ERUNTIME, "cannot start the image decoding process: %s", strerror(errno));
        munmap(map, map_bytes);
        return rc;
    }
    do waited = waitpid(pid, &status, 0);
    while (waited < 0 && errno == EINTR);
#endif
    /* The shared state is the truth (waitpid fails when SIGCHLD is ignored),
     * but a child gone wrong may have scribbled on it: nothing read back is
     * trusted beyond bytes. */
    int64_t current = out_chw ? hdr->current : 0;
    if (current < 0 || current >= count) current = 0;
    const char *path = paths[current];
    int64_t copied = hdr->state == CHILD_DONE ? count : current;
    if (out_chw && copied > 0) {
        memcpy(out_chw, pixels, (size_t)copied * row);
        if (out_infos) memcpy(out_infos, infos, (size_t)copied * sizeof *infos);
        for (int64_t i = 0; out_infos && i < copied; i++)
            out_infos[i].reason[sizeof out_infos[i].reason - 1] = '\0';
    }
    *n_done = copied;
    if (hdr->state == CHILD_DONE) {
        if (probed) {
            memcpy(probed, hdr->probed, sizeof hdr->probed);
            if ((probed[0] != 1 && probed[0] != 3) || probed[1] < 1 || probed[2] < 1 ||
                probed[1] > STBI_MAX_DIMENSIONS || probed[2] > STBI_MAX_DIMENSIONS)
                rc = sfp_errorf(err, SFP_EBADDATA, "%s: the image decoder returned a bad size", sfp_q(path));
        }
    } else if (hdr->state == CHILD_FAILED) {
        rc = hdr->rc < 0 && hdr->rc >= SFP_EINTERRUPTED ? hdr->rc : SFP_EBADDATA;
        if (err) {
            *err = hdr->err;
            err->msg[sizeof err->msg - 1] = '\0';
            err->code = rc;
        }
    } else {
        if (waited == pid && WIFSIGNALED(status))
            rc = sfp_errorf(err, SFP_EBADDATA, "%s: the image decoder crashed on this file (signal %d): corrupt "
                            "or crafted image", sfp_q(path), WTERMSIG(status));
        else
            rc = sfp_errorf(err, SFP_EBADDATA, "%s: the image decoder failed on this file (exit status %d): "
                            "corrupt or crafted image", sfp_q(path), waited == pid && WIFEXITED(status) ?
                            WEXITSTATUS(status) : -1);
    }
    munmap(map, map_bytes);
    return rc;
}

static int check_geometry(int channels, int height, int width, sfp_error_t *err)
{
    if ((channels != 1 && channels != 3) || height < 1 || width < 1 || height > DATA_MAX_SIDE ||
        width > DATA_MAX_SIDE)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "images can be read as 1 or 3 channels of at most %d pixels a "
                          "side, not %dx%dx%d", DATA_MAX_SIDE, channels, height, width);
    return 0;
}

int data_image_probe(const char *path, int *channels, int *height, int *width, sfp_error_t *err)
{
    int probed[3] = {0, 0, 0};
    int64_t done = 0;
    int rc = sandbox_run(&path, 1, 1, 1, 1, NULL, NULL, false, probed, &done, err);
    if (rc < 0) return rc;
    *channels = probed[0];
    *height = probed[1];
    *width = probed[2];
    return 0;
}

int data_image_load_many(const char *const *paths, int64_t n, int channels, int height, int width,
                         uint8_t *out_chw, data_image_info_t *infos, bool skip_bad, sfp_error_t *err)
{
    int rc = check_geometry(channels, height, width, err);
    if (rc < 0) return rc;
    size_t row = (size_t)channels * (size_t)height * (size_t)width;
    int64_t per_child = row >= SANDBOX_CHUNK_BYTES ? 1 : (int64_t)(SANDBOX_CHUNK_BYTES / row);
    if (infos) memset(infos, 0, (size_t)n * sizeof *infos);
    for (int64_t first = 0; first < n && rc == 0;) {
        int64_t count = n - first < per_child ? n - first : per_child, done = 0;
        rc = sandbox_run(paths + first, count, channels, height, width, out_chw + (size_t)first * row,
                         infos ? infos + first : NULL, skip_bad && infos, NULL, &done, err);
        if (rc == SFP_EBADDATA && skip_bad && infos && done < count) {
            /* The decoder died on file first + done: skip it, go on after it. */
            data_image_info_t *bad = &infos[first + done];
            memset(out_chw + (size_t)(first + done) * row, 0, row);
            bad->rc = rc;
            snprintf(bad->reason, sizeof bad->reason, "%s", err ? err->msg : "cannot decode the image");
            if (err) memset(err, 0, sizeof *err);
            rc = 0;
            done++;
        }
        first += rc == 0 ? done : 0;
    }
    return rc;
}

int data_image_load(const char *path, int channels, int height, int width, uint8_t *out_chw, sfp_error_t *err)
{
    return data_image_load_many(&path, 1, channels, height, width, out_chw, NULL, false, err);
}

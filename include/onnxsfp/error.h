/* Error codes and the error record every fallible library call fills.
 * A function returns 0 or a negative SFP_E* code; the message carries context
 * (file, node, op, expected vs found). The CLI maps codes to exit statuses. */
#ifndef ONNXSFP_ERROR_H
#define ONNXSFP_ERROR_H

#include <stddef.h>

enum {
    SFP_OK = 0,
    SFP_EIO = -1,          /* file system or I/O failure            -> exit 1 */
    SFP_ENOMEM = -2,       /* allocation failed                     -> exit 1 */
    SFP_ERUNTIME = -3,     /* failure while running (divergence...) -> exit 1 */
    SFP_EUSAGE = -4,       /* bad command line                      -> exit 2 */
    SFP_EBADMODEL = -5,    /* malformed model file                  -> exit 3 */
    SFP_EBADDATA = -6,     /* malformed data file                   -> exit 3 */
    SFP_EUNSUPPORTED = -7, /* valid but unsupported op/attr/type    -> exit 4 */
    SFP_EINTERRUPTED = -8, /* stopped by a signal                   -> exit 1 */
    SFP_EGATE = -9         /* a gate (--max-accuracy-drop) not met  -> exit 5 */
};

#define SFP_ERROR_MSG_MAX 1024

typedef struct sfp_error {
    int code;                       /* last SFP_E* code, 0 when none */
    char msg[SFP_ERROR_MSG_MAX];    /* one line, control characters escaped */
} sfp_error_t;

/* Fills err (may be NULL) with a formatted message and returns code. */
int sfp_errorf(sfp_error_t *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prepends "prefix: " to the message already in err; returns err->code. */
int sfp_error_prefix(sfp_error_t *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Exit status of the command line for an error code (0 to 5). */
int sfp_exit_status(int code);

/* Copies s into out (size out_size) with control characters and quotes shown
 * as escapes, so names from untrusted files cannot forge terminal output.
 * Returns out. */
const char *sfp_escape(const char *s, char *out, size_t out_size);

#endif

/* Error records: formatting, escaping of untrusted names, exit statuses. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "onnxsfp/error.h"

/* C0 controls, DEL, and the UTF-8 encoding of a C1 control (U+0080..U+009F:
 * 0xc2 0x80..0x9f; U+009B is CSI to some terminals) starting at s[i]. */
static int is_control_at(const char *s, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) return 1;
    return c == 0xc2 && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f;
}

/* Keeps a message to one printable line: control bytes become \xNN. */
static void sanitize_line(char *msg, size_t cap)
{
    char tmp[SFP_ERROR_MSG_MAX];
    size_t o = 0;
    for (size_t i = 0; msg[i] && o + 9 < sizeof tmp; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c == 0xc2 && is_control_at(msg, i)) {
            o += (size_t)snprintf(tmp + o, sizeof tmp - o, "\\xc2\\x%02x", (unsigned char)msg[++i]);
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(tmp + o, sizeof tmp - o, "\\x%02x", c);
        } else {
            tmp[o++] = (char)c;
        }
    }
    tmp[o] = '\0';
    snprintf(msg, cap, "%s", tmp);
}

int sfp_errorf(sfp_error_t *err, int code, const char *fmt, ...)
{
    if (!err) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    sanitize_line(err->msg, sizeof err->msg);
    err->code = code;
    return code;
}

int sfp_error_prefix(sfp_error_t *err, const char *fmt, ...)
{
    if (!err) return SFP_ERUNTIME;
    char prefix[SFP_ERROR_MSG_MAX];
    char old[SFP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t pl = strnlen(prefix, sizeof prefix - 1);
    if (pl + 2 >= sizeof err->msg) pl = sizeof err->msg - 3;
    memcpy(err->msg, prefix, pl);
    memcpy(err->msg + pl, ": ", 2);
    size_t room = sizeof err->msg - pl - 3, ol = strnlen(old, room);
    memcpy(err->msg + pl + 2, old, ol);
    err->msg[pl + 2 + ol] = '\0';
    sanitize_line(err->msg, sizeof err->msg);
    return err->code;
}

int sfp_exit_status(int code)
{
    switch (code) {
    case SFP_OK: return 0;
    case SFP_EUSAGE: return 2;
    case SFP_EBADMODEL:
    case SFP_EBADDATA: return 3;
    case SFP_EUNSUPPORTED: return 4;
    case SFP_EGATE: return 5;
    default: return 1;
    }
}

const char *sfp_escape(const char *s, char *out, size_t out_size)
{
    size_t o = 0;
    if (out_size == 0) return out;
    if (!s) s = "(null)";
    for (size_t i = 0; s[i] && o + 9 < out_size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0xc2 && is_control_at(s, i)) {
            o += (size_t)snprintf(out + o, out_size - o, "\\xc2\\x%02x", (unsigned char)s[++i]);
        } else if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') {
            o += (size_t)snprintf(out + o, out_size - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return out;
}

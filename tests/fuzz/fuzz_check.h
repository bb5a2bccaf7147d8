/* Shared by the libFuzzer harnesses: what a failed call must leave behind. */
#ifndef SFP_FUZZ_CHECK_H
#define SFP_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "onnxsfp/error.h"

/* A failed call must leave a known code and a one-line message with no raw
 * control bytes; anything else aborts (a finding). */
static inline void check_error(int rc, const sfp_error_t *err, const char *where)
{
    if (rc >= 0) return;
    if (rc < SFP_EINTERRUPTED || err->code != rc || !err->msg[0]) {
        fprintf(stderr, "%s: bad error record: rc %d, code %d, msg '%s'\n", where, rc, err->code, err->msg);
        abort();
    }
    for (const unsigned char *p = (const unsigned char *)err->msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(stderr, "%s: control byte 0x%02x in the error line\n", where, *p);
            abort();
        }
}

#endif

/* Protobuf wire-format helpers: a byte-budgeted allocator for protobuf-c,
 * residue bytes (fields the IR does not model), a schema-free wire scan, and
 * the schema-aware check run before protobuf-c (nesting depth, wire types). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_io.h"

typedef struct alloc_header {
    size_t size;
    size_t pad; /* keeps the payload 16-byte aligned */
} alloc_header_t;

static void *budget_malloc(void *data, size_t size)
{
    budget_alloc_t *b = data;
    if (size > b->budget - b->used) {
        b->exhausted = 1; /* sticky: protobuf-c frees what it had before failing */
        return NULL;
    }
    alloc_header_t *h = malloc(sizeof *h + size);
    if (!h) {
        b->out_of_memory = 1;
        return NULL;
    }
    h->size = size;
    b->used += size;
    return h + 1;
}

static void budget_free(void *data, void *ptr)
{
    budget_alloc_t *b = data;
    if (!ptr) return;
    alloc_header_t *h = (alloc_header_t *)ptr - 1;
    b->used -= h->size;
    free(h);
}

void budget_alloc_init(budget_alloc_t *b, size_t budget)
{
    b->base.alloc = budget_malloc;
    b->base.free = budget_free;
    b->base.allocator_data = b;
    b->used = 0;
    b->budget = budget;
    b->exhausted = 0;
    b->out_of_memory = 0;
}

int residue_pack(const ProtobufCMessage *msg, sfp_blob_t *out, sfp_error_t *err)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    out->data = NULL;
    out->len = 0;
    if (size == 0) return 0;
    out->data = malloc(size);
    if (!out->data) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    out->len = protobuf_c_message_pack(msg, out->data);
    return 0;
}

/* Reads a varint at p (< end); returns bytes used, 0 when malformed. */
static size_t read_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < 10 && p + i < end; i++) {
        r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

/* One field at p: tag and the length of what follows the tag. 0 when bad. */
static int read_field(const uint8_t *p, const uint8_t *end, uint64_t *tag, size_t *tag_len,
                      size_t *body_len, const char **reason)
{
    size_t tl = read_varint(p, end, tag);
    if (!tl) {
        *reason = "truncated or endless varint in a field tag";
        return -1;
    }
    if ((*tag >> 3) == 0) {
        *reason = "field number 0";
        return -1;
    }
    const uint8_t *q = p + tl;
    uint64_t v = 0;
    size_t n = 0;
    switch (*tag & 7) {
    case 0:
        n = read_varint(q, end, &v);
        if (!n) {
            *reason = "truncated or endless varint";
            return -1;
        }
        break;
    case 1:
        if (end - q < 8) {
            *reason = "truncated 64-bit field";
            return -1;
        }
        n = 8;
        break;
    case 5:
        if (end - q < 4) {
            *reason = "truncated 32-bit field";
            return -1;
        }
        n = 4;
        break;
    case 2: {
        size_t ll = read_varint(q, end, &v);
        if (!ll) {
            *reason = "truncated or endless length varint";
            return -1;
        }
        if (v > (uint64_t)(end - q - (ptrdiff_t)ll)) {
            *reason = "length runs past the end of the enclosing message";
            return -1;
        }
        n = ll + (size_t)v;
        break;
    }
    default:
        *reason = "unknown wire type (groups are not used by ONNX)";
        return -1;
    }
    *tag_len = tl;
    *body_len = n;
    return 0;
}

int residue_fields(const sfp_blob_t *blob, ProtobufCMessageUnknownField **out, size_t *n,
                   sfp_error_t *err)
{
    *out = NULL;
    *n = 0;
    if (!blob->len) return 0;
    const uint8_t *p = blob->data, *end = blob->data + blob->len;
    size_t count = 0;
    while (p < end) {
        uint64_t tag = 0;
        size_t tl = 0, bl = 0;
        const char *reason = NULL;
        if (read_field(p, end, &tag, &tl, &bl, &reason) < 0)
            return sfp_errorf(err, SFP_ERUNTIME, "internal: bad residue: %s", reason);
        p += tl + bl;
        count++;
    }
    ProtobufCMessageUnknownField *f = calloc(count, sizeof *f);
    if (!f) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    p = blob->data;
    for (size_t i = 0; i < count; i++) {
        uint64_t tag = 0;
        size_t tl = 0, bl = 0;
        const char *reason = NULL;
        read_field(p, end, &tag, &tl, &bl, &reason);
        f[i].tag = (uint32_t)(tag >> 3);
        f[i].wire_type = (ProtobufCWireType)(tag & 7);
        f[i].len = bl;
        f[i].data = (uint8_t *)(uintptr_t)(p + tl);
        p += tl + bl;
    }
    *out = f;
    *n = count;
    return 0;
}

int wire_scan(const uint8_t *buf, size_t len, size_t *bad_offset, const char **reason)
{
    const uint8_t *p = buf, *end = buf + len;
    while (p < end) {
        uint64_t tag = 0;
        size_t tl = 0, bl = 0;
        if (read_field(p, end, &tag, &tl, &bl, reason) < 0) {
            *bad_offset = (size_t)(p - buf);
            return -1;
        }
        p += tl + bl;
    }
    return 0;
}

/* Wire type a known field must use (packed repeated scalars may also use 2). */
static int field_wire_type(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE: return 1;
    case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT: return 5;
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_BYTES: case PROTOBUF_C_TYPE_MESSAGE: return 2;
    default: return 0;
    }
}

#define STR_(x) #x
#define STR(x) STR_(x)

int wire_check(const uint8_t *buf, size_t len, const ProtobufCMessageDescriptor *desc, size_t *bad_offset,
               const char **reason)
{
    /* An explicit stack: the depth of hostile nesting costs no C stack here,
     * and protobuf-c (which recurses) only ever sees bounded nesting. */
    struct frame {
        const uint8_t *end;
        const ProtobufCMessageDescriptor *desc;
    } stack[WIRE_MAX_DEPTH];
    int depth = 0;
    const uint8_t *p = buf;
    stack[0].end = buf + len;
    stack[0].desc = desc;
    for (;;) {
        if (p == stack[depth].end) {
            if (depth == 0) return 0;
            depth--;
            continue;
        }
        uint64_t tag = 0;
        size_t tl = 0, bl = 0;
        if (read_field(p, stack[depth].end, &tag, &tl, &bl, reason) < 0) {
            *bad_offset = (size_t)(p - buf);
            return -1;
        }
        int wt = (int)(tag & 7);
        const ProtobufCFieldDescriptor *f = NULL;
        if (stack[depth].desc && (tag >> 3) <= UINT32_MAX)
            f = protobuf_c_message_descriptor_get_field(stack[depth].desc, (unsigned)(tag >> 3));
        if (f && wt != field_wire_type(f) &&
            !(wt == 2 && f->label == PROTOBUF_C_LABEL_REPEATED && field_wire_type(f) != 2)) {
            static char msg[160];
            snprintf(msg, sizeof msg, "field %u (%s.%s) has wire type %d, expected %d", (unsigned)(tag >> 3),
                     stack[depth].desc->short_name, f->name, wt, field_wire_type(f));
            *bad_offset = (size_t)(p - buf);
            *reason = msg;
            return -1;
        }
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (depth + 1 >= WIRE_MAX_DEPTH) {
                *bad_offset = (size_t)(p - buf);
                *reason = "messages nested deeper than " STR(WIRE_MAX_DEPTH) " levels";
                return -1;
            }
            uint64_t payload = 0;
            size_t ll = read_varint(p + tl, stack[depth].end, &payload);
            depth++;
            stack[depth].end = p + tl + bl;
            stack[depth].desc = f->descriptor;
            p += tl + ll;
            continue;
        }
        p += tl + bl;
    }
}

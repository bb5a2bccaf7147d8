/* model_fix_input_shape: sizes for the symbolic dims of graph inputs, given
 * by the user as "1x3x224x224" (the one data input) or "NAME:1x3x224x224",
 * several separated by commas. Dim 0 stays the free batch when the file
 * leaves it symbolic; a dim the file fixes must be given as it is. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "ops/ops.h"
#include "util/util.h"

/* One "[NAME:]DIMS" entry of spec, [begin, end). */
static int fix_one(sfp_graph_t *g, const char *begin, const char *end, sfp_error_t *err)
{
    const char *colon = memchr(begin, ':', (size_t)(end - begin));
    int id = -1;
    if (colon) {
        char *name = sfp_strndup(begin, (size_t)(colon - begin));
        if (!name) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        id = graph_find_value(g, name);
        int rc = id < 0 || g->values[id].init || !(g->values[id].flags & SFP_VAL_INPUT)
                     ? sfp_errorf(err, SFP_EUSAGE, "--input-shape: the model has no graph input '%s'", sfp_q(name))
                     : 0;
        free(name);
        if (rc < 0) return rc;
        begin = colon + 1;
    } else if ((id = graph_data_input(g)) < 0) {
        return sfp_errorf(err, SFP_EUSAGE, "--input-shape: the model has several inputs; name one as NAME:DIMS");
    }
    int64_t dims[SFP_MAX_DIMS];
    int n = 0;
    for (const char *p = begin; p < end;) {
        char *stop = NULL;
        errno = 0;
        long long d = strtoll(p, &stop, 10);
        if (errno || stop == p || stop > end || d < 1 || d > ((int64_t)1 << 40) || n == SFP_MAX_DIMS ||
            (stop < end && *stop != 'x'))
            return sfp_errorf(err, SFP_EUSAGE, "--input-shape: '%.*s' is not a list of sizes such as 1x3x224x224",
                              (int)(end - begin), begin);
        dims[n++] = d;
        if (stop + 1 == end) /* a trailing 'x' */
            return sfp_errorf(err, SFP_EUSAGE, "--input-shape: '%.*s' is not a list of sizes such as 1x3x224x224",
                              (int)(end - begin), begin);
        p = stop < end ? stop + 1 : end;
    }
    sfp_decl_type_t *d = &g->values[id].decl;
    if (d->rank < 0) d->rank = n; /* undeclared rank: take the user's */
    int skip = d->rank == n + 1; /* C/H/W without the batch */
    if (n == 0 || (d->rank != n && !skip))
        return sfp_errorf(err, SFP_EUSAGE, "--input-shape: input '%s' has rank %d, %d sizes given",
                          sfp_q(g->values[id].name), d->rank, n);
    for (int k = skip; k < d->rank; k++) {
        int64_t want = dims[k - skip];
        if (d->dims[k] >= 0 && d->dims[k] != want)
            return sfp_errorf(err, SFP_EUSAGE, "--input-shape: input '%s' dim %d is %lld in the model, %lld given",
                              sfp_q(g->values[id].name), k, (long long)d->dims[k], (long long)want);
        if (k == 0 && d->dims[0] < 0) continue; /* the batch stays free */
        d->dims[k] = want;
        free(d->params[k]);
        d->params[k] = NULL;
    }
    return 0;
}

int model_fix_input_shape(sfp_model_t *m, const char *spec, sfp_error_t *err)
{
    if (!spec || !*spec) return sfp_errorf(err, SFP_EUSAGE, "--input-shape: empty");
    for (const char *p = spec; *p;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        int rc = fix_one(&m->graph, p, end, err);
        if (rc < 0) return rc;
        p = comma ? comma + 1 : end;
    }
    return 0;
}

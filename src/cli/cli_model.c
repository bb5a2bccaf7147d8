/* How every command loads its model: sfp_model_load_shaped with the global
 * --input-shape option, which cli_parse records here. */
#include "cli/cli.h"
#include "onnxsfp/model.h"

static const char *input_shape_spec;

void cli_set_input_shape(const char *spec)
{
    input_shape_spec = spec;
}

int cli_load_model(const char *path, sfp_model_t **out, sfp_error_t *err)
{
    return sfp_model_load_shaped(path, input_shape_spec, out, err);
}

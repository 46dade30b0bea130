/* bad_abi.c - a plugin built for another ABI version: forqd must refuse it at start. */
#include <forq/task.h>

static int t_noop(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx, (void)args;
    return msgpack_pack_nil(out);
}

static const forq_task_def_t tasks[] = {{"noop", t_noop, NULL}, {NULL, NULL, NULL}};

FORQ_TASK_EXPORT const forq_plugin_t forq_plugin_v1 = {FORQ_TASK_ABI_VERSION + 41, "bad", tasks,
                                                       NULL, NULL};

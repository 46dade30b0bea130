/* json_mp.c - see json_mp.h. */
#include "json_mp.h"

#include <forq/forq.h>
#include <stdio.h>
#include <stdlib.h>

int json_to_msgpack(const json_t *j, msgpack_packer *pk, char *err, size_t errlen)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    void *data;
    size_t len;
    forq_err_t e;
    int r;

    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    e = forq_json_to_msgpack(text, &data, &len);
    free(text);
    if (e != FORQ_OK) {
        snprintf(err, errlen, "%s", forq_errdetail());
        return -1;
    }
    r = pk->callback(pk->data, data, len);
    free(data);
    return r < 0 ? -1 : 0;
}

/* The packer's writer for msgpack_to_json: msgpack-c leaves an empty str's pointer NULL, which
 * memcpy must not be given, so an empty write is skipped. */
static int sbuffer_write(void *data, const char *buf, size_t len)
{
    return len ? msgpack_sbuffer_write(data, buf, len) : 0;
}

json_t *msgpack_to_json(const msgpack_object *o)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *text = NULL;
    json_t *j = NULL;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, sbuffer_write);
    if (msgpack_pack_object(&pk, *o) == 0 && sb.data &&
        forq_msgpack_to_json(sb.data, sb.size, &text) == FORQ_OK)
        j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    free(text);
    msgpack_sbuffer_destroy(&sb);
    return j;
}

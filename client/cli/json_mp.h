/* json_mp.h - JSON <-> msgpack for the forq CLI, through jansson.
 *
 * JSON has no bytes: msgpack bin values appear as {"$base64": "..."} and such an object (exactly
 * that one key) becomes bin on the way in. Ext values appear as {"$ext": TYPE, "$base64": "..."}.
 * Map keys that are not strings are written as their JSON text. NaN and infinities become null. */
#ifndef FORQ_JSON_MP_H
#define FORQ_JSON_MP_H

#include <jansson.h>
#include <msgpack.h>

/* Pack `j` into `pk`. Returns 0, or -1 with a one-line reason in err. */
int json_to_msgpack(const json_t *j, msgpack_packer *pk, char *err, size_t errlen);

/* A new JSON value for `o` (caller json_decref()s), or NULL on out-of-memory. */
json_t *msgpack_to_json(const msgpack_object *o);

#endif

/* json_mp.h - the forq command's JSON <-> msgpack on jansson values: a thin layer over libforq's
 * forq_json_to_msgpack() and forq_msgpack_to_json() (client/json.c), which hold the conversion
 * and its forms (bin as {"$base64": "..."}, ext as {"$ext": TYPE, "$base64": "..."}, map keys
 * that are not strings as their JSON text, NaN and infinities as null). The command keeps
 * jansson values because it reads JSON with its own error words and writes results inside its
 * own objects; each call here goes through the library's text, so the two cannot drift apart. */
#ifndef FORQ_JSON_MP_H
#define FORQ_JSON_MP_H

#include <jansson.h>
#include <msgpack.h>

/* Pack `j` into `pk`. Returns 0, or -1 with a one-line reason in err. */
int json_to_msgpack(const json_t *j, msgpack_packer *pk, char *err, size_t errlen);

/* A new JSON value for `o` (caller json_decref()s), or NULL on out-of-memory or for a value
 * libforq's forq_msgpack_to_json() refuses (one wire_check() passed cannot be refused). */
json_t *msgpack_to_json(const msgpack_object *o);

#endif

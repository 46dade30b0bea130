/* fuzz_header.c - libFuzzer harness for the header decoder (every frame a peer sends passes it)
 * and, on what decodes, a re-encode round trip that must decode again. */
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static msgpack_zone zone;
    static int init;
    wire_hdr_t h, again;
    wire_err_t err;
    msgpack_sbuffer sb;

    if (!init) {
        msgpack_zone_init(&zone, 4096);
        init = 1;
    }
    msgpack_zone_clear(&zone);
    if (wire_hdr_decode(data, size, &zone, &h, &err) != 0) {
        if (!err.code || !err.msg[0])
            abort(); /* every refusal names its problem */
        return 0;
    }
    msgpack_sbuffer_init(&sb);
    if (wire_hdr_encode(&sb, &h) != 0 ||
        wire_hdr_decode(sb.data, sb.size, &zone, &again, &err) != 0 || again.cmd != h.cmd ||
        again.id.len != h.id.len || (h.id.len && memcmp(again.id.ptr, h.id.ptr, h.id.len)))
        abort();
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

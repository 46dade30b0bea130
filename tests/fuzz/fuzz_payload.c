/* fuzz_payload.c - libFuzzer harness for the payload path: the structural check, then the
 * unpack it guards (args frames reach workers this way). Whatever passes the check must unpack
 * with memory bounded by a small multiple of its size. */
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_zone zone;
    msgpack_object o;
    wire_err_t err;

    msgpack_zone_init(&zone, 1024);
    if (wire_unpack(data, size, &zone, &o, &err) == 0) {
        if (wire_check(data, size, WIRE_DEPTH_MAX, &err) != 0)
            abort(); /* unpack and check disagree */
    }
    msgpack_zone_destroy(&zone);
    return 0;
}

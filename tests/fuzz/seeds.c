/* seeds.c - writes fuzz seed corpora from the encoders: one file per header of every command and
 * a set of payloads, into the directories given as argv[1] (headers) and argv[2] (payloads). */
#include "wire.h"

#include <stdio.h>

static void put(const char *dir, const char *name, int i, const void *data, size_t n)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s-%d", dir, name, i);
    if ((f = fopen(path, "wb"))) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

int main(int argc, char **argv)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    if (argc != 3) {
        fprintf(stderr, "usage: seeds HEADER_DIR PAYLOAD_DIR\n");
        return 2;
    }
    msgpack_sbuffer_init(&sb);
    for (int c = WIRE_SUBMIT; c <= WIRE_PROGRESS; c++) {
        wire_hdr_t h = {.cmd = (wire_cmd_t)c, .id = wire_str("seed-1"), .task = wire_str("echo"),
                        .state = WIRE_ST_OK, .req = 3, .has_req = true, .timeout_ms = 100,
                        .priority = 9, .has_priority = true, .msg = wire_str("m"),
                        .etype = wire_str("ValueError"), .signal = 11, .exit_code = 1,
                        .has_exit = true};
        msgpack_sbuffer_clear(&sb);
        wire_hdr_encode(&sb, &h);
        put(argv[1], wire_cmd_name(h.cmd), c, sb.data, sb.size);
    }
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < 4; i++) {
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_int(&pk, i * 1000);
        msgpack_pack_str_with_body(&pk, "text", 4);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_bin_with_body(&pk, "k", 1);
        msgpack_pack_double(&pk, 1.5 * i);
        put(argv[2], "payload", i, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

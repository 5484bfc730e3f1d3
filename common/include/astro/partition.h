/* Partitioning: which partition an event's key belongs to, the Redis stream key of a partition,
 * and the check that every service of a deployment agrees on the partition count P.
 *
 * WIRE CONTRACT. Producers in any language may compute the partition themselves, so the hash is
 * fixed forever: 64-bit FNV-1a over the key's raw bytes (no terminator, no normalisation; a
 * UTF-8 key is hashed as its UTF-8 bytes):
 *
 *     h = 0xcbf29ce484222325                      (FNV-1a 64-bit offset basis)
 *     for each byte b of the key:
 *         h = h XOR b
 *         h = (h * 0x00000100000001b3) mod 2^64   (FNV 64-bit prime)
 *     partition = h mod P                         (unsigned 64-bit remainder)
 *
 * Test vectors: "" -> 0xcbf29ce484222325, "a" -> 0xaf63dc4c8601ec8c.
 * Python: h=0xcbf29ce484222325; for b in key.encode(): h=((h^b)*0x100000001b3)&(2**64-1) */
#ifndef ASTRO_PARTITION_H
#define ASTRO_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"

#define ASTRO_PARTITION_FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define ASTRO_PARTITION_FNV_PRIME UINT64_C(0x00000100000001b3)

/* Bounds of ASTRO_PARTITIONS. */
#define ASTRO_PARTITIONS_MIN 1
#define ASTRO_PARTITIONS_MAX 4096

/* The Redis key where the deployment's partition count is recorded at first start. */
#define ASTRO_PARTITION_META_KEY "astro:meta:partitions"

struct redisContext;

/* FNV-1a 64 of len bytes at key (key may be NULL when len is 0). */
uint64_t astro_partition_hash(const char *key, size_t len);

/* hash(key) mod nparts; nparts must be in 1..ASTRO_PARTITIONS_MAX (0 is treated as 1). */
uint32_t astro_partition_of(const char *key, size_t len, uint32_t nparts);

/* Writes "astro:<kind>:{<p>}" into buf (e.g. "astro:mono:{7}"): the braces are a Redis Cluster
 * hash tag, so a partition's streams share one slot. kind is "mono", "multi" or "agg".
 * Returns ASTRO_OK, or ASTRO_ERR for an unknown kind, p >= ASTRO_PARTITIONS_MAX or a buf too
 * small (buf then holds ""). */
int astro_stream_key(char *buf, size_t size, const char *kind, uint32_t p) ASTRO_MUST_CHECK;

/* Records nparts in Redis on the first start (SET ASTRO_PARTITION_META_KEY nparts NX) and checks
 * that the recorded value equals nparts. Uses the synchronous hiredis API on the caller's
 * connected context c (borrowed). Returns ASTRO_OK, or ASTRO_ERR with a message in err for a
 * mismatch, a corrupt recorded value or a Redis error. */
int astro_partition_check_recorded(struct redisContext *c, uint32_t nparts, char *err,
                                   size_t errlen) ASTRO_MUST_CHECK;

#endif

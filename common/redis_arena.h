/* Internal to common/: Redis replies built in one arena per reply (redis_arena.c). */
#ifndef ASTRO_REDIS_ARENA_H
#define ASTRO_REDIS_ARENA_H

#include <hiredis/hiredis.h>

/* Makes c's reader build every following reply in one arena: free those replies with
 * astro_redis_arena_free(), never freeReplyObject(). */
void astro_redis_arena_install(redisContext *c);

/* Frees a reply built by an arena reader, with everything in it; NULL is a no-op. */
void astro_redis_arena_free(redisReply *rep);

#endif

/* Redis replies built in one arena per reply.
 *
 * hiredis' own reader functions make one calloc'd redisReply and one malloc'd string per
 * element, and freeReplyObject() frees them one by one: an XREADGROUP reply costs ~17 malloc
 * and free calls per entry. Here the root reply starts an arena (chunks of 64 KiB, doubling up
 * to 1 MiB) at whose start it lives, and every descendant (reply structs, strings with their
 * NUL, element arrays) is bump-allocated from it, so a reply is freed in a few free() calls.
 *
 * hiredis calls freeObject only on the root (a finished reply handed out, a partial one on a
 * reader error, and the pending one in redisReaderFree()); descendants are never freed alone. */
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis_arena.h"

enum {
    ARENA_FIRST_CHUNK = 64 * 1024, /* room for a small XREADGROUP batch in one malloc */
    ARENA_MAX_CHUNK = 1024 * 1024, /* bounds the unused tail of the last chunk */
};

/* A chunk after the first one; the bump space follows the header. */
struct arena_chunk {
    struct arena_chunk *prev;
};

/* The head of an arena, at the start of its first chunk. */
struct arena {
    redisReply root;      /* first member: the root reply's address is the arena's */
    unsigned char *next;  /* bump pointer in the current chunk */
    unsigned char *end;   /* end of the current chunk */
    size_t chunk_size;    /* size of the current chunk; the next one doubles it */
    struct arena_chunk *chunks; /* chunks after the first, newest first */
};

/* Starts an arena in a first chunk of cap bytes (cap covers the head). */
static struct arena *
arena_new(size_t cap)
{
    struct arena *a = malloc(cap);
    if (a == NULL)
        return NULL;
    a->next = (unsigned char *)(a + 1);
    a->end = (unsigned char *)a + cap;
    a->chunk_size = cap;
    a->chunks = NULL;
    return a;
}

static void
arena_free(struct arena *a)
{
    struct arena_chunk *c = a->chunks;
    while (c != NULL) {
        struct arena_chunk *prev = c->prev;
        free(c);
        c = prev;
    }
    free(a);
}

/* Adds a chunk with room for need bytes; the unused tail of the current one is given up. */
static int
arena_grow(struct arena *a, size_t need)
{
    if (need > SIZE_MAX / 2)
        return REDIS_ERR;
    size_t size = a->chunk_size < ARENA_MAX_CHUNK / 2 ? a->chunk_size * 2 : ARENA_MAX_CHUNK;
    if (size < sizeof(struct arena_chunk) + need)
        size = sizeof(struct arena_chunk) + need;
    struct arena_chunk *c = malloc(size);
    if (c == NULL)
        return REDIS_ERR;
    c->prev = a->chunks;
    a->chunks = c;
    a->chunk_size = size;
    a->next = (unsigned char *)(c + 1);
    a->end = (unsigned char *)c + size;
    return REDIS_OK;
}

/* Returns size bytes aligned to align (a power of two) from the arena, or NULL. */
static void *
arena_alloc(struct arena *a, size_t size, size_t align)
{
    uintptr_t p = ((uintptr_t)a->next + align - 1) & ~(uintptr_t)(align - 1);
    if (p > (uintptr_t)a->end || size > (uintptr_t)a->end - p) {
        if (arena_grow(a, size + align) != REDIS_OK)
            return NULL;
        p = ((uintptr_t)a->next + align - 1) & ~(uintptr_t)(align - 1);
    }
    a->next = (unsigned char *)p + size;
    return (void *)p;
}

/* The arena of the reply task belongs to: its root task's object is the root reply. */
static struct arena *
arena_of(const redisReadTask *task)
{
    while (task->parent != NULL)
        task = task->parent;
    return (struct arena *)task->obj;
}

/* Makes a reply of type for task with a payload of size bytes aligned to align (*payload;
 * NULL when size is 0), links it into its parent array, and returns it or NULL. A root starts
 * its arena: an array's first chunk leaves room for its descendants, a scalar's is exact. */
static redisReply *
new_reply(const redisReadTask *task, int type, size_t size, size_t align, void **payload)
{
    bool root = task->parent == NULL;
    struct arena *a;
    if (root) {
        size_t cap = sizeof(struct arena) + size + align;
        if (type == REDIS_REPLY_ARRAY && cap < ARENA_FIRST_CHUNK)
            cap = ARENA_FIRST_CHUNK;
        a = arena_new(cap);
    } else {
        a = arena_of(task);
    }
    if (a == NULL)
        return NULL;
    redisReply *rep = root ? &a->root : arena_alloc(a, sizeof(*rep), alignof(redisReply));
    void *p = rep != NULL && size > 0 ? arena_alloc(a, size, align) : NULL;
    if (rep == NULL || (size > 0 && p == NULL)) {
        if (root)
            arena_free(a);
        return NULL;
    }
    *rep = (redisReply){ .type = type };
    if (!root) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = rep;
    }
    *payload = p;
    return rep;
}

static void *
create_string(const redisReadTask *task, char *str, size_t len)
{
    void *buf;
    redisReply *rep = new_reply(task, task->type, len + 1, 1, &buf);
    if (rep == NULL)
        return NULL;
    memcpy(buf, str, len);
    rep->str = buf;
    rep->str[len] = '\0';
    rep->len = len;
    return rep;
}

/* The element slots are left unset: hiredis fills every one before it hands the reply out,
 * and an unfinished reply is only ever freed whole. */
static void *
create_array(const redisReadTask *task, int elements)
{
    void *slots;
    size_t n = elements > 0 ? (size_t)elements : 0;
    redisReply *rep =
        new_reply(task, REDIS_REPLY_ARRAY, n * sizeof(redisReply *), alignof(redisReply *), &slots);
    if (rep == NULL)
        return NULL;
    rep->element = slots;
    rep->elements = n;
    return rep;
}

static void *
create_integer(const redisReadTask *task, long long value)
{
    void *unused;
    redisReply *rep = new_reply(task, REDIS_REPLY_INTEGER, 0, 1, &unused);
    if (rep != NULL)
        rep->integer = value;
    return rep;
}

static void *
create_nil(const redisReadTask *task)
{
    void *unused;
    return new_reply(task, REDIS_REPLY_NIL, 0, 1, &unused);
}

static void
free_object(void *obj)
{
    astro_redis_arena_free(obj);
}

/* Not const: hiredis 0.14's redisReader.fn is a non-const pointer. Never modified. */
static redisReplyObjectFunctions arena_functions = {
    .createString = create_string,
    .createArray = create_array,
    .createInteger = create_integer,
    .createNil = create_nil,
    .freeObject = free_object,
};

void
astro_redis_arena_install(redisContext *c)
{
    c->reader->fn = &arena_functions;
}

void
astro_redis_arena_free(redisReply *rep)
{
    if (rep != NULL)
        arena_free((struct arena *)rep);
}

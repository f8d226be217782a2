/* The model's arena when the application owns it (--arena caller: model.h defines
 * TVMGEN_DEFAULT_WORKSPACE_POOLS): one static buffer of TVMGEN_DEFAULT_WORKSPACE_SIZE bytes,
 * 8-byte aligned, in TVMGEN_DEFAULT_ARENA_SECTION when the build places it, handed to every
 * call as WORKSPACE_POOLS. When model.c holds the arena, WORKSPACE_POOLS is empty.
 * Include after model.h. */
#ifndef APP_ARENA_H_
#define APP_ARENA_H_

#ifdef TVMGEN_DEFAULT_WORKSPACE_POOLS
#ifndef TVMGEN_DEFAULT_ARENA_SECTION
#define TVMGEN_DEFAULT_ARENA_SECTION
#endif
static float tvmgen_default_arena[(TVMGEN_DEFAULT_WORKSPACE_SIZE + 3) / 4 > 0 ? (TVMGEN_DEFAULT_WORKSPACE_SIZE + 3) / 4 : 1]
    TVMGEN_DEFAULT_ARENA_SECTION TVMGEN_DEFAULT_ALIGN8;
static struct tvmgen_default_workspace_pools g_workspace_pools = {tvmgen_default_arena};
#define WORKSPACE_POOLS , &g_workspace_pools
#else
#define WORKSPACE_POOLS
#endif

#endif

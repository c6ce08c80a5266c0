/* exec_hook.h - hooks that run a program (canaryd/v1 `exec`) instead of
 * posting to a URL: spawned on the libuv loop (uv_spawn, never waited for
 * on the loop), no shell, the argument vector as given, an environment
 * made of what the caller passes (PATH included), stdin /dev/null, stdout
 * and stderr captured together, bounded, and a timeout that ends the
 * program's whole process group: SIGTERM, then SIGKILL EXEC_KILL_GRACE_MS
 * later. */
#ifndef CANARYD_EXEC_HOOK_H
#define CANARYD_EXEC_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define EXEC_OUTPUT_MAX 4096     /* bytes of output kept; the rest is counted */
#define EXEC_RUNNING_MAX 32      /* programs running at once, all hooks */
#define EXEC_KILL_GRACE_MS 2000  /* SIGTERM to SIGKILL */
#define EXEC_DRAIN_MS 500        /* after the program exits, how long its
                                  * output is still read (a child it left
                                  * behind may hold the pipe open) */

typedef struct exec_hooks exec_hooks;

/* How a run ended. <error> set: the program could not be run (not found,
 * not executable, too many running), and nothing else is. Else <exited>
 * with <exit_code>, or killed by <term_signal>; <timed_out> when canaryd
 * killed it for its timeout. <output>: the first EXEC_OUTPUT_MAX bytes
 * of stdout and stderr in the order they came (NUL-terminated, may hold
 * any byte), <truncated> when there was more. */
typedef struct exec_result {
	const char *error;
	bool exited;
	int exit_code;
	int term_signal;
	bool timed_out;
	const char *output;
	size_t output_len;
	bool truncated;
	uint64_t elapsed_ms;
} exec_result;

typedef void (*exec_done_fn)(void *arg, const exec_result *r);

exec_hooks *exec_hooks_new(uv_loop_t *loop);

/* Runs <argv> (argv[0] the program's path, NULL-terminated; copied) with
 * environment <env> ("NAME=value" strings, NULL-terminated; copied), for
 * at most <timeout_ms>. <done> is called once, on a later turn of the
 * loop, however the run ends, success is exited with exit_code 0.
 * Returns 0; never fails to call <done> (a program that cannot start
 * ends with <error>). */
void exec_hooks_run(exec_hooks *e, char *const *argv, char *const *env, uint64_t timeout_ms,
                    exec_done_fn done, void *arg);

/* Programs running. */
int exec_hooks_running(const exec_hooks *e);

/* Kills every running program's process group (SIGKILL), gives each
 * <arg> to <drop> (their <done> is not called) and frees <e> once its
 * handles are closed. NULL is a no-op. */
void exec_hooks_free(exec_hooks *e, void (*drop)(void *arg));

#endif

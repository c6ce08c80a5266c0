/* test_exec_hook.c - a hook program run on the loop: exit codes, output
 * captured and bounded, the environment as given, a timeout that ends the
 * program and what it started, a program that cannot start, and a free
 * with programs running. Real processes (/bin/sh), each bounded in time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "exec_hook.h"

typedef struct got {
	int calls;
	bool exited, timed_out, truncated;
	int code, sig;
	char error[256];
	char out[EXEC_OUTPUT_MAX + 1];
	size_t out_len;
	uint64_t ms;
} got;

static void done(void *arg, const exec_result *r)
{
	got *g = arg;
	g->calls++;
	g->exited = r->exited;
	g->timed_out = r->timed_out;
	g->truncated = r->truncated;
	g->code = r->exit_code;
	g->sig = r->term_signal;
	g->ms = r->elapsed_ms;
	snprintf(g->error, sizeof g->error, "%s", r->error ? r->error : "");
	memcpy(g->out, r->output, r->output_len);
	g->out[r->output_len] = '\0';
	g->out_len = r->output_len;
}

static char *const env[] = { "PATH=/usr/bin:/bin", "CANARY_NAME=web", NULL };

static void run(const char *script, uint64_t timeout_ms, got *g)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	exec_hooks *e = exec_hooks_new(&loop);
	char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };
	exec_hooks_run(e, argv, env, timeout_ms, done, g);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(exec_hooks_running(e), 0);
	exec_hooks_free(e, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(g->calls, 1);
}

static void test_exit_code_and_output(void **state)
{
	got g = { 0 };
	run("echo out; echo err >&2; exit 3", 5000, &g);
	assert_true(g.exited);
	assert_int_equal(g.code, 3);
	assert_string_equal(g.error, "");
	assert_non_null(strstr(g.out, "out\n"));
	assert_non_null(strstr(g.out, "err\n"));
	assert_false(g.truncated);
}

static void test_environment_is_what_is_given(void **state)
{
	got g = { 0 };
	run("echo \"$CANARY_NAME|$PATH|${HOME:-nohome}\"", 5000, &g);
	assert_int_equal(g.code, 0);
	assert_string_equal(g.out, "web|/usr/bin:/bin|nohome\n");
}

/* a descriptor of the parent's, not close-on-exec, is not the program's */
static void test_no_descriptor_is_inherited(void **state)
{
	int fd = open("/dev/null", O_RDONLY);
	assert_true(fd > 2);
	assert_false(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	char script[128];
	snprintf(script, sizeof script, "test -e /proc/self/fd/%d && echo inherited; echo done", fd);
	got g = { 0 };
	run(script, 5000, &g);
	assert_string_equal(g.out, "done\n");
	close(fd);
}

static void test_output_is_bounded(void **state)
{
	got g = { 0 };
	/* 64 KiB: more than a pipe holds, so the program blocks unless read on */
	run("i=0; while [ $i -lt 1024 ]; do "
	    "echo 0123456789012345678901234567890123456789012345678901234567890123; "
	    "i=$((i+1)); done", 10000, &g);
	assert_true(g.exited);
	assert_int_equal(g.code, 0);
	assert_int_equal(g.out_len, EXEC_OUTPUT_MAX);
	assert_true(g.truncated);
}

static void test_timeout_kills_the_group(void **state)
{
	got g = { 0 };
	/* the child sleep holds the pipe: only a group kill ends it in time */
	run("sleep 30 & sleep 30; echo never", 200, &g);
	assert_true(g.timed_out);
	assert_false(g.exited);
	assert_int_equal(g.sig, SIGTERM);
	assert_null(strstr(g.out, "never"));
	assert_true(g.ms < 200 + EXEC_KILL_GRACE_MS);
}

static void test_program_that_cannot_start(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	exec_hooks *e = exec_hooks_new(&loop);
	got g = { 0 };
	char *argv[] = { "/nonexistent/program", NULL };
	exec_hooks_run(e, argv, env, 1000, done, &g);
	assert_int_equal(g.calls, 0); /* on a later turn of the loop */
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g.calls, 1);
	assert_non_null(strstr(g.error, "cannot run '/nonexistent/program'"));
	exec_hooks_free(e, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static int dropped;
static void drop(void *arg)
{
	(void)arg;
	dropped++;
}

static void test_free_kills_and_drops(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	exec_hooks *e = exec_hooks_new(&loop);
	got g = { 0 };
	char *argv[] = { "/bin/sleep", "30", NULL };
	exec_hooks_run(e, argv, env, 60000, done, &g);
	exec_hooks_run(e, argv, env, 60000, done, &g);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(exec_hooks_running(e), 2);
	dropped = 0;
	exec_hooks_free(e, drop);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(dropped, 2);
	assert_int_equal(g.calls, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_code_and_output),
		cmocka_unit_test(test_environment_is_what_is_given),
		cmocka_unit_test(test_no_descriptor_is_inherited),
		cmocka_unit_test(test_output_is_bounded),
		cmocka_unit_test(test_timeout_kills_the_group),
		cmocka_unit_test(test_program_that_cannot_start),
		cmocka_unit_test(test_free_kills_and_drops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

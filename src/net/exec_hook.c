/* exec_hook.c - see exec_hook.h.
 *
 * One run is a process handle, two pipes (stdout, stderr) and one timer
 * that serves, in turn, as the timeout, the SIGTERM-to-SIGKILL grace and
 * the drain after the exit. A run ends (finish) once the program has
 * exited and both pipes are at their end, or the drain is over, or it
 * could not start; its handles are then closed and it is freed when the
 * last one is, never inside its own callback.
 *
 * The program is started in a session of its own (UV_PROCESS_DETACHED:
 * setsid), so that a timeout ends what it started too: a script's
 * `sleep` would otherwise outlive it and hold the output pipe open.
 *
 * A program gets no descriptor of canaryd's but its stdio: libuv sets
 * close-on-exec on its own, but not every descriptor in the process is
 * libuv's (a listener opened for SO_REUSEPORT, libcurl's sockets), and a
 * hook that inherited a proxy's listener would hold its port, and take a
 * share of its connections, for as long as it runs. So every descriptor
 * from 3 up is marked close-on-exec before each spawn (canaryd itself
 * never execs anything else). */
#include "exec_hook.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

typedef struct exec_run {
	exec_hooks *e;           /* NULL once exec_hooks_free has let it go */
	uv_process_t proc;
	uv_pipe_t pipe[2];       /* stdout, stderr */
	uv_timer_t timer;
	int handles;             /* open handles; freed when the last closes */
	int pipes_open;          /* pipes still read */
	bool spawned, exited, timed_out, killed, finished;
	int64_t exit_status;
	int term_signal;
	char out[EXEC_OUTPUT_MAX + 1];
	size_t out_len;
	bool truncated;
	char rbuf[4096];
	uint64_t started, timeout_ms;
	exec_done_fn done;
	void *arg;
	char error[256];
	struct exec_run *next;
} exec_run;

struct exec_hooks {
	uv_loop_t *loop;
	exec_run *runs;
	int running;
};

exec_hooks *exec_hooks_new(uv_loop_t *loop)
{
	exec_hooks *e = xcalloc(1, sizeof *e);
	e->loop = loop;
	return e;
}

int exec_hooks_running(const exec_hooks *e)
{
	return e ? e->running : 0;
}

static void run_closed(uv_handle_t *h)
{
	exec_run *r = h->data;
	if (--r->handles == 0)
		free(r);
}

static void close_all(exec_run *r)
{
	uv_close((uv_handle_t *)&r->timer, run_closed);
	for (int i = 0; i < 2; i++)
		if (r->pipe[i].data)
			uv_close((uv_handle_t *)&r->pipe[i], run_closed);
	if (r->proc.data)
		uv_close((uv_handle_t *)&r->proc, run_closed);
}

static void unlink_run(exec_run *r)
{
	if (!r->e)
		return;
	for (exec_run **pp = &r->e->runs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	r->e->running--;
}

/* Reports the run once and lets its handles go. */
static void finish(exec_run *r)
{
	if (r->finished)
		return;
	r->finished = true;
	uv_loop_t *loop = r->timer.loop;
	exec_result res = {
		.error = r->error[0] ? r->error : NULL,
		.exited = r->exited && r->term_signal == 0,
		.exit_code = (int)r->exit_status,
		.term_signal = r->term_signal,
		.timed_out = r->timed_out,
		.output = r->out,
		.output_len = r->out_len,
		.truncated = r->truncated,
		.elapsed_ms = uv_now(loop) - r->started,
	};
	r->out[r->out_len] = '\0';
	unlink_run(r);
	if (r->done)
		r->done(r->arg, &res);
	close_all(r);
}

static void signal_group(exec_run *r, int sig)
{
	/* the program's session and process group have its pid (setsid) */
	if (r->spawned && !r->exited && r->proc.pid > 0 && kill(-r->proc.pid, sig) < 0)
		kill(r->proc.pid, sig);
}

static void on_timer(uv_timer_t *t)
{
	exec_run *r = t->data;
	if (r->error[0] || r->exited) {
		finish(r);          /* could not start, or the drain is over */
	} else if (!r->timed_out) {
		r->timed_out = true;
		signal_group(r, SIGTERM);
		uv_timer_start(&r->timer, on_timer, EXEC_KILL_GRACE_MS, 0);
	} else if (!r->killed) {
		r->killed = true;
		signal_group(r, SIGKILL);
		uv_timer_start(&r->timer, on_timer, EXEC_KILL_GRACE_MS, 0);
	} else {
		/* not reaped after SIGKILL (stopped in the kernel): given up */
		snprintf(r->error, sizeof r->error, "did not exit %d ms after SIGKILL",
		         EXEC_KILL_GRACE_MS);
		finish(r);
	}
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	exec_run *r = p->data;
	r->exited = true;
	r->exit_status = status;
	r->term_signal = sig;
	if (r->finished)
		return;
	if (r->pipes_open == 0)
		finish(r);
	else
		uv_timer_start(&r->timer, on_timer, EXEC_DRAIN_MS, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	exec_run *r = h->data;
	(void)hint;
	*b = uv_buf_init(r->rbuf, sizeof r->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	exec_run *r = s->data;
	if (n > 0) {
		size_t room = EXEC_OUTPUT_MAX - r->out_len;
		size_t take = (size_t)n < room ? (size_t)n : room;
		memcpy(r->out + r->out_len, b->base, take);
		r->out_len += take;
		if ((size_t)n > take)
			r->truncated = true; /* read on, so the program never blocks */
		return;
	}
	if (n == 0)
		return;
	uv_read_stop(s);
	r->pipes_open--;
	if (r->exited && r->pipes_open == 0 && !r->finished)
		finish(r);
}

/* Marks every descriptor from 3 up close-on-exec (see the head). */
static void cloexec_all(void)
{
#ifdef CLOSE_RANGE_CLOEXEC
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
#endif
	/* an older kernel: one by one */
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int self = dirfd(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);
		if (fd < 3 || fd == self)
			continue;
		int fl = fcntl(fd, F_GETFD);
		if (fl >= 0 && !(fl & FD_CLOEXEC))
			fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	}
	closedir(d);
}

void exec_hooks_run(exec_hooks *e, char *const *argv, char *const *env, uint64_t timeout_ms,
                    exec_done_fn done, void *arg)
{
	exec_run *r = xcalloc(1, sizeof *r);
	r->e = e;
	r->done = done;
	r->arg = arg;
	r->timeout_ms = timeout_ms;
	r->started = uv_now(e->loop);
	uv_timer_init(e->loop, &r->timer);
	r->timer.data = r;
	r->handles = 1;
	r->next = e->runs;
	e->runs = r;
	e->running++;
	if (e->running > EXEC_RUNNING_MAX) {
		snprintf(r->error, sizeof r->error, "not run: %d hook programs are already running",
		         EXEC_RUNNING_MAX);
		uv_timer_start(&r->timer, on_timer, 0, 0);
		return;
	}
	uv_stdio_container_t io[3];
	io[0].flags = UV_IGNORE;
	for (int i = 0; i < 2; i++) {
		uv_pipe_init(e->loop, &r->pipe[i], 0);
		r->pipe[i].data = r;
		r->handles++;
		io[i + 1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
		io[i + 1].data.stream = (uv_stream_t *)&r->pipe[i];
	}
	uv_process_options_t o;
	memset(&o, 0, sizeof o);
	o.exit_cb = on_exit_cb;
	o.file = argv[0];
	o.args = (char **)argv;
	o.env = (char **)env;
	o.stdio = io;
	o.stdio_count = 3;
	o.flags = UV_PROCESS_DETACHED;
	r->proc.data = r;
	cloexec_all();
	int rc = uv_spawn(e->loop, &r->proc, &o);
	r->handles++; /* closed even when the spawn failed (libuv's rule) */
	if (rc < 0) {
		snprintf(r->error, sizeof r->error, "cannot run '%.150s': %s", argv[0],
		         uv_strerror(rc));
		uv_timer_start(&r->timer, on_timer, 0, 0);
		return;
	}
	r->spawned = true;
	for (int i = 0; i < 2; i++)
		if (uv_read_start((uv_stream_t *)&r->pipe[i], on_alloc, on_read) == 0)
			r->pipes_open++;
	uv_timer_start(&r->timer, on_timer, timeout_ms ? timeout_ms : 1, 0);
}

void exec_hooks_free(exec_hooks *e, void (*drop)(void *arg))
{
	if (!e)
		return;
	while (e->runs) {
		exec_run *r = e->runs;
		e->runs = r->next;
		r->e = NULL;
		signal_group(r, SIGKILL);
		r->finished = true;
		if (drop)
			drop(r->arg);
		close_all(r);
	}
	free(e);
}

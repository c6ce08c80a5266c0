/* test_haproxy_rt.c - HAProxy's runtime API: the readers of its answers
 * (the exact bytes HAProxy 2.6 wrote, then broken ones), addresses, and
 * the client on a loop against a unix socket of the test's: one write
 * with the commands, the answer until close, errors and time bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "haproxy_rt.h"

#define S(x) x, strlen(x)

/* as HAProxy 2.6.12 answered (tests/e2e ran the same commands) */
static const char SERVERS[] =
	"1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
	"srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
	"srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
	"srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
	"srv_agent_port\n"
	"3 be 1 own 127.0.0.1 2 0 1 1 4 1 0 2 0 0 0 0 - 18001 - 0 0 - - 0\n"
	"3 be 2 cd-x-s0 127.0.0.1 2 0 10 0 1 1 0 0 0 0 0 0 - 18002 - 0 0 - - 0\n"
	"4 other 1 o1 10.0.0.1 2 0 1 1 4 1 0 2 0 0 0 0 - 80 - 0 0 - - 0\n"
	"3 be 3 v6 ::1 0 1 0 0 1 1 0 0 0 0 0 0 - 18009 - 0 0 - - 0\n\n";

static const char STAT_HEAD[] =
	"# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,"
	"wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,"
	"throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,"
	"check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,"
	"req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,"
	"lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,\n";

/* a row with pxname, svname, scur, hrsp 1xx..5xx, other, rtime, ttime */
static void stat_row(char *out, size_t n, const char *px, const char *sv, int scur,
                     const char *h1, const char *h2, const char *h5, int rtime)
{
	snprintf(out, n, "%s,%s,0,0,%d,1,,10,0,0,0,0,,0,0,0,0,UP,1,1,0,,,1,,,1,2,1,,10,,2,0,,1,"
	         ",,,%s,%s,0,0,%s,0,,0,1,10,0,0,0,0,0,0,1,,,0,0,%d,%d,\n", px, sv, scur, h1, h2,
	         h5, rtime, rtime + 1);
}

static void test_answer_ok(void **state)
{
	char err[64];
	assert_int_equal(hart_answer_ok(S(""), err, sizeof err), 0);
	assert_int_equal(hart_answer_ok(S("New server registered.\n\n\n\n\n"), err, sizeof err), 0);
	assert_int_equal(hart_answer_ok(S("\nServer deleted.\n"), err, sizeof err), 0);
	assert_int_equal(hart_answer_ok(S("New server registered.\n\nNo such server.\n\n"), err,
	                                sizeof err), -1);
	assert_string_equal(err, "No such server.");
	assert_int_equal(hart_answer_ok(S("Absolute weight can only be between 0 and 256 "
	                                  "inclusive.\n"), err, 20), -1);
	assert_string_equal(err, "Absolute weight can");
	assert_int_equal(hart_answer_ok("\x01\xff\0x\n", 5, err, sizeof err), -1);
	assert_string_equal(err, "???x");
}

static void test_info(void **state)
{
	hart_info in;
	char err[128];
	assert_int_equal(hart_parse_info(S("Name: HAProxy\nVersion: 2.6.12\nPid: 25936\nUptime: 0d "
	                                   "0h00m07s\nUptime_sec: 7\nMemmax_MB: 0\n\n"), &in, err,
	                                 sizeof err), 0);
	assert_int_equal(in.pid, 25936);
	assert_int_equal(in.uptime_sec, 7);
	assert_int_equal(hart_parse_info(S("Pid: 12\n"), &in, err, sizeof err), -1);
	assert_string_equal(err, "show info: haproxy answered 'Pid: 12'");
	assert_int_equal(hart_parse_info(S("Pid: -1\nUptime_sec: 3\n"), &in, err, sizeof err), -1);
	assert_int_equal(hart_parse_info(S("Pid: 99999999999\nUptime_sec: 3\n"), &in, err,
	                                 sizeof err), -1);
	/* found by fuzz_haproxy: "06" is not how HAProxy writes 6 */
	assert_int_equal(hart_parse_info(S("Pid: 251\nUptime_sec: 06\n"), &in, err, sizeof err), -1);
	assert_int_equal(hart_parse_info(S(""), &in, err, sizeof err), -1);
	assert_string_equal(err, "show info: haproxy answered nothing");
}

static void test_servers(void **state)
{
	hart_server *s;
	size_t n;
	char err[200];
	assert_int_equal(hart_parse_servers(S(SERVERS), "be", &s, &n, err, sizeof err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(s[0].name, "own");
	assert_string_equal(s[1].name, "cd-x-s0");
	assert_string_equal(s[1].addr, "127.0.0.1");
	assert_int_equal(s[1].port, 18002);
	assert_int_equal(s[1].uweight, 10);
	assert_int_equal(s[1].op_state, 2);
	assert_string_equal(s[2].addr, "::1");
	assert_int_equal(s[2].admin_state, HART_ADMIN_FMAINT);
	free(s);
	assert_int_equal(hart_parse_servers(S("Can't find backend.\n\n"), "nope", &s, &n, err,
	                                    sizeof err), -1);
	assert_string_equal(err, "show servers state: haproxy answered 'Can't find backend.'");
	assert_null(s);
	/* a backend without servers */
	assert_int_equal(hart_parse_servers(S("1\n# be_id be_name srv_id srv_name srv_addr "
	                                      "srv_op_state srv_admin_state srv_uweight srv_port\n"),
	                                    "be", &s, &n, err, sizeof err), 0);
	assert_int_equal(n, 0);
	/* a header without a column canaryd reads */
	assert_int_equal(hart_parse_servers(S("1\n# be_name srv_name\nbe x\n"), "be", &s, &n, err,
	                                    sizeof err), -1);
	assert_string_equal(err, "show servers state: no column 'srv_addr' in the header");
	/* rows cut short, weights out of range, names too long */
	char bad[2048];
	const char *rows[] = { "3 be 2 x 127.0.0.1 2 0\n",
		"3 be 2 x 127.0.0.1 2 0 257 0 1 1 0 0 0 0 0 0 - 18002 - 0 0 - - 0\n",
		"3 be 2 x 127.0.0.1 2 0 1 0 1 1 0 0 0 0 0 0 - 70000 - 0 0 - - 0\n",
		"3 be 2 x 127.0.0.1 9 0 1 0 1 1 0 0 0 0 0 0 - 80 - 0 0 - - 0\n",
		/* found by fuzz_haproxy: a comma or a blank is no address */
		"3 be 2 x ,127.0.0.1 2 0 1 0 1 1 0 0 0 0 0 0 - 80 - 0 0 - - 0\n",
		"3 be 2 x;y 127.0.0.1 2 0 1 0 1 1 0 0 0 0 0 0 - 80 - 0 0 - - 0\n" };
	const char *head = strchr(SERVERS, '\n') + 1;
	size_t hl = (size_t)(strchr(head, '\n') + 1 - SERVERS);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		snprintf(bad, sizeof bad, "%.*s%s", (int)hl, SERVERS, rows[i]);
		assert_int_equal(hart_parse_servers(S(bad), "be", &s, &n, err, sizeof err), -1);
		assert_non_null(strstr(err, "server row 1 is not what HAProxy 2.6 writes"));
	}
	char longname[400];
	memset(longname, 'a', 200);
	longname[200] = '\0';
	snprintf(bad, sizeof bad, "%.*s3 be 2 %s 127.0.0.1 2 0 1 0 1 1 0 0 0 0 0 0 - 80 - 0 0 - - 0\n",
	         (int)hl, SERVERS, longname);
	assert_int_equal(hart_parse_servers(S(bad), "be", &s, &n, err, sizeof err), -1);
}

static void test_stat(void **state)
{
	char text[4096], row[512];
	snprintf(text, sizeof text, "%s", STAT_HEAD);
	stat_row(row, sizeof row, "fe", "FRONTEND", 1, "", "10", "0", 0);
	strcat(text, row);
	stat_row(row, sizeof row, "be", "cd-web-s0", 2, "0", "90", "3", 7);
	strcat(text, row);
	stat_row(row, sizeof row, "be", "cd-web-c1", 0, "", "", "", 0);   /* tcp: no counters */
	strcat(text, row);
	stat_row(row, sizeof row, "be", "BACKEND", 2, "0", "90", "3", 7);
	strcat(text, row);
	stat_row(row, sizeof row, "other", "cd-web-s0", 2, "0", "90", "3", 7);
	strcat(text, row);
	hart_stat *s;
	size_t n;
	char err[200];
	assert_int_equal(hart_parse_stat(S(text), "be", &s, &n, err, sizeof err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(s[0].name, "cd-web-s0");
	assert_int_equal(s[0].scur, 2);
	assert_int_equal(s[0].hrsp[2], 90);
	assert_int_equal(s[0].hrsp[5], 3);
	assert_int_equal(s[0].rtime_ms, 7);
	assert_int_equal(s[0].ttime_ms, 8);
	assert_int_equal(s[1].hrsp[2], 0);
	free(s);
	/* the balance algorithm, from the backend's own row */
	char algo[32];
	assert_int_equal(hart_stat_algo(S(text), "be", algo, sizeof algo), -1);  /* no algo column */
	assert_int_equal(hart_stat_algo(S("# pxname,svname,algo\nfe,FRONTEND,\nbe,s1,\n"
	                                  "be,BACKEND,static-rr\n"), "be", algo, sizeof algo), 0);
	assert_string_equal(algo, "static-rr");
	assert_int_equal(hart_stat_algo(S("# pxname,svname,algo\nbe,BACKEND,a;b\n"), "be", algo,
	                                sizeof algo), -1);
	assert_int_equal(hart_stat_algo(S("# pxname,svname,algo\nbe,BACKEND,roundrobin\n"), "x",
	                                algo, sizeof algo), -1);
	assert_int_equal(hart_parse_stat(S("Permission denied\n"), "be", &s, &n, err, sizeof err), -1);
	assert_string_equal(err, "show stat: haproxy answered 'Permission denied'");
	assert_int_equal(hart_parse_stat(S("# pxname,svname\n"), "be", &s, &n, err, sizeof err), -1);
	assert_string_equal(err, "show stat: no column 'scur' in the header");
	snprintf(text, sizeof text, "%sbe,cd-web-s0,0,0,x\n", STAT_HEAD);
	assert_int_equal(hart_parse_stat(S(text), "be", &s, &n, err, sizeof err), -1);
	snprintf(text, sizeof text, "%s", STAT_HEAD);
	stat_row(row, sizeof row, "be", "cd-web-s0", 2, "0", "-5", "3", 7);
	strcat(text, row);
	assert_int_equal(hart_parse_stat(S(text), "be", &s, &n, err, sizeof err), -1);
	assert_string_equal(err, "show stat: row 1 of backend 'be' is not what HAProxy 2.6 writes");
}

static void test_log(void **state)
{
	hart_log l;
	const char *line = "<134>Dec  1 12:00:00 haproxy[99]: 127.0.0.1:5555 "
		"[01/Dec/2026:12:00:00.123] fe be/cd-web-c1 0/0/0/312/313 200 123 - - ---- "
		"1/1/0/0/0 0/0 \"GET / HTTP/1.1\"";
	assert_int_equal(hart_parse_log(S(line), &l), 0);
	assert_string_equal(l.backend, "be");
	assert_string_equal(l.server, "cd-web-c1");
	assert_int_equal(l.status, 200);
	assert_int_equal(l.total_ms, 313);
	/* RFC 5424 header, an aborted request, a '+' (logasap) total */
	assert_int_equal(hart_parse_log(S("<134>1 2026-12-01T12:00:00.1Z h haproxy 99 - - "
	                                  "127.0.0.1:1 [01/Dec/2026:12:00:00.123] fe~ be/<NOSRV> "
	                                  "-1/-1/-1/-1/+5 -1 0 - - CR-- 1/1/0/0/0 0/0 \"<BADREQ>\""),
	                                &l), 0);
	assert_string_equal(l.server, "<NOSRV>");
	assert_int_equal(l.status, -1);
	assert_int_equal(l.total_ms, 5);
	/* not HTTP logs */
	assert_int_equal(hart_parse_log(S("<133>Dec  1 12:00:00 haproxy[99]: Proxy fe started."),
	                                &l), -1);
	assert_int_equal(hart_parse_log(S("<134>Dec  1 haproxy[99]: 1.2.3.4:5 [01/Dec/2026:1] fe "
	                                  "be/s 1/2/3 200"), &l), -1);
	assert_int_equal(hart_parse_log(S("[01/x] a b/c 1/2/3/4/5 99"), &l), -1);
	assert_int_equal(hart_parse_log(S(" [01/x] a b/c 1/2/3/4/5 200"), &l), 0);
	assert_int_equal(hart_parse_log(S(" [01/x] a bc 1/2/3/4/5 200"), &l), -1);
	assert_int_equal(hart_parse_log(S(" [01/x] a b/c 1/2/3/4/-7 200"), &l), -1);
	assert_int_equal(hart_parse_log(S(" [01/x] a b/c 1/2/3/4/5/6 200"), &l), -1);
	assert_int_equal(hart_parse_log(S(""), &l), -1);
	/* found by fuzz_haproxy_log: HAProxy writes no leading zero */
	assert_int_equal(hart_parse_log(S(" [01/x] a b/c 1/2/3/4/05 200"), &l), -1);
	assert_int_equal(hart_parse_log(S(" [01/x] a b/c 1/2/3/4/0 200"), &l), 0);
	assert_int_equal(hart_parse_log(S(" [01/x] a b/c 1/2/3/4/-0 200"), &l), -1);
}

static void test_addr(void **state)
{
	char err[256];
	assert_int_equal(hart_addr_check("unix:/run/haproxy/admin.sock", err, sizeof err), 0);
	assert_int_equal(hart_addr_check("127.0.0.1:9999", err, sizeof err), 0);
	assert_int_equal(hart_addr_check("[::1]:9999", err, sizeof err), 0);
	assert_int_equal(hart_addr_check("localhost:9999", err, sizeof err), 0);
	assert_int_equal(hart_addr_check("unix:run.sock", err, sizeof err), -1);
	assert_int_equal(hart_addr_check("haproxy:9999", err, sizeof err), -1);
	assert_int_equal(hart_addr_check("127.0.0.1", err, sizeof err), -1);
	assert_string_equal(err, "runtime API '127.0.0.1': must be unix:/path/to/socket or an IP "
	                    "address and port such as 127.0.0.1:9999");
}

/* ---- the client, against a unix socket of the test's ---- */

typedef struct server {
	uv_pipe_t listener;
	const char *reply;     /* NULL: never answer */
	char got[256];
	size_t got_len;
} server;

typedef struct result {
	int calls, status;
	char answer[256];
	char err[512];
} result;

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	static char mem[256];
	*b = uv_buf_init(mem, sizeof mem);
}

static void srv_closed(uv_handle_t *h)
{
	free(h);
}

static void listener_closed(uv_handle_t *h)
{
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	server *s = st->data;
	if (n < 0) {
		uv_close((uv_handle_t *)st, srv_closed);
		return;
	}
	memcpy(s->got + s->got_len, b->base, (size_t)n);
	s->got_len += (size_t)n;
	if (s->reply && memchr(s->got, '\n', s->got_len)) {
		uv_buf_t r = uv_buf_init((char *)s->reply, (unsigned)strlen(s->reply));
		uv_try_write(st, &r, 1);
		uv_close((uv_handle_t *)st, srv_closed);
	}
}

static void srv_accept(uv_stream_t *l, int status)
{
	server *s = l->data;
	uv_pipe_t *c = malloc(sizeof *c);
	uv_pipe_init(l->loop, c, 0);
	c->data = s;
	uv_accept(l, (uv_stream_t *)c);
	uv_read_start((uv_stream_t *)c, srv_alloc, srv_read);
}

static void done(void *arg, int status, const char *answer, size_t len, const char *err)
{
	result *r = arg;
	r->calls++;
	r->status = status;
	snprintf(r->answer, sizeof r->answer, "%.*s", (int)len, answer);
	snprintf(r->err, sizeof r->err, "%s", err ? err : "");
}

static void run_until(uv_loop_t *loop, result *r)
{
	for (int i = 0; i < 20000 && r->calls == 0; i++)
		uv_run(loop, UV_RUN_ONCE);
}

static void test_client(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char dir[] = "/tmp/canaryd-test-hart-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], addr[140];
	snprintf(path, sizeof path, "%s/admin.sock", dir);
	snprintf(addr, sizeof addr, "unix:%s", path);
	server s = { .reply = "New server registered.\n\n" };
	uv_pipe_init(&loop, &s.listener, 0);
	s.listener.data = &s;
	assert_int_equal(uv_pipe_bind(&s.listener, path), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&s.listener, 8, srv_accept), 0);

	/* the commands in one line, the answer until close */
	result r = { 0 };
	hart_send(&loop, addr, "add server be/x 127.0.0.1:1 weight 0; enable server be/x", 2000,
	          done, &r);
	assert_int_equal(r.calls, 0);       /* never from inside hart_send */
	run_until(&loop, &r);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.answer, "New server registered.\n\n");
	assert_memory_equal(s.got, "add server be/x 127.0.0.1:1 weight 0; enable server be/x\n",
	                    s.got_len);

	/* no answer: the time bound */
	s.reply = NULL;
	s.got_len = 0;
	memset(&r, 0, sizeof r);
	hart_send(&loop, addr, "show info", 200, done, &r);
	run_until(&loop, &r);
	assert_int_equal(r.status, UV_ETIMEDOUT);
	assert_non_null(strstr(r.err, "no complete answer in time"));

	/* cancelled: never called back */
	memset(&r, 0, sizeof r);
	hart_req *q = hart_send(&loop, addr, "show info", 200, done, &r);
	hart_cancel(q);
	for (int i = 0; i < 50; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(r.calls, 0);

	/* nobody there; an invalid address */
	memset(&r, 0, sizeof r);
	char none[160];
	snprintf(none, sizeof none, "unix:%s/none.sock", dir);
	hart_send(&loop, none, "show info", 2000, done, &r);
	run_until(&loop, &r);
	assert_int_equal(r.status, UV_ENOENT);
	char want[300];
	snprintf(want, sizeof want, "cannot connect to haproxy runtime API '%s': no such file or "
	         "directory", none);
	assert_string_equal(r.err, want);
	memset(&r, 0, sizeof r);
	hart_send(&loop, "nowhere", "show info", 2000, done, &r);
	assert_int_equal(r.calls, 0);
	run_until(&loop, &r);
	assert_int_equal(r.status, UV_EINVAL);
	assert_non_null(strstr(r.err, "runtime API 'nowhere': must be"));

	uv_close((uv_handle_t *)&s.listener, listener_closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answer_ok),
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_servers),
		cmocka_unit_test(test_stat),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_client),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

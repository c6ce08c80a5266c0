/* test_haproxy.c - the pure parts of the haproxy router: weights scaled
 * into 0..256 across endpoints, every rise before every fall (never every
 * server at 0 on the way), which servers are canaryd's, and the one write
 * a split makes from what HAProxy has (new servers added, old ones drained,
 * foreign ones untouched). End to end against HAProxy: tests/e2e. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../../src/router/router_haproxy.c"

static void test_weights_table(void **state)
{
	static const struct { int w; size_t ns, nc; const char *want; } t[] = {
		{ 0, 1, 1, "1 | 0" },       { 100, 1, 1, "0 | 1" },    { 10, 1, 1, "9 | 1" },
		{ 50, 1, 1, "1 | 1" },      { 33, 1, 1, "67 | 33" },   { 10, 3, 2, "6 6 6 | 1 1" },
		{ 37, 3, 1, "21 21 21 | 37" }, { 50, 0, 1, "| 1" },   { 50, 1, 0, "1 | " },
		{ 25, 2, 2, "3 3 | 1 1" },
		/* 1 % over 1 stable and 3 canary servers: 297/1/1/1 does not fit */
		{ 1, 1, 3, "198 | 1 1 0" }, { 1, 1, 4, "198 | 1 1 0 0" },
		{ 99, 8, 1, "1 1 0 0 0 0 0 0 | 198" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int ws[8], wc[8];
		hap_weights(t[i].w, t[i].ns, t[i].nc, ws, wc);
		char got[128];
		size_t n = 0;
		for (size_t j = 0; j < t[i].ns; j++)
			n += (size_t)snprintf(got + n, sizeof got - n, "%s%d", j ? " " : "", ws[j]);
		n += (size_t)snprintf(got + n, sizeof got - n, t[i].ns ? " |" : "|");
		for (size_t j = 0; j < t[i].nc; j++)
			n += (size_t)snprintf(got + n, sizeof got - n, " %d", wc[j]);
		if (!t[i].nc)
			snprintf(got + n, sizeof got - n, " ");
		if (strcmp(got, t[i].want) != 0)
			fail_msg("w %d over %zu+%zu: got '%s', want '%s'", t[i].w, t[i].ns, t[i].nc,
			         got, t[i].want);
	}
}

/* Every weight over 1..12 endpoints a side: each in 0..256, the servers
 * of a side within one of each other, and the canary's part of the sum
 * exactly the share. */
static void test_weights_all(void **state)
{
	for (size_t ns = 1; ns <= 12; ns++)
		for (size_t nc = 1; nc <= 12; nc++)
			for (int w = 0; w <= 100; w++) {
				int ws[12], wc[12];
				hap_weights(w, ns, nc, ws, wc);
				long S = 0, C = 0;
				int lo[2] = { 999, 999 }, hi[2] = { -1, -1 };
				for (size_t i = 0; i < ns; i++) {
					assert_true(ws[i] >= 0 && ws[i] <= 256);
					S += ws[i];
					lo[0] = ws[i] < lo[0] ? ws[i] : lo[0];
					hi[0] = ws[i] > hi[0] ? ws[i] : hi[0];
				}
				for (size_t i = 0; i < nc; i++) {
					assert_true(wc[i] >= 0 && wc[i] <= 256);
					C += wc[i];
					lo[1] = wc[i] < lo[1] ? wc[i] : lo[1];
					hi[1] = wc[i] > hi[1] ? wc[i] : hi[1];
				}
				assert_true(hi[0] - lo[0] <= 1 && hi[1] - lo[1] <= 1);
				assert_true(S + C > 0);
				if (C * 100 != w * (S + C))
					fail_msg("w %d over %zu+%zu: %ld/%ld is not exact", w, ns, nc, S, C);
			}
}

/* Runs the "set weight" commands of <cmds> one by one over <w> (indexed by
 * the server number after "be/s"), checking that the sum never reaches 0. */
static void replay(const char *cmds, int *w, size_t n)
{
	const char *p = cmds;
	int sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += w[i];
	assert_true(sum > 0);
	while ((p = strstr(p, "set weight be/s")) != NULL) {
		p += strlen("set weight be/s");
		char *e;
		long k = strtol(p, &e, 10);
		long v = strtol(e, &e, 10);
		assert_true(k >= 0 && (size_t)k < n);
		sum += (int)v - w[k];
		w[k] = (int)v;
		assert_true(sum > 0);
		p = e;
	}
}

static void test_rises_before_falls(void **state)
{
	char names[3][HART_NAME_LEN] = { "s0", "s1", "s2" };
	/* 10 % -> 50 %: the canary rises first (lowering first gave 64.9 %) */
	buf b = BUF_INIT;
	int cur[2] = { 9, 1 }, next[2] = { 1, 1 };
	hap_order(&b, "be", names, cur, next, 2);
	assert_string_equal(b.p, "set weight be/s0 1");
	buf_reset(&b);
	int cur2[2] = { 9, 1 }, next2[2] = { 1, 9 };
	hap_order(&b, "be", names, cur2, next2, 2);
	assert_string_equal(b.p, "set weight be/s1 9; set weight be/s0 1");
	/* 100 % canary -> 100 % stable and back: never both at 0 */
	buf_reset(&b);
	int cur3[2] = { 0, 1 }, next3[2] = { 1, 0 }, w3[2] = { 0, 1 };
	hap_order(&b, "be", names, cur3, next3, 2);
	replay(b.p, w3, 2);
	assert_int_equal(w3[0], 1);
	assert_int_equal(w3[1], 0);
	/* every pair of splits over three servers */
	for (int a = 0; a <= 100; a += 5)
		for (int z = 0; z <= 100; z += 5) {
			int c[3], n[3], w[3];
			hap_weights(a, 2, 1, c, c + 2);
			hap_weights(z, 2, 1, n, n + 2);
			memcpy(w, c, sizeof w);
			buf_reset(&b);
			hap_order(&b, "be", names, c, n, 3);
			replay(b.p ? b.p : "", w, 3);
			assert_memory_equal(w, n, sizeof w);
		}
	buf_release(&b);
}

static void test_owned(void **state)
{
	assert_int_equal(owned_target("cd-web-", "cd-web-s0"), TARGET_STABLE);
	assert_int_equal(owned_target("cd-web-", "cd-web-c12"), TARGET_CANARY);
	assert_int_equal(owned_target("cd-web-", "cd-web-x1"), -1);
	assert_int_equal(owned_target("cd-web-", "cd-web-s"), -1);
	assert_int_equal(owned_target("cd-web-", "cd-web-s1a"), -1);
	assert_int_equal(owned_target("cd-web-", "cd-webx-s0"), -1);
	assert_int_equal(owned_target("cd-web-", "own"), -1);
	/* canary "web-s0"'s servers are not canary "web"'s, nor the reverse */
	assert_int_equal(owned_target("cd-web-", "cd-web-s0-c1"), -1);
	assert_int_equal(owned_target("cd-web-s0-", "cd-web-s0"), -1);
}

static route_member member(const char *ip, int port)
{
	route_member m;
	memset(&m, 0, sizeof m);
	snprintf(m.name, sizeof m.name, "%s:%d", ip, port);
	uv_ip4_addr(ip, port, (struct sockaddr_in *)&m.addr);
	return m;
}

static hart_server live_srv(const char *name, const char *ip, int port, int w, int admin)
{
	hart_server s;
	memset(&s, 0, sizeof s);
	snprintf(s.name, sizeof s.name, "%s", name);
	snprintf(s.addr, sizeof s.addr, "%s", ip);
	s.port = port;
	s.uweight = w;
	s.admin_state = admin;
	s.op_state = admin ? 0 : 2;
	return s;
}

static void hap_clear(hap *h)
{
	for (int t = 0; t < TARGET_COUNT; t++)
		free(h->members[t]);
	for (size_t i = 0; i < h->n_leaving; i++)
		free(h->leaving[i]);
	free(h->leaving);
	free(h->plan);
}

/* What HAProxy has: the user's server, another canary's, canaryd's stable
 * server (kept), an old canary server (drained), one in maintenance that
 * is wanted again (enabled); the split wants 20 % on a new canary. */
static void test_plan(void **state)
{
	hap h;
	memset(&h, 0, sizeof h);
	h.backend = "be";
	snprintf(h.prefix, sizeof h.prefix, "cd-web-");
	h.weight = 20;
	route_member st[2] = { member("127.0.0.1", 9001), member("127.0.0.1", 9004) };
	route_member ca[1] = { member("127.0.0.1", 9003) };
	h.members[TARGET_STABLE] = malloc(sizeof st);
	memcpy(h.members[TARGET_STABLE], st, sizeof st);
	h.n_members[TARGET_STABLE] = 2;
	h.members[TARGET_CANARY] = malloc(sizeof ca);
	memcpy(h.members[TARGET_CANARY], ca, sizeof ca);
	h.n_members[TARGET_CANARY] = 1;
	hart_server live[] = {
		live_srv("own", "127.0.0.1", 9001, 0, 0),
		live_srv("cd-other-s0", "127.0.0.1", 9001, 5, 0),
		live_srv("cd-web-s0", "127.0.0.1", 9001, 1, 0),
		live_srv("cd-web-c4", "127.0.0.1", 9002, 1, 0),
		live_srv("cd-web-s7", "127.0.0.1", 9004, 0, HART_ADMIN_FMAINT),
	};
	buf b = BUF_INIT;
	plan_write(&h, live, 5, &b);
	/* 20 % over 2 stable + 1 canary: 8/8/4 ... reduced: 80*1 : 20*2 = 2:1 */
	assert_string_equal(b.p,
		"set server be/cd-web-s7 state ready; "
		"add server be/cd-web-c8 127.0.0.1:9003 weight 0; enable server be/cd-web-c8; "
		"set weight be/cd-web-s0 2; set weight be/cd-web-s7 2; set weight be/cd-web-c8 1; "
		"set weight be/cd-web-c4 0; set server be/cd-web-c4 state maint");
	assert_int_equal(h.n_plan, 3);
	assert_string_equal(h.plan[2].name, "cd-web-c8");
	assert_int_equal(h.n_leaving, 1);
	assert_string_equal(h.leaving[0], "cd-web-c4");
	assert_true(h.canary_up);
	/* once the write is done: nothing more to say */
	hart_server after[] = {
		live_srv("own", "127.0.0.1", 9001, 0, 0),
		live_srv("cd-other-s0", "127.0.0.1", 9001, 5, 0),
		live_srv("cd-web-s0", "127.0.0.1", 9001, 2, 0),
		live_srv("cd-web-c4", "127.0.0.1", 9002, 0, HART_ADMIN_FMAINT),
		live_srv("cd-web-s7", "127.0.0.1", 9004, 2, 0),
		live_srv("cd-web-c8", "127.0.0.1", 9003, 1, 0),
	};
	buf_reset(&b);
	plan_write(&h, after, 6, &b);
	assert_true(b.len == 0);
	assert_int_equal(h.n_leaving, 1);
	/* the old canary endpoint wanted again before its deletion: kept */
	h.members[TARGET_CANARY][0] = member("127.0.0.1", 9002);
	buf_reset(&b);
	plan_write(&h, after, 6, &b);
	assert_string_equal(b.p, "set server be/cd-web-c4 state ready; set weight be/cd-web-c4 1; "
	                    "set weight be/cd-web-c8 0; set server be/cd-web-c8 state maint");
	assert_int_equal(h.n_leaving, 1);
	assert_string_equal(h.leaving[0], "cd-web-c8");
	/* HAProxy restarted: none of canaryd's servers; all added again */
	buf_reset(&b);
	plan_write(&h, live, 2, &b);
	assert_non_null(strstr(b.p, "add server be/cd-web-s9 127.0.0.1:9001 weight 0"));
	assert_null(strstr(b.p, "be/own"));
	assert_null(strstr(b.p, "cd-other"));
	buf_release(&b);
	hap_clear(&h);
}

static void test_check(void **state)
{
	cfg_canary cc;
	memset(&cc, 0, sizeof cc);
	char err[512];
	cc.name = "web";
	assert_int_equal(h_check(&cc, err, sizeof err), -1);
	assert_non_null(strstr(err, "needs spec.haproxy.runtimeAPI"));
	cc.haproxy_api = "unix:/run/haproxy.sock";
	cc.haproxy_backend = "be";
	assert_int_equal(h_check(&cc, err, sizeof err), 0);
	cc.policy.n_metrics = 1;
	snprintf(cc.policy.metrics[0].name, sizeof cc.policy.metrics[0].name, "p99");
	cc.policy.metrics[0].kind = ENG_M_DURATION;
	assert_int_equal(h_check(&cc, err, sizeof err), -1);
	assert_string_equal(err, "canary 'web': metric 'p99' (request-duration, a p99) needs "
	                    "spec.haproxy.log with router 'haproxy': HAProxy's show stat has only "
	                    "a moving mean of response times");
	cc.haproxy_log = "127.0.0.1:5140";
	assert_int_equal(h_check(&cc, err, sizeof err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weights_table),
		cmocka_unit_test(test_weights_all),
		cmocka_unit_test(test_rises_before_falls),
		cmocka_unit_test(test_owned),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

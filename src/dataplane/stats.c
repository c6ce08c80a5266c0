/* stats.c - see stats.h. The ring is preallocated at stats_new, so a record
 * touches one slot and a few counters and never allocates. A slot carries
 * the second it belongs to (plus one, so that zeroed memory reads as empty
 * and the ring's pages cost nothing until used): a slot left over from an
 * earlier lap of the ring is zeroed when that index is next written, and
 * skipped by queries.
 *
 * Shards: each has one writer (one proxy worker thread) and is read by the
 * main thread, so every counter is read and written with relaxed atomic
 * loads and stores (plain moves on x86, and no data race): a reader may see
 * a record half done, never a torn counter. */
#include "stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOT_EMPTY 0            /* sec1 of a slot never written */
#define MAX_SHARDS 65

#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define INC(x) ST(x, LD(x) + 1)
#define PROM_BOUNDS 11          /* finite le bounds; +Inf is the count */
#define CODE_MIN 100
#define CODE_MAX 599

/* One second of one target. */
typedef struct slot {
	uint64_t sec1;                 /* the second counted here + 1, or SLOT_EMPTY */
	uint32_t by_class[6];          /* [1]=1xx .. [5]=5xx */
	uint32_t hist[STATS_BUCKETS];  /* latency buckets */
} slot;

/* Cumulative counters of one target for /metrics. */
typedef struct cumul {
	uint64_t codes[CODE_MAX - CODE_MIN + 1]; /* by exact status code */
	uint64_t le[PROM_BOUNDS];      /* requests in (bound[i-1], bound[i]] */
	uint64_t count;                /* all requests (the +Inf bucket) */
	uint64_t sum_us;               /* latency sum, microseconds */
} cumul;

struct stats {
	slot ring[TARGET_COUNT][STATS_SLOTS];
	cumul total[TARGET_COUNT];
	uint64_t mirror[STATS_MIRROR_COUNT]; /* copies to the canary, by fate */
	uint64_t copies[2];            /* copies answered (recorded), and 5xx of them */
	stats *shard[MAX_SHARDS];      /* [0] unused: shard 0 is this one */
	int is_shard;
	/* the revision label of each target (main thread only), and the
	 * counts by code, of every shard, when it took that revision */
	char rev[TARGET_COUNT][STATS_REV_LEN];
	uint64_t rev_base[TARGET_COUNT][CODE_MAX - CODE_MIN + 1];
};

/* Prometheus' default buckets, as microseconds and as written. */
static const uint64_t prom_bound_us[PROM_BOUNDS] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000,
};
static const char *const prom_bound_text[PROM_BOUNDS] = {
	"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
	"1", "2.5", "5", "10",
};

stats *stats_new(void)
{
	/* zeroed: every slot empty (calloc of this size maps fresh pages,
	 * which stay unbacked until a second is recorded into them) */
	return xcalloc(1, sizeof(stats));
}

stats *stats_shard(stats *s, int i)
{
	if (i <= 0 || s->is_shard)
		return s;
	if (i >= MAX_SHARDS)
		i = MAX_SHARDS - 1;
	if (!s->shard[i]) {
		s->shard[i] = stats_new();
		s->shard[i]->is_shard = 1;
	}
	return s->shard[i];
}

void stats_free(stats *s)
{
	if (!s)
		return;
	for (int i = 1; i < MAX_SHARDS; i++)
		free(s->shard[i]);
	free(s);
}

static void forget_one(stats *s, int target)
{
	for (int i = 0; i < STATS_SLOTS; i++)
		ST(s->ring[target][i].sec1, (uint64_t)SLOT_EMPTY);
}

void stats_forget(stats *s, int target)
{
	if (target < 0 || target >= TARGET_COUNT)
		return;
	forget_one(s, target);
	for (int i = 1; i < MAX_SHARDS; i++)
		if (s->shard[i])
			forget_one(s->shard[i], target);
}

void stats_record(stats *s, int target, int status, uint64_t latency_us,
                  uint64_t now_sec)
{
	if (target < 0 || target >= TARGET_COUNT || now_sec == UINT64_MAX)
		return;
	if (status < CODE_MIN || status > CODE_MAX)
		status = 502;
	int b = stats_bucket_of(latency_us);

	cumul *c = &s->total[target];
	INC(c->codes[status - CODE_MIN]);
	INC(c->count);
	ST(c->sum_us, LD(c->sum_us) + latency_us);
	for (int i = 0; i < PROM_BOUNDS; i++)
		if (latency_us <= prom_bound_us[i]) {
			INC(c->le[i]);
			break;
		}

	slot *sl = &s->ring[target][now_sec % STATS_SLOTS];
	uint64_t sec1 = LD(sl->sec1);
	if (sec1 != now_sec + 1) {
		/* a slot holding a later second means <now_sec> has already left
		 * the ring: nothing to count it in */
		if (sec1 != SLOT_EMPTY && sec1 > now_sec + 1)
			return;
		/* emptied first, so that a reader never counts the old counts
		 * as the new second's */
		ST(sl->sec1, (uint64_t)SLOT_EMPTY);
		for (int i = 0; i < 6; i++)
			ST(sl->by_class[i], 0u);
		for (int i = 0; i < STATS_BUCKETS; i++)
			ST(sl->hist[i], 0u);
		ST(sl->sec1, now_sec + 1);
	}
	INC(sl->by_class[status / 100]);
	INC(sl->hist[b]);
}

void stats_mirror(stats *s, stats_mirror_result r)
{
	if (r >= 0 && r < STATS_MIRROR_COUNT)
		INC(s->mirror[r]);
}

void stats_copy_answered(stats *s, int status)
{
	INC(s->copies[0]);
	/* as stats_record: a status out of 100..599 is counted as 502 */
	if (status >= 500 || status < 100)
		INC(s->copies[1]);
}

void stats_copy_totals(const stats *s, uint64_t *requests, uint64_t *errors)
{
	*requests = *errors = 0;
	for (int i = 0; i < MAX_SHARDS; i++) {
		const stats *sh = i == 0 ? s : s->shard[i];
		if (!sh)
			continue;
		*requests += LD(sh->copies[0]);
		*errors += LD(sh->copies[1]);
	}
}

void stats_mirror_totals(const stats *s, uint64_t out[STATS_MIRROR_COUNT])
{
	memset(out, 0, STATS_MIRROR_COUNT * sizeof *out);
	for (int i = 0; i < MAX_SHARDS; i++) {
		const stats *sh = i == 0 ? s : s->shard[i];
		for (int r = 0; sh && r < STATS_MIRROR_COUNT; r++)
			out[r] += LD(sh->mirror[r]);
	}
}

const char *stats_mirror_name(stats_mirror_result r)
{
	static const char *const names[STATS_MIRROR_COUNT] = {
		"sent", "limit", "slow", "client",
	};
	return r >= 0 && r < STATS_MIRROR_COUNT ? names[r] : "?";
}

/* Adds one shard's slots to <out>. */
static void query_one(const stats *s, int target, uint64_t from_sec,
                      uint64_t to_sec, stats_summary *out)
{
	for (uint64_t sec = from_sec;; sec++) {
		const slot *sl = &s->ring[target][sec % STATS_SLOTS];
		if (LD(sl->sec1) == sec + 1) {
			for (int c = 1; c <= 5; c++) {
				uint32_t n = LD(sl->by_class[c]);
				out->by_class[c] += n;
				out->total += n;
			}
			for (int b = 0; b < STATS_BUCKETS; b++)
				out->hist[b] += LD(sl->hist[b]);
		}
		if (sec == to_sec) /* not sec <= to_sec: to_sec may be UINT64_MAX */
			break;
	}
}

void stats_query(const stats *s, int target, uint64_t from_sec,
                 uint64_t to_sec, stats_summary *out)
{
	memset(out, 0, sizeof *out);
	if (target < 0 || target >= TARGET_COUNT || from_sec > to_sec)
		return;
	if (to_sec == UINT64_MAX)
		to_sec--;   /* sec + 1 must not wrap */
	if (from_sec > to_sec)
		return;
	if (to_sec - from_sec >= STATS_SLOTS)
		from_sec = to_sec - (STATS_SLOTS - 1);
	query_one(s, target, from_sec, to_sec, out);
	for (int i = 1; i < MAX_SHARDS; i++)
		if (s->shard[i])
			query_one(s->shard[i], target, from_sec, to_sec, out);
}

/* ---- Prometheus text exposition ---- */

/* Appends <s> as a label value: backslash, double quote and newline are
 * escaped, as the text format requires. */
static void put_label(buf *out, const char *s)
{
	const char *run = s;
	for (; *s; s++) {
		const char *esc = NULL;
		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '"')
			esc = "\\\"";
		else if (*s == '\n')
			esc = "\\n";
		if (esc) {
			buf_append(out, run, (size_t)(s - run));
			buf_puts(out, esc);
			run = s + 1;
		}
	}
	buf_append(out, run, (size_t)(s - run));
}

/* Appends `NAME{canary="..",target=".."` without the closing brace. */
static void put_series(buf *out, const char *metric, const char *name, int target)
{
	buf_puts(out, metric);
	buf_puts(out, "{canary=\"");
	put_label(out, name);
	buf_printf(out, "\",target=\"%s\"", stats_target_name(target));
}

void stats_write_prometheus_header(buf *out)
{
	buf_puts(out,
	         "# HELP canaryd_requests_total Requests proxied, by canary, target, revision (the one the target served then) and HTTP status code.\n"
	         "# TYPE canaryd_requests_total counter\n"
	         "# HELP canaryd_request_duration_seconds Time from request received to response sent, by canary and target.\n"
	         "# TYPE canaryd_request_duration_seconds histogram\n"
	         "# HELP canaryd_mirror_requests_total Requests to stable the proxy was to copy to the canary (analysis.mirror), by result: sent, or not sent because of a bound (limit, slow, client).\n"
	         "# TYPE canaryd_mirror_requests_total counter\n");
}

/* The cumulative counters of every shard of <s>, summed into <sum>. */
static void merge_totals(const stats *s, cumul sum[TARGET_COUNT])
{
	memset(sum, 0, TARGET_COUNT * sizeof *sum);
	for (int i = 0; i < MAX_SHARDS; i++) {
		const stats *sh = i == 0 ? s : s->shard[i];
		if (!sh)
			continue;
		for (int t = 0; t < TARGET_COUNT; t++) {
			const cumul *c = &sh->total[t];
			for (int k = 0; k <= CODE_MAX - CODE_MIN; k++)
				sum[t].codes[k] += LD(c->codes[k]);
			for (int k = 0; k < PROM_BOUNDS; k++)
				sum[t].le[k] += LD(c->le[k]);
			sum[t].count += LD(c->count);
			sum[t].sum_us += LD(c->sum_us);
		}
	}
}

void stats_totals(const stats *s, int target, uint64_t *requests, uint64_t *errors)
{
	*requests = *errors = 0;
	if (target < 0 || target >= TARGET_COUNT)
		return;
	for (int i = 0; i < MAX_SHARDS; i++) {
		const stats *sh = i == 0 ? s : s->shard[i];
		if (!sh)
			continue;
		*requests += LD(sh->total[target].count);
		for (int code = 500; code <= CODE_MAX; code++)
			*errors += LD(sh->total[target].codes[code - CODE_MIN]);
	}
}

void stats_set_revision(stats *s, int target, const char *rev)
{
	if (target < 0 || target >= TARGET_COUNT || s->is_shard)
		return;
	if (!rev)
		rev = "";
	if (strncmp(s->rev[target], rev, STATS_REV_LEN - 1) == 0)
		return;
	snprintf(s->rev[target], sizeof s->rev[target], "%s", rev);
	cumul *tot = xmalloc(TARGET_COUNT * sizeof *tot);
	merge_totals(s, tot);
	memcpy(s->rev_base[target], tot[target].codes, sizeof s->rev_base[target]);
	free(tot);
}

void stats_write_prometheus(const stats *s, const char *name, buf *out)
{
	if (!name)
		name = "";
	cumul *tot = xmalloc(TARGET_COUNT * sizeof *tot);
	merge_totals(s, tot);
	for (int t = 0; t < TARGET_COUNT; t++) {
		const cumul *c = &tot[t];
		for (int code = CODE_MIN; code <= CODE_MAX; code++) {
			uint64_t n = c->codes[code - CODE_MIN] - s->rev_base[t][code - CODE_MIN];
			if (n == 0)
				continue;
			put_series(out, "canaryd_requests_total", name, t);
			if (s->rev[t][0]) {
				buf_puts(out, ",revision=\"");
				put_label(out, s->rev[t]);
				buf_puts(out, "\"");
			}
			buf_printf(out, ",code=\"%d\"} %" PRIu64 "\n", code, n);
		}
	}
	for (int t = 0; t < TARGET_COUNT; t++) {
		const cumul *c = &tot[t];
		uint64_t cum = 0;
		for (int i = 0; i < PROM_BOUNDS; i++) {
			cum += c->le[i];
			put_series(out, "canaryd_request_duration_seconds_bucket", name, t);
			buf_printf(out, ",le=\"%s\"} %" PRIu64 "\n", prom_bound_text[i], cum);
		}
		put_series(out, "canaryd_request_duration_seconds_bucket", name, t);
		buf_printf(out, ",le=\"+Inf\"} %" PRIu64 "\n", c->count);
		/* the sum in exact decimal seconds, not a rounded double */
		put_series(out, "canaryd_request_duration_seconds_sum", name, t);
		buf_printf(out, "} %" PRIu64 ".%06" PRIu64 "\n", c->sum_us / 1000000,
		           c->sum_us % 1000000);
		put_series(out, "canaryd_request_duration_seconds_count", name, t);
		buf_printf(out, "} %" PRIu64 "\n", c->count);
	}
	free(tot);
	uint64_t m[STATS_MIRROR_COUNT], any = 0;
	stats_mirror_totals(s, m);
	for (int r = 0; r < STATS_MIRROR_COUNT; r++)
		any |= m[r];
	for (int r = 0; any && r < STATS_MIRROR_COUNT; r++) {
		buf_puts(out, "canaryd_mirror_requests_total{canary=\"");
		put_label(out, name);
		buf_printf(out, "\",result=\"%s\"} %" PRIu64 "\n",
		           stats_mirror_name((stats_mirror_result)r), m[r]);
	}
}

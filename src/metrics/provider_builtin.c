/* provider_builtin.c - the "builtin" provider: request-success-rate,
 * request-duration and error-rate, read from the request stats the
 * canary's router keeps (stats.h), over the window readings.h says, with
 * its values (the simulator reads its own sums with the same code). A read
 * answers before it returns: the stats are in memory. */
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>

#include "util.h"

static int builtin_read(const provider_env *env, const cfg_metric_source *src,
                        const provider_window *w, provider_fn done, void *arg, char *err,
                        size_t errlen)
{
	if (w->kind == ENG_M_CUSTOM) {
		snprintf(err, errlen, "metric has no provider");
		return -1;
	}
	if (!env->st) {
		snprintf(err, errlen, "no request stats to read");
		return -1;
	}
	stats_summary *sum = xmalloc(sizeof *sum);
	stats_query(env->st, w->w.target, w->w.from_sec, w->w.to_sec, sum);
	double value = 0;
	char why[96];
	int ok = rd_value(w->kind, &w->w, sum, &value, why, sizeof why);
	free(sum);
	done(arg, ok, value, ok ? "" : why);
	return 0;
}

const provider_ops provider_builtin = {
	.name = "builtin",
	.read = builtin_read,
};

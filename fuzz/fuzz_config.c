/* fuzz_config.c - libFuzzer target for the configuration loader: any byte
 * string must give either a configuration or errors, never a crash, a leak
 * or unbounded work (aliases, deep nesting: run it with -timeout and
 * -report_slow_units, fuzz/run.sh does). Dictionary: fuzz/dict/config.dict.
 * Every message must be one short line that starts with "fuzz.yaml:LINE:COL: ",
 * and there are at most CFG_MAX_ERRORS of them, plus the ones that say why
 * reading stopped and how many were left out. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* "fuzz.yaml:LINE:COL: " with LINE and COL positive decimals. */
static int positioned(const char *m)
{
	if (strncmp(m, "fuzz.yaml:", 10) != 0)
		return 0;
	m += 10;
	for (int field = 0; field < 2; field++) {
		char *end;
		unsigned long v = strtoul(m, &end, 10);
		if (end == m || v == 0 || *end != ':')
			return 0;
		m = end + 1;
	}
	return *m == ' ';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cfg *c = NULL;
	cfg_errors errs = { 0 };
	int rc = cfg_load_string("fuzz.yaml", (const char *)data, size, &c, &errs);
	/* the contract: success has a cfg and no new errors, failure the reverse */
	if ((rc == 0) != (c != NULL) || (rc == 0) != (errs.n == 0))
		__builtin_trap();
	if (c) {
		for (size_t i = 0; i < c->n_canaries; i++)
			if (cfg_find(c, c->canaries[i].name) == NULL)
				__builtin_trap();
	}
	if (errs.n > CFG_MAX_ERRORS + 3)
		__builtin_trap();
	for (size_t i = 0; i < errs.n; i++) {
		const char *m = errs.msg[i];
		if (!positioned(m) || strlen(m) > 2048)
			__builtin_trap();
		for (const unsigned char *p = (const unsigned char *)m; *p; p++)
			if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
				__builtin_trap();
	}
	cfg_free(c);
	cfg_errors_release(&errs);
	return 0;
}

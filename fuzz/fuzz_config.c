/* fuzz_config.c - libFuzzer target for the configuration loader: any byte
 * string must give either a configuration or errors, never a crash, a leak
 * or unbounded work (aliases, deep nesting). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

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
	for (size_t i = 0; i < errs.n; i++)
		if (strncmp(errs.msg[i], "fuzz.yaml:", 10) != 0)
			__builtin_trap();
	cfg_free(c);
	cfg_errors_release(&errs);
	return 0;
}

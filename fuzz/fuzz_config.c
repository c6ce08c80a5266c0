/* fuzz_config.c - libFuzzer target for the configuration loader: any byte
 * string must give either a configuration or errors, never a crash, a leak
 * or unbounded work (aliases, deep nesting: run it with -timeout and
 * -report_slow_units, fuzz/run.sh does). Dictionary: fuzz/dict/config.dict.
 * Every message must be one short line that starts with "fuzz.yaml:LINE:COL: ",
 * and there are at most CFG_MAX_ERRORS of them, plus the ones that say why
 * reading stopped and how many were left out.
 *
 * An input with the line "#--file--" is also read as several files (up to
 * FILES, the parts between those lines) of one directory by
 * cfg_load_paths, as canaryd -c DIR reads them: references and duplicates
 * across files; each message then starts with "DIR/N.yaml:LINE:COL: ". */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define FILES 4
#define MARK "\n#--file--\n"

/* "NAME:LINE:COL: " with LINE and COL positive decimals; NAME is
 * fuzz.yaml, or with <dir> one of its files "DIR/N.yaml". */
static int positioned(const char *m, const char *dir)
{
	if (dir) {
		size_t n = strlen(dir);
		if (strncmp(m, dir, n) != 0 || m[n] != '/' || m[n + 1] < '0' ||
		    m[n + 1] >= '0' + FILES || strncmp(m + n + 2, ".yaml:", 6) != 0)
			return 0;
		m += n + 8;
	} else if (strncmp(m, "fuzz.yaml:", 10) != 0) {
		return 0;
	} else {
		m += 10;
	}
	for (int field = 0; field < 2; field++) {
		char *end;
		unsigned long v = strtoul(m, &end, 10);
		if (end == m || v == 0 || *end != ':')
			return 0;
		m = end + 1;
	}
	return *m == ' ';
}

/* Checks the result of a load: <dir> NULL for cfg_load_string. */
static void check(int rc, cfg *c, cfg_errors *errs, const char *dir)
{
	/* the contract: success has a cfg and no new errors, failure the reverse */
	if ((rc == 0) != (c != NULL) || (rc == 0) != (errs->n == 0))
		__builtin_trap();
	if (c) {
		for (size_t i = 0; i < c->n_canaries; i++)
			if (cfg_find(c, c->canaries[i].name) == NULL)
				__builtin_trap();
	}
	if (errs->n > CFG_MAX_ERRORS + 3)
		__builtin_trap();
	for (size_t i = 0; i < errs->n; i++) {
		const char *m = errs->msg[i];
		if (!positioned(m, dir) || strlen(m) > 2048)
			__builtin_trap();
		for (const unsigned char *p = (const unsigned char *)m; *p; p++)
			if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
				__builtin_trap();
	}
	cfg_free(c);
	cfg_errors_release(errs);
}

static char dir[64];

/* At exit: the scratch directory and its files go. */
static void remove_dir(void)
{
	for (int i = 0; i < FILES; i++) {
		char name[96];
		snprintf(name, sizeof name, "%s/%d.yaml", dir, i);
		unlink(name);
	}
	rmdir(dir);
}

/* Writes the parts of <data> between MARK lines as DIR/0.yaml ... and
 * loads the directory. */
static void load_files(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/tmp/fuzz-config-XXXXXX");
		if (!mkdtemp(dir))
			__builtin_trap();
		atexit(remove_dir);
	}
	const char *p = (const char *)data, *end = p + size;
	for (int i = 0; i < FILES; i++) {
		char name[96];
		snprintf(name, sizeof name, "%s/%d.yaml", dir, i);
		unlink(name);
		if (!p)
			continue;
		const char *m = memmem(p, (size_t)(end - p), MARK, strlen(MARK));
		const char *stop = m && i < FILES - 1 ? m : end;
		FILE *f = fopen(name, "wb");
		if (!f)
			__builtin_trap();
		fwrite(p, 1, (size_t)(stop - p), f);
		fclose(f);
		p = stop == end ? NULL : stop + strlen(MARK);
	}
	cfg *c = NULL;
	cfg_errors errs = { 0 };
	const char *paths[] = { dir };
	int rc = cfg_load_paths(paths, 1, &c, &errs);
	check(rc, c, &errs, dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cfg *c = NULL;
	cfg_errors errs = { 0 };
	int rc = cfg_load_string("fuzz.yaml", (const char *)data, size, &c, &errs);
	check(rc, c, &errs, NULL);
	if (memmem(data, size, MARK, strlen(MARK)))
		load_files(data, size);
	return 0;
}

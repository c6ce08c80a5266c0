/* oneline.h - the check every fuzz target makes of a message the code
 * under test wrote (a reason, an error): one line of printable ASCII,
 * terminated within its buffer. */
#ifndef CANARYD_FUZZ_ONELINE_H
#define CANARYD_FUZZ_ONELINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* abort() unless <s> is NUL-terminated within <cap> bytes (SIZE_MAX: no
 * bound), holds only bytes 0x20..0x7e, and, when <nonempty>, says
 * something (a buffer of one byte can hold only the empty string). */
static inline void fuzz_check_line(const char *s, size_t cap, bool nonempty)
{
	size_t n = strnlen(s, cap);
	if (n == cap || (nonempty && cap > 1 && n == 0))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			abort();
}

#endif

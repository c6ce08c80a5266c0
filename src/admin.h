/* admin.h - the admin API and dashboard: JSON over HTTP/1.1 on the same
 * event loop as the proxy (../shared/SPEC.md "Admin API"). */
#ifndef CANARYD_ADMIN_H
#define CANARYD_ADMIN_H

#include <uv.h>

#include "controller.h"
#include "store.h"

typedef struct admin admin;

/* Loads a token file: one token a line, "NAME TOKEN" or just "TOKEN" (named
 * "token"); blank lines and lines starting with '#' are skipped. When a
 * token file is given, every mutating call needs "Authorization: Bearer
 * TOKEN" and the token's name is the actor in the audit. Returns 0, or -1
 * with <err> filled. */
int admin_start(uv_loop_t *loop, const char *addr, ctl *c, store *db,
                const char *token_file, admin **out, char *err, size_t errlen);

/* /readyz answers 503 once not ready (draining). */
void admin_set_ready(admin *a, int ready);

/* Closes the listener and every connection; frees <a> once closed. */
void admin_close(admin *a);

#endif

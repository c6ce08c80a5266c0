/* config.c - see config.h: the entry points of a load, which read the
 * file, compose its documents one after the other (cfg_yaml.c), give each
 * to its reader (cfg_canary.c, cfg_metric.c), resolve the templateRefs
 * at the end and sort the messages. How a document is read is in those
 * files; the types they share in config-t.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "cfgload.h"
#include "util.h"


int cfg_load_string(const char *name, const char *text, size_t len, cfg **out,
                    cfg_errors *errs)
{
	*out = NULL;
	ctx x = { .name = name, .errs = errs };
	size_t errs0 = errs->n;
	if (len > CFG_MAX_BYTES) {
		size_t line, col;
		cfg_offset_pos(text, len, CFG_MAX_BYTES, &line, &col);
		cfg_err_stop(&x, line + 1, col + 1, "file too large: more than %u MiB (a configuration "
		         "is a few KB)", CFG_MAX_BYTES >> 20);
		cfg_errs_sort(&x);
		return -1;
	}
	cfg *c = xcalloc(1, sizeof *c);
	c->path = xstrdup(name);

	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		cfg_err_at(&x, NULL, "cannot parse: out of memory");
		cfg_errs_sort(&x);
		cfg_free(c);
		return -1;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	size_t docs = 0;
	bool complete = false; /* read to the end, without a syntax error or a bound */
	for (;;) {
		yaml_document_t ydoc;
		int rc = cfg_compose(&x, &parser, &ydoc, text, len);
		if (rc <= 0) {
			complete = rc == 0;
			break;
		}
		x.doc = &ydoc;
		yaml_node_t *root = yaml_document_get_root_node(&ydoc);
		if (root && !cfg_is_null(root) && cfg_load_document(&x, &ydoc, root, c))
			docs++; /* empty documents and MetricTemplates do not count */
		x.doc = NULL;
		yaml_document_delete(&ydoc);
		if (x.too_big)
			break; /* crossed in cfg_to_json: reported */
	}
	yaml_parser_delete(&parser);
	cfg_resolve_templates(&x, c, complete);
	if (!docs && complete)
		cfg_err_at(&x, NULL, "no Canary documents (a configuration has at least one document "
		       "with kind: Canary)");
	if (x.dropped) {
		buf b = BUF_INIT;
		buf_printf(&b, "%s:%zu:%zu: too many errors: %zu more not shown (fix these "
		           "first)", name, x.drop_line, x.drop_col, x.dropped);
		cfg_errs_push(&x, x.drop_line, x.drop_col, cfg_escape_controls(b.p));
	}
	cfg_errs_sort(&x);
	if (errs->n > errs0) {
		cfg_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

/* Reads at most CFG_MAX_BYTES + 1 bytes of <path> into <b> (enough for
 * cfg_load_string to see a file too large). Returns 0, or -1 with <why>
 * filled. Only a regular file is read: a FIFO would block, a device like
 * /dev/zero never ends, and the daemon's reload runs this on a worker thread
 * that SIGTERM waits for. O_NONBLOCK keeps open from waiting for a FIFO's
 * writer; strerror_r, not strerror, because of that thread. */
static int read_file(const char *path, buf *b, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		close(fd);
		return -1;
	}
	char chunk[16384];
	while (b->len <= CFG_MAX_BYTES) {
		size_t want = CFG_MAX_BYTES + 1 - b->len;
		ssize_t n = read(fd, chunk, want < sizeof chunk ? want : sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		buf_append(b, chunk, (size_t)n);
	}
	close(fd);
	return 0;
fail:;
	int e = errno;
	char tmp[128];
	snprintf(why, whylen, "%s", strerror_r(e, tmp, sizeof tmp));
	if (fd >= 0)
		close(fd);
	return -1;
}

int cfg_load(const char *path, cfg **out, cfg_errors *errs)
{
	*out = NULL;
	buf b = BUF_INIT;
	char why[160];
	if (read_file(path, &b, why, sizeof why) < 0) {
		ctx x = { .name = path, .errs = errs };
		cfg_err_at(&x, NULL, "cannot read: %s", why);
		cfg_errs_sort(&x);
		buf_release(&b);
		return -1;
	}
	int rc = cfg_load_string(path, b.p ? b.p : "", b.len, out, errs);
	buf_release(&b);
	return rc;
}

void cfg_free(cfg *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_canaries; i++)
		cfg_canary_release(&c->canaries[i]);
	free(c->canaries);
	free(c->path);
	free(c);
}

void cfg_errors_release(cfg_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msg[i]);
	free(e->msg);
	e->msg = NULL;
	e->n = e->cap = 0;
}

const cfg_canary *cfg_find(const cfg *c, const char *name)
{
	if (!c || !name)
		return NULL;
	for (size_t i = 0; i < c->n_canaries; i++)
		if (c->canaries[i].name && !strcmp(c->canaries[i].name, name))
			return &c->canaries[i];
	return NULL;
}

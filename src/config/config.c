/* config.c - see config.h: the entry points of a load, which find the
 * files (those of a directory), read each, compose its documents one after
 * the other (cfg_yaml.c), give each to its reader (cfg_canary.c,
 * cfg_metric.c), resolve the templateRefs and providerRefs once every file
 * is read, and sort the messages. How a document is read is in those
 * files; the types they share in config-t.h. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
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


/* Reads the documents of <text> (file x->name) into <c>, counting the
 * Canaries in *docs. Returns whether it was read to its end (no syntax
 * error, no bound crossed). The CFG_MAX_ bounds are per file: the counts
 * start again here. */
static bool load_text(ctx *x, const char *text, size_t len, cfg *c, size_t *docs)
{
	x->documents = x->composed = x->values = x->text = 0;
	x->too_big = false;
	if (len > CFG_MAX_BYTES) {
		size_t line, col;
		cfg_offset_pos(text, len, CFG_MAX_BYTES, &line, &col);
		cfg_err_stop(x, line + 1, col + 1, "file too large: more than %u MiB (a configuration "
		         "is a few KB)", CFG_MAX_BYTES >> 20);
		return false;
	}
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		cfg_err_at(x, NULL, "cannot parse: out of memory");
		return false;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	bool complete = false;
	for (;;) {
		yaml_document_t ydoc;
		int rc = cfg_compose(x, &parser, &ydoc, text, len);
		if (rc <= 0) {
			complete = rc == 0;
			break;
		}
		x->doc = &ydoc;
		yaml_node_t *root = yaml_document_get_root_node(&ydoc);
		if (root && !cfg_is_null(root) && cfg_load_document(x, &ydoc, root, c))
			++*docs; /* empty documents and MetricTemplates do not count */
		x->doc = NULL;
		yaml_document_delete(&ydoc);
		if (x->too_big)
			break; /* crossed in cfg_to_json: reported */
	}
	yaml_parser_delete(&parser);
	return complete;
}

/* Ends a load begun with <x> (its messages from errs->n == <errs0> on):
 * resolves the references, sorts the messages, and gives <c> in *out, or
 * frees it when there were errors. */
static int load_end(ctx *x, cfg *c, size_t docs, bool complete, size_t errs0, cfg **out)
{
	cfg_resolve_templates(x, c, complete);
	if (!docs && complete) {
		x->file = 0;
		x->name = c->n_files ? c->files[0] : c->path;
		if (c->n_files > 1)
			cfg_err_at(x, NULL, "no Canary documents in the %zu files (a configuration has "
			       "at least one document with kind: Canary)", c->n_files);
		else
			cfg_err_at(x, NULL, "no Canary documents (a configuration has at least one "
			       "document with kind: Canary)");
	}
	if (x->dropped) {
		buf b = BUF_INIT;
		buf_printf(&b, "%s:%zu:%zu: too many errors: %zu more not shown (fix these "
		           "first)", x->drop_name, x->drop_line, x->drop_col, x->dropped);
		x->file = x->drop_file;
		cfg_errs_push(x, x->drop_line, x->drop_col, cfg_escape_controls(b.p));
	}
	cfg_errs_sort(x);
	if (x->errs->n > errs0) {
		cfg_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

int cfg_load_string(const char *name, const char *text, size_t len, cfg **out,
                    cfg_errors *errs)
{
	*out = NULL;
	ctx x = { .name = name, .errs = errs };
	size_t errs0 = errs->n, docs = 0;
	cfg *c = xcalloc(1, sizeof *c);
	c->path = xstrdup(name);
	c->files = xcalloc(1, sizeof *c->files);
	c->files[c->n_files++] = xstrdup(name);
	x.name = c->files[0];
	bool complete = load_text(&x, text, len, c, &docs);
	return load_end(&x, c, docs, complete, errs0, out);
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

/* Whether directory entry <name> is a configuration file: *.yaml or
 * *.yml, not hidden (editors' and kubectl's temporary files are). */
static bool yaml_name(const char *name)
{
	size_t n = strlen(name);
	return name[0] != '.' && ((n > 5 && !strcmp(name + n - 5, ".yaml")) ||
	                          (n > 4 && !strcmp(name + n - 4, ".yml")));
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds <path> to c->files unless a file of the list is the same file
 * (its real path, in <seen>), or reports that there are too many. */
static void add_file(ctx *x, cfg *c, json_t *seen, const char *path, size_t *cap)
{
	char real[PATH_MAX];
	const char *key = realpath(path, real) ? real : path;
	if (json_object_get(seen, key))
		return;
	if (c->n_files == CFG_MAX_FILES) {
		if (!json_object_get(seen, "")) { /* said once */
			x->name = path;
			cfg_err_at(x, NULL, "more than %d configuration files (the files named with -c "
			       "and those of the directories named)", CFG_MAX_FILES);
			json_object_set_new(seen, "", json_true());
		}
		return;
	}
	json_object_set_new(seen, key, json_true());
	cfg_grow(&c->files, c->n_files, cap, sizeof *c->files);
	c->files[c->n_files++] = xstrdup(path);
}

/* Adds the configuration files of directory <dir>, sorted by name; a
 * directory without any is an error (a mistyped path would otherwise
 * load nothing from it, silently). */
static void add_dir(ctx *x, cfg *c, json_t *seen, const char *dir, size_t *cap)
{
	x->name = dir;
	DIR *d = opendir(dir);
	if (!d) {
		char tmp[128];
		cfg_err_at(x, NULL, "cannot read: %s", strerror_r(errno, tmp, sizeof tmp));
		return;
	}
	char **names = NULL;
	size_t n = 0, ncap = 0;
	struct dirent *de;
	/* bounded: a directory with more entries than any configuration has
	 * files is not one */
	while ((de = readdir(d)) != NULL && n <= CFG_MAX_FILES) {
		if (!yaml_name(de->d_name))
			continue;
		buf p = BUF_INIT;
		size_t dl = strlen(dir);
		buf_printf(&p, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", de->d_name);
		struct stat st;
		if (stat(p.p, &st) == 0 && S_ISDIR(st.st_mode)) {
			buf_release(&p); /* not recursive, as kubectl apply -f DIR */
			continue;
		}
		cfg_grow(&names, n, &ncap, sizeof *names);
		names[n++] = p.p;
	}
	closedir(d);
	if (!n)
		cfg_err_at(x, NULL, "no configuration files in this directory (it reads the *.yaml "
		       "and *.yml files in it, not those of its subdirectories)");
	if (n) /* qsort wants an array, even of nothing */
		qsort(names, n, sizeof *names, name_cmp);
	for (size_t i = 0; i < n; i++) {
		add_file(x, c, seen, names[i], cap);
		free(names[i]);
	}
	free(names);
}

int cfg_load_paths(const char *const *paths, size_t n, cfg **out, cfg_errors *errs)
{
	*out = NULL;
	ctx x = { .errs = errs };
	size_t errs0 = errs->n, docs = 0, cap = 0;
	cfg *c = xcalloc(1, sizeof *c);
	json_t *seen = json_object();
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode))
			add_dir(&x, c, seen, paths[i], &cap);
		else
			add_file(&x, c, seen, paths[i], &cap); /* or why it cannot be read, below */
	}
	json_decref(seen);
	c->path = xstrdup(c->n_files ? c->files[0] : n ? paths[0] : "");
	bool complete = errs->n == errs0;
	size_t bytes = 0, values = 0, text = 0;
	for (size_t i = 0; i < c->n_files; i++) {
		x.file = i;
		x.name = c->files[i];
		buf b = BUF_INIT;
		char why[160];
		if (read_file(c->files[i], &b, why, sizeof why) < 0) {
			cfg_err_at(&x, NULL, "cannot read: %s", why);
			complete = false;
		} else if ((bytes += b.len) > CFG_MAX_TOTAL_BYTES || values > CFG_MAX_TOTAL_VALUES ||
		           text > CFG_MAX_TOTAL_TEXT) {
			/* every file is bounded, and so is their sum: what is read
			 * stays in memory (each canary's document) */
			if (bytes > CFG_MAX_TOTAL_BYTES)
				cfg_err_stop(&x, 1, 1, "more than %u MiB in all the files: this file and "
				             "those after it are not read", CFG_MAX_TOTAL_BYTES >> 20);
			else
				cfg_err_stop(&x, 1, 1, "more than %d values or %u MiB of keys and values in "
				             "the files before this one: it and those after it are not "
				             "read", CFG_MAX_TOTAL_VALUES, CFG_MAX_TOTAL_TEXT >> 20);
			complete = false;
			buf_release(&b);
			break;
		} else if (!load_text(&x, b.p ? b.p : "", b.len, c, &docs)) {
			complete = false;
		}
		values += x.values;
		text += x.text;
		buf_release(&b);
	}
	return load_end(&x, c, docs, complete, errs0, out);
}

/* Only a regular file: a directory is for cfg_load_paths. */
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
	for (size_t i = 0; i < c->n_files; i++)
		free(c->files[i]);
	free(c->files);
	for (size_t i = 0; i < c->n_notes; i++)
		free(c->notes[i]);
	free(c->notes);
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

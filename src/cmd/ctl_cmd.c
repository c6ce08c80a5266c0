/* ctl_cmd.c - what every canaryctl command file shares (ctl_cmd.h): the
 * usage and help of a command, usage errors, the argument parser with its
 * "did you mean", and the output of JSON. A file of the library: it needs
 * nothing of canaryctl.c, so that every object of src/ links on its own
 * (fuzz/run.sh links them all). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ctl_cmd.h"
#include "ctl_out.h"

/* The options every command takes, before or after its name. */
const char *const global_flags[] = { "--server", "--token-file", "--no-color", "--help", NULL };

/* "usage: canaryctl NAME USAGE", wrapped to 80 columns. */
void append_usage(buf *b, const command *c)
{
	char head[64];
	int n = snprintf(head, sizeof head, "usage: canaryctl %s", c->name);
	buf_puts(b, head);
	if (*c->usage) {
		buf_puts(b, " ");
		out_wrap(b, c->usage, (size_t)n + 1, 8, OUT_HELP_WIDTH);
	} else {
		buf_puts(b, "\n");
	}
}

void print_command_help(FILE *f, const command *c)
{
	buf b = BUF_INIT;
	append_usage(&b, c);
	buf_puts(&b, "\n  ");
	out_wrap(&b, c->help, 2, 2, OUT_HELP_WIDTH);
	fwrite(b.p, 1, b.len, f);
	buf_release(&b);
}

int usage_error(const command *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("canaryctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	if (cmd) {
		buf b = BUF_INIT;
		append_usage(&b, cmd);
		fwrite(b.p, 1, b.len, stderr);
		buf_release(&b);
	} else {
		fputs("run 'canaryctl help' for the commands\n", stderr);
	}
	return EXIT_USAGE;
}

void print_json(const json_t *j)
{
	char err[256];
	if (out_print(stdout, j, OUT_JSON, err, sizeof err) < 0)
		fprintf(stderr, "canaryctl: %s\n", err);
}

int parse_args(const command *cmd, int argc, char **argv, const option *opts,
               const char **pos, int max_pos)
{
	int n = 0;
	bool only_pos = false;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!only_pos && strcmp(a, "--") == 0) {
			only_pos = true;
			continue;
		}
		/* "-5" is a (bad) number, not an option */
		if (!only_pos && a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9')) {
			const option *o = NULL;
			const char *inl = NULL;
			for (const option *p = opts; p && p->name; p++) {
				const char *names[2] = { p->name, p->alias };
				for (int k = 0; k < 2 && !o; k++) {
					size_t l = names[k] ? strlen(names[k]) : 0;
					if (!l || strncmp(a, names[k], l) != 0)
						continue;
					if (a[l] == '\0') {
						o = p;
					} else if (a[l] == '=' && p->val) {
						o = p;
						inl = a + l + 1;
					}
				}
				if (o)
					break;
			}
			if (!o) {
				/* the nearest of its options and the global ones */
				const char *cands[128];
				size_t nc = 0;
				for (const option *p = opts; p && p->name && nc + 3 < 128; p++) {
					cands[nc++] = p->name;
					if (p->alias)
						cands[nc++] = p->alias;
				}
				for (size_t g = 0; global_flags[g] && nc + 1 < 128; g++)
					cands[nc++] = global_flags[g];
				cands[nc] = NULL;
				char word[128];
				snprintf(word, sizeof word, "%.*s", (int)strcspn(a, "="), a);
				const char *near = out_nearest(word, cands);
				if (near)
					usage_error(cmd, "unknown option '%s' for '%s'; did you mean '%s'?", a,
					            cmd->name, near);
				else
					usage_error(cmd, "unknown option '%s' for '%s'", a, cmd->name);
				return -1;
			}
			if (o->flag) {
				*o->flag = true;
			} else if (inl) {
				*o->val = inl;
			} else if (i + 1 < argc) {
				*o->val = argv[++i];
			} else {
				usage_error(cmd, "option '%s' needs a value", a);
				return -1;
			}
			continue;
		}
		if (n >= max_pos) {
			usage_error(cmd, "unexpected argument '%s'", a);
			return -1;
		}
		pos[n++] = a;
	}
	return n;
}

int output_json(const command *cmd, const char *o)
{
	if (!o || strcmp(o, "text") == 0)
		return 0;
	if (strcmp(o, "json") == 0)
		return 1;
	usage_error(cmd, "output format '%s' is not one of json, text", o);
	return -1;
}


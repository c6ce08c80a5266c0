/* ctl_cmd.h - what canaryctl's command files share: the exit codes, the
 * client, the command table's row and the argument parser (canaryctl.c),
 * and the offline commands (ctl_offline.c). Private to src/cmd/. */
#ifndef CANARYD_CTL_CMD_H
#define CANARYD_CTL_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <curl/curl.h>
#include <jansson.h>

#include "util.h"

/* The exit codes of canaryctl (SPEC "Exit codes of canaryctl"). */
enum {
	EXIT_OK = 0,          /* success (wait: Succeeded) */
	EXIT_FAILED = 1,      /* the operation or the rollout failed */
	EXIT_USAGE = 2,       /* bad usage or bad input */
	EXIT_TIMEOUT = 3,     /* wait --timeout passed */
	EXIT_UNREACHABLE = 4, /* canaryd unreachable, or the token refused */
};

/* The connection to the admin API, shared by every command. */
typedef struct client {
	char *server;   /* base URL without a trailing '/', owned */
	char *token;    /* bearer token or NULL, owned */
	CURL *curl;     /* reused so keep-alive spares a connect per poll */
	bool color;     /* colour on stdout (no --no-color, NO_COLOR, a TTY) */
	bool tty;       /* stdout is a terminal: live views redraw in place */
} client;

typedef struct command {
	const char *name;
	const char *usage;   /* arguments after the name */
	const char *brief;   /* one line for `canaryctl help` */
	const char *help;    /* the whole story for `canaryctl help NAME` */
	const char *flags;   /* its options, space-separated (shell completion) */
	int (*run)(client *cl, const struct command *cmd, int argc, char **argv);
} command;

/* One option of a command: a flag (<val> NULL) or an option with a value,
 * given as "--name VALUE" or "--name=VALUE". */
typedef struct option {
	const char *name;     /* "--full", "-o" */
	const char *alias;    /* another spelling or NULL */
	const char **val;     /* where the value goes (options with a value) */
	bool *flag;           /* where true goes (flags) */
} option;

/* Splits <argv> into options (per <opts>, NULL-terminated by name) and at
 * most <max_pos> positional arguments into <pos>. Returns the number of
 * positional arguments, or -1 after reporting a usage error (naming the
 * nearest option when one was mistyped). */
int parse_args(const command *cmd, int argc, char **argv, const option *opts,
               const char **pos, int max_pos);

/* The options every command takes, before or after its name (NULL-ended). */
extern const char *const global_flags[];

/* Appends "usage: canaryctl NAME USAGE" to <b>, wrapped to 80 columns. */
void append_usage(buf *b, const command *c);

/* Prints the usage and the whole help of <c>, wrapped to 80 columns. */
void print_command_help(FILE *f, const command *c);

/* Reports a usage error of <cmd> (NULL: of canaryctl itself) and returns
 * EXIT_USAGE. */
int usage_error(const command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks an "-o" value of the commands that print text or JSON. Returns 1
 * for json, 0 for text, -1 after a usage error. */
int output_json(const command *cmd, const char *o);

/* Prints <j> as indented JSON on stdout. */
void print_json(const json_t *j);

/* Appends the completion script of bash (zsh) for the command table <cmds>
 * (ended by a NULL name) and the global options <globals> (NULL-ended) to
 * <b> (ctl_complete.c). */
void completion_bash(buf *b, const command *cmds, const char *const *globals);
void completion_zsh(buf *b, const command *cmds, const char *const *globals);

/* The offline commands (ctl_offline.c). */
int cmd_simulate(client *cl, const command *cmd, int argc, char **argv);
int cmd_render(client *cl, const command *cmd, int argc, char **argv);
int cmd_query(client *cl, const command *cmd, int argc, char **argv);

#endif

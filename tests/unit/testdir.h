/* testdir.h - scratch directories for the unit tests that need files (a
 * database, a configuration): made with mkdtemp, removed with everything
 * in them. Header-only: included by the tests that use it. */
#ifndef CANARYD_TESTDIR_H
#define CANARYD_TESTDIR_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Removes <path> and everything under it. */
static inline void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char sub[512];
			if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= sizeof sub)
				continue;   /* not made by a test */
			struct stat sb;
			if (lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode))
				remove_tree(sub);
			else
				unlink(sub);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

#endif

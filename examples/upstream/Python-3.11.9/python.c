/*
 * The example tree's "python": it runs setup scripts, which are sh
 * scripts, with PYTHONHOME (the prefix it is installed in) and
 * PYTHON_VERSION in the environment.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
strip_last(char *p)
{
	char *s = strrchr(p, '/');

	if (s != NULL)
		*s = '\0';
}

int
main(int argc, char **argv)
{
	char home[PATH_MAX];
	char **args;
	ssize_t n;
	int i;

	if (argv[0][0] == '/') {
		snprintf(home, sizeof home, "%s", argv[0]);
	} else {
		n = readlink("/proc/self/exe", home, sizeof home - 1);
		if (n < 0) {
			perror("python: /proc/self/exe");
			return 1;
		}
		home[n] = '\0';
	}
	strip_last(home);	/* .../bin */
	strip_last(home);	/* the prefix */
	setenv("PYTHONHOME", home, 1);
	setenv("PYTHON_VERSION", PY_VERSION, 1);
	if (argc < 2 || strcmp(argv[1], "--version") == 0) {
		printf("Python %s (pkgbulk example)\n", PY_FULL_VERSION);
		return 0;
	}
	args = calloc(argc + 1, sizeof *args);
	if (args == NULL)
		return 1;
	args[0] = "sh";
	for (i = 1; i < argc; i++)
		args[i] = argv[i];
	execv("/bin/sh", args);
	perror("python: /bin/sh");
	return 127;
}

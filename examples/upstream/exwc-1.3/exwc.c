/* exwc: count lines, words and bytes of a file. */
#include <ctype.h>
#include <stdio.h>

int
main(int argc, char **argv)
{
	FILE *f = stdin;
	long lines = 0, words = 0, bytes = 0;
	int c, inword = 0;

	if (argc > 1 && (f = fopen(argv[1], "r")) == NULL) {
		perror(argv[1]);
		return 1;
	}
	while ((c = getc(f)) != EOF) {
		bytes++;
		if (c == '\n')
			lines++;
		if (isspace(c))
			inword = 0;
		else if (!inword) {
			inword = 1;
			words++;
		}
	}
	printf("%ld %ld %ld\n", lines, words, bytes);
	return 0;
}

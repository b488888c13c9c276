/* exfmt: print stdin's lines as a JSON array (uses the exjson chain). */
#include <stdio.h>
#include <string.h>
#include <exjson.h>

int
main(void)
{
	char line[1024], out[2100];
	int first = 1, lens[1];

	fputs("[", stdout);
	while (fgets(line, sizeof line, stdin) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		exjson_quote(line, out, sizeof out);
		printf("%s%s", first ? "" : ",", out);
		first = 0;
	}
	lens[0] = 1;
	printf("]\n/* %s, sum %d */\n", exjson_name(), exutil_sum(lens, 1));
	return 0;
}

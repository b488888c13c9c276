#include "exjson.h"

size_t
exjson_quote(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (len < 3)
		return 0;
	buf[n++] = '"';
	for (; *s != '\0' && n + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			buf[n++] = '\\';
		buf[n++] = *s;
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return n;
}

const char *
exjson_name(void)
{
	return exutil_name();
}

/* exjson: JSON string quoting on top of exutil. */
#ifndef EXJSON_H
#define EXJSON_H
#include <stddef.h>
#include <exutil.h>
#define EXJSON_VERSION "0.9.3"
size_t exjson_quote(const char *s, char *buf, size_t len);
const char *exjson_name(void);
#endif

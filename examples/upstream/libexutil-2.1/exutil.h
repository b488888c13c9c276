/* exutil: needs exbase's header and library. */
#ifndef EXUTIL_H
#define EXUTIL_H
#include <exbase.h>
#define EXUTIL_VERSION "2.1"
int exutil_sum(const int *v, int n);
const char *exutil_name(void);
#endif

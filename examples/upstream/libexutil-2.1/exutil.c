#include "exutil.h"
#include "config.h"

int
exutil_sum(const int *v, int n)
{
	int i, s = 0;

	for (i = 0; i < n; i++)
		s = exbase_add(s, v[i]);
	return s;
}

const char *
exutil_name(void)
{
	return "exutil " EXUTIL_VERSION " (built against exbase " EXUTIL_BUILT_WITH_EXBASE ")";
}

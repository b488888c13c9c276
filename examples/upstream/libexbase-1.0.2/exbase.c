#include "exbase.h"

int
exbase_add(int a, int b)
{
	return a + b;
}

const char *
exbase_name(void)
{
	return "exbase " EXBASE_VERSION;
}

/* exparallel: prints the checksums its units were built with. */
#include <stdio.h>

unsigned long long exparallel_u1(void), exparallel_u2(void), exparallel_u3(void);
unsigned long long exparallel_u4(void), exparallel_u5(void), exparallel_u6(void);

int
main(void)
{
	unsigned long long (*units[])(void) = {
		exparallel_u1, exparallel_u2, exparallel_u3,
		exparallel_u4, exparallel_u5, exparallel_u6,
	};
	unsigned i;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		printf("unit %u: %llx\n", i + 1, units[i]());
	return 0;
}

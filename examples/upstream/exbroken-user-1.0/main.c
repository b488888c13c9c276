#include <stdio.h>
#include <broken.h>

int
main(void)
{
	printf("%d\n", broken_answer());
	return 0;
}

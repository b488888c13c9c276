/* This file does not compile, on purpose: the example tree needs one
 * package whose build really fails. */
#include "broken.h"

int
broken_answer(void)
{
	return undeclared_variable * 2
}

/* exbase: the bottom of the example tree's C library chain. */
#ifndef EXBASE_H
#define EXBASE_H
#define EXBASE_VERSION "1.0.2"
int exbase_add(int a, int b);
const char *exbase_name(void);
#endif

/* text.c - see text.h. */
#include "support/text.h"

#include <string.h>

int kt_count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* text.c - see text.h. */
#include "support/text.h"

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

int kt_count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

const char *kt_first_missing(const char *hay, ...)
{
    va_list ap;
    va_start(ap, hay);
    const char *needle;
    while ((needle = va_arg(ap, const char *)) && strstr(hay, needle))
        ;
    va_end(ap);
    return needle;
}

/* list.h - walking the lists that configuration values hold ("region, plan",
 * "1m/5s,1h/1m", "region;region+plan"): items separated by any run of the
 * separator characters, with none before the first or after the last
 * required.  One walker for the dimensions, the grouping sets, the windows
 * and the topics, so they all read a list the same way. */
#ifndef KPI_BASE_LIST_H
#define KPI_BASE_LIST_H

#include <stddef.h>
#include <string.h>

/* The next item at or after *p, whose separators are the characters of seps:
 * returns its start and sets *len (> 0), or returns NULL at the end of the
 * string.  *p is left just past the item. */
static inline const char *kpi_list_next(const char **p, const char *seps, size_t *len)
{
    const char *s = *p + strspn(*p, seps);
    if (!*s)
        return NULL;
    *len = strcspn(s, seps);
    *p = s + *len;
    return s;
}

#endif

/* dims_event.c - events that carry only dimension values (dims_event.h). */
#include "support/dims_event.h"

#include <string.h>

struct kpi_event kt_event_dims(const char *d0, const char *d1, const char *d2)
{
    struct kpi_event e;
    memset(&e, 0, sizeof(e));
    const char *v[3] = {d0, d1, d2};
    for (int i = 0; i < 3; i++)
        if (v[i]) {
            e.dims[i].ptr = v[i];
            e.dims[i].len = (uint32_t)strlen(v[i]);
        }
    return e;
}

/* webassets.h - the dashboard's files (web/), compiled into the binary by
 * cmake/embed.cmake at build time: no CDN, no build step, nothing generated in
 * the repository. */
#ifndef KPI_WEBASSETS_H
#define KPI_WEBASSETS_H

#include <stddef.h>

struct kpi_web_asset {
    const char *path; /* "/index.html" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
};

extern const struct kpi_web_asset kpi_web_assets[];
extern const size_t kpi_web_n_assets;

#endif

/* alert.c - the churn-spike detector (see alert.h for the rules). */
#include "engine/alert.h"

#include <math.h>

#include "engine/err.h"

void kpi_alert_conf_defaults(struct kpi_alert_conf *c)
{
    c->alpha = 0.1;
    c->raise_k = 4.0;
    c->resolve_k = 1.0;
    c->floor_rate = 0.001;
    c->rel_floor = 0.1;
    c->abs_floor = 0.0001;
    c->min_active = 100;
    c->warmup = 10;
}

int kpi_alert_conf_check(const struct kpi_alert_conf *c, char *errstr, size_t errsz)
{
    if (!(c->alpha > 0 && c->alpha <= 1))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "alerts.alpha must be in (0, 1]");
    if (!(c->raise_k > 0))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "alerts.raise_k must be > 0");
    if (!(c->resolve_k < c->raise_k))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "alerts.resolve_k must be below alerts.raise_k (hysteresis)");
    if (!(c->floor_rate >= 0 && c->rel_floor >= 0 && c->abs_floor > 0))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "alerts.floor_rate and rel_floor must be >= 0, abs_floor > 0");
    if (c->warmup < 1)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "alerts.warmup must be >= 1");
    return 0;
}

static void feed(const struct kpi_alert_conf *c, struct kpi_alert_state *s, double rate)
{
    if (s->n == 0) {
        s->mean = rate;
        s->var = 0;
    } else {
        /* Incremental EWMA of mean and variance (West's update). */
        double d = rate - s->mean;
        double incr = c->alpha * d;
        s->mean += incr;
        s->var = (1 - c->alpha) * (s->var + d * incr);
    }
    s->n++;
}

enum kpi_alert_change kpi_alert_observe(const struct kpi_alert_conf *c, struct kpi_alert_state *s,
                                        double rate, uint64_t active, struct kpi_alert_info *info)
{
    double scale = sqrt(s->var);
    if (scale < c->rel_floor * s->mean)
        scale = c->rel_floor * s->mean;
    if (scale < c->abs_floor)
        scale = c->abs_floor;
    info->rate = rate;
    info->baseline = s->mean;
    info->threshold = s->mean + c->raise_k * scale;
    info->deviation = s->n ? (rate - s->mean) / scale : 0;
    info->active = active;

    if (active < c->min_active || !isfinite(rate))
        return KPI_ALERT_NONE;
    if (s->raised) {
        if (info->deviation <= c->resolve_k) {
            s->raised = 0;
            feed(c, s, rate);
            return KPI_ALERT_RESOLVED;
        }
        return KPI_ALERT_NONE;
    }
    if (s->n >= c->warmup && rate >= c->floor_rate && info->deviation >= c->raise_k) {
        s->raised = 1;
        return KPI_ALERT_RAISED;
    }
    feed(c, s, rate);
    return KPI_ALERT_NONE;
}

/* event.c - names of event types (see event.h). */
#include "engine/event.h"

const char *kpi_event_type_name(enum kpi_event_type t)
{
    switch (t) {
    case KPI_EV_USAGE: return "usage";
    case KPI_EV_ACTIVATION: return "activation";
    case KPI_EV_CHURN: return "churn";
    case KPI_EV_NPS: return "nps";
    case KPI_EV_BASE: return "base";
    default: return "unknown";
    }
}

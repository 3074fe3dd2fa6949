/*
 * kpi_schema.h - the one list of the counters kept per bucket and of the KPIs
 * derived from them.
 *
 * Everything that names a counter or a KPI expands these two lists
 * (X-macros, like the flag tables of Redis's server.h), so adding one is a
 * line here, plus the decoder when it needs a new event field:
 *
 *   struct kpi_counters, struct kpi_values    their fields, in list order (kpi.h)
 *   kpi_counters_count                        the counting rules (kpi.h)
 *   kpi_values_compute                        the formulas (kpi.c)
 *   kpi_counter_names, kpi_derived_defs       the names everything else uses (kpi.c)
 *   the stdout sink                           its JSON lines and its table
 *   the generator's truth (gen/truth.c)       the counting rules, applied to what it made
 *   the Redis flush script                    its field list and formulas, generated at
 *                                             build time (tools/kpi_schema_lua.c)
 *   docs/kpis.md, docs/redis-schema.md        checked against the lists by
 *                                             tests/test_kpi_schema.c
 *
 * KPI_COUNTERS(X) calls X(name, when, add, doc) per counter:
 *   name  the field of struct kpi_counters, and the counter's name in Redis
 *         hashes, stream entries and JSON;
 *   when  whether an event counts: a C expression over `e`, a struct
 *         kpi_event or anything with its fields (the generator's struct
 *         kpi_gen_info);
 *   add   what a counted event adds (inputs are bounded at KPI_MAX_QUANTITY,
 *         decode.h; sums saturate, kpi_sat_add);
 *   doc   what it counts.
 * The list order is the struct's, and the order of the counters in every
 * output.  The NPS counters stay together in [survey][class] order: kpi.h
 * also shows them as nps[KPI_SURVEY__COUNT][3].
 *
 * KPI_DERIVED(X) calls X(name, num, den, head, fmt, scale, doc) per KPI:
 *   name = num / den, undefined when den <= 0: reported as absent (has_<name>
 *         = 0 in C, "" in Redis, null in JSON), never as 0 or NaN;
 *   num, den: arithmetic on KPI_C(counter), KPI_ACTIVE (the window's distinct
 *         subscribers), KPI_BASE (the subscriber base at the window's start,
 *         0 when unknown: docs/kpis.md), KPI_SPAN_MS (the window's size, or
 *         a stream entry's bucket width, in ms), decimal numbers, + - * / and
 *         parentheses, nothing else: the same text is compiled as C here and translated to Lua for
 *         Redis, so both compute the same doubles;
 *   head, fmt, scale: the stdout table's column heading, and the printf
 *         format of value x scale;
 *   doc   what it means.
 */
#ifndef KPI_KPI_SCHEMA_H
#define KPI_KPI_SCHEMA_H

/* Counting-rule shorthands (e is the event being counted). */
#define KPI_IS(t)      (e->type == KPI_EV_##t)
#define KPI_NPS_OF(sv) (KPI_IS(NPS) && e->survey == KPI_SURVEY_##sv)
#define KPI_PROMOTER   (e->score >= 9)
#define KPI_PASSIVE    (e->score >= 7 && e->score <= 8)
#define KPI_DETRACTOR  (e->score <= 6)

/* clang-format off */
#define KPI_COUNTERS(X)                                                                           \
    X(events, 1, 1, "valid events of every type")                                                 \
    X(usage, KPI_IS(USAGE), 1, "usage events")                                                    \
    X(revenue, KPI_IS(USAGE), e->amount_micros, "sum of usage amounts, micro-units")              \
    X(activations, KPI_IS(ACTIVATION), 1, "activation events")                                    \
    X(churns, KPI_IS(CHURN), 1, "churn events")                                                   \
    X(bytes, KPI_IS(USAGE), e->bytes, "sum of usage bytes")                                       \
    X(seconds, KPI_IS(USAGE), e->seconds, "sum of usage seconds")                                 \
    X(nps_network_promoters, KPI_NPS_OF(NETWORK) && KPI_PROMOTER, 1, "network NPS, score 9-10")   \
    X(nps_network_passives, KPI_NPS_OF(NETWORK) && KPI_PASSIVE, 1, "network NPS, score 7-8")      \
    X(nps_network_detractors, KPI_NPS_OF(NETWORK) && KPI_DETRACTOR, 1, "network NPS, score 0-6")  \
    X(nps_brand_promoters, KPI_NPS_OF(BRAND) && KPI_PROMOTER, 1, "brand NPS, score 9-10")         \
    X(nps_brand_passives, KPI_NPS_OF(BRAND) && KPI_PASSIVE, 1, "brand NPS, score 7-8")            \
    X(nps_brand_detractors, KPI_NPS_OF(BRAND) && KPI_DETRACTOR, 1, "brand NPS, score 0-6")        \
    X(provision_ms, KPI_IS(ACTIVATION) && e->has_provision_ms, e->provision_ms,                   \
      "sum of activations' provision_ms")                                                         \
    X(provisioned, KPI_IS(ACTIVATION) && e->has_provision_ms, 1, "activations with provision_ms")

#define KPI_DERIVED(X)                                                                            \
    X(churn_rate, KPI_C(churns), KPI_ACTIVE, "churn", "%.2f%%", 100,                             \
      "churns per active subscriber (a fraction)")                                                \
    X(arpu, KPI_C(revenue) / 1e6, KPI_ACTIVE, "ARPU", "%.2f", 1,                                  \
      "revenue per active subscriber, currency units")                                            \
    X(nps_network, 100 * (KPI_C(nps_network_promoters) - KPI_C(nps_network_detractors)),          \
      KPI_C(nps_network_promoters) + KPI_C(nps_network_passives) + KPI_C(nps_network_detractors), \
      "NPS-net", "%.1f", 1, "network NPS, -100..100")                                             \
    X(nps_brand, 100 * (KPI_C(nps_brand_promoters) - KPI_C(nps_brand_detractors)),                \
      KPI_C(nps_brand_promoters) + KPI_C(nps_brand_passives) + KPI_C(nps_brand_detractors),       \
      "NPS-brd", "%.1f", 1, "brand NPS, -100..100")                                               \
    X(time_to_provision_ms, KPI_C(provision_ms), KPI_C(provisioned), "TTP-ms", "%.0f", 1,         \
      "mean provisioning time of activations, ms")                                                \
    X(net_adds, KPI_C(activations) - KPI_C(churns), 1, "net", "%.0f", 1,                          \
      "activations minus churns")                                                                 \
    X(churn_rate_monthly, KPI_C(churns) * 2592000000 / KPI_SPAN_MS, KPI_BASE, "churn/mo",         \
      "%.2f%%", 100, "churns per subscriber of the base, scaled to 30 days (a fraction)")         \
    X(arpu_monthly, KPI_C(revenue) / 1e6 * 2592000000 / KPI_SPAN_MS, KPI_BASE, "ARPU/mo", "%.2f", \
      1, "revenue per subscriber of the base, scaled to 30 days, currency units")
/* clang-format on */

#endif

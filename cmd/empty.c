/* Keeps the kpi_io library non-empty before sources and sinks exist. */
typedef int kpi_io_empty_unit;

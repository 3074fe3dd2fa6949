/*
 * http_client.h - a minimal HTTP/1.1 client for the tests of kpistream's
 * HTTP server (cmd/lib/metrics.c, the API, the event stream): a GET over a
 * fresh loopback connection with `Connection: close`, read to the end.
 */
#ifndef KPI_TEST_HTTP_CLIENT_H
#define KPI_TEST_HTTP_CLIENT_H

/* A socket connected to 127.0.0.1:port, or -1. */
int kt_http_connect(int port);
/* Writes `GET path` (Connection: close) to fd.  0 or -1. */
int kt_http_send_get(int fd, const char *path);
/* GET path from 127.0.0.1:port: the status (-1 when the connection failed);
 * *body is the body, malloc'd, "" when there is none. */
int kt_http_get(int port, const char *path, char **body);

#endif

/* log.c - see log.h. */
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum kpi_log_level min_level = KPI_LOG_INFO;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *const names[] = {"error", "warn", "info", "debug"};

#define MAX_SUBS 32
static struct {
    char name[32];
    long second;
    int lines;
    long suppressed;
} subs[MAX_SUBS];

void kpi_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            min_level = (enum kpi_log_level)i;
}

static void stamp(char *buf, size_t size, const struct timespec *ts)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts->tv_nsec / 1000000);
}

void kpi_log(enum kpi_log_level level, const char *subsystem, const char *fmt, ...)
{
    if (level > min_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char when[40];
    stamp(when, sizeof(when), &ts);
    pthread_mutex_lock(&mu);
    int k = 0;
    while (k < MAX_SUBS && subs[k].name[0] && strcmp(subs[k].name, subsystem) != 0)
        k++;
    if (k < MAX_SUBS && !subs[k].name[0])
        snprintf(subs[k].name, sizeof(subs[k].name), "%s", subsystem);
    if (k < MAX_SUBS) {
        if (subs[k].second != ts.tv_sec) {
            if (subs[k].suppressed)
                fprintf(stderr, "%s warn  %s: %ld lines suppressed (over %d per second)\n", when,
                        subsystem, subs[k].suppressed, KPI_LOG_BURST);
            subs[k].second = ts.tv_sec;
            subs[k].lines = 0;
            subs[k].suppressed = 0;
        }
        if (++subs[k].lines > KPI_LOG_BURST) {
            subs[k].suppressed++;
            pthread_mutex_unlock(&mu);
            return;
        }
    }
    fprintf(stderr, "%s %-5s %s: ", when, names[level], subsystem);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&mu);
}

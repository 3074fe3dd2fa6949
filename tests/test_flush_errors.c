/*
 * The cause of a failed flush, read from the sink's message: the reason label
 * of kpistream_flush_errors_total and of the log line (cmd/lib/flush_errors.c).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/err.h"
#include "cmd/lib/flush_errors.h"

static const char *cause(int err, const char *msg)
{
    static char r[32];
    kpi_flush_error_classify(NULL, err, msg, r, sizeof(r));
    return r;
}

Test(flush_errors, redis_error_codes_name_the_cause)
{
    cr_assert_str_eq(cause(KPI_ERR_IO, "redis redis://kpi:***@10.0.0.5:6379: AUTH: WRONGPASS "
                                       "invalid username-password pair or user is disabled."),
                     "wrongpass");
    cr_assert_str_eq(cause(KPI_ERR_IO, "redis redis://127.0.0.1:6379: FCALL: NOPERM this user "
                                       "has no permissions to run the 'fcall' command"),
                     "noperm");
    cr_assert_str_eq(cause(KPI_ERR_IO, "redis redis://h:6379: FCALL: MOVED 3999 10.0.0.7:6381"),
                     "moved");
    cr_assert_str_eq(cause(KPI_ERR_IO, "redis redis://h:6379: FCALL: READONLY You can't write "
                                       "against a read only replica."),
                     "readonly");
    cr_assert_str_eq(cause(KPI_ERR_IO, "redis redis://h:6379: FCALL: OOM command not allowed "
                                       "when used memory > 'maxmemory'."),
                     "oom");
    cr_assert_str_eq(cause(KPI_ERR_CONFLICT,
                           "redis redis://h:6379: the flush script failed: WRONGTYPE Operation "
                           "against a key holding the wrong kind of value; not retrying"),
                     "wrongtype");
}

Test(flush_errors, other_causes_are_told_apart)
{
    cr_assert_str_eq(cause(KPI_ERR_IO, "dead-letter topic events.dlq cannot be written: 1 dead "
                                       "letter(s) undelivered (produce failed: Broker: Message "
                                       "size too large); offsets are held until they are"),
                     "dead_letters");
    cr_assert_str_eq(cause(KPI_ERR_CONFLICT, "redis: partition events:3: the group's stored "
                                             "offset is '90', this delta covers [40, 80): "
                                             "another instance owns it"),
                     "conflict");
    cr_assert_str_eq(cause(KPI_ERR_IO, "redis redis://127.0.0.1:6379: connect: Connection refused"),
                     "connection");
    cr_assert_str_eq(cause(KPI_ERR_IO, "redis redis://127.0.0.1:6379: FCALL: Resource "
                                       "temporarily unavailable"),
                     "timeout");
    cr_assert_str_eq(cause(KPI_ERR_INVAL, "this sink writes the group's keys over 128 key "
                                          "groups, but kpi:{kpistream}:key_groups "
                                          "(redis://127.0.0.1:6379) now records 4: another sink "
                                          "recorded it since; nothing written"),
                     "key_groups");
    cr_assert_str_eq(cause(KPI_ERR_IO, "injected outage"), "io");
}

Test(flush_errors, words_that_merely_contain_a_code_are_not_one)
{
    /* FCALL, AUTH, ASKING are not codes; "ASK" inside a word is not ASK. */
    cr_assert_str_eq(cause(KPI_ERR_IO, "redis redis://TASKS:6379: FCALL: ASKING failed"), "io");
}

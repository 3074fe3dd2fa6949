package io.kpistream.flink;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * What the peer reports on exit.  The MiniCluster runs in this JVM and the
 * job's classes come from the application class path, so operators and
 * main() see the same statics.
 */
final class Stats {
    static final LongAdder consumed = new LongAdder(), bad = new LongAdder();
    static final AtomicLong rows = new AtomicLong(), commits = new AtomicLong();
    static volatile long firstNanos = 0, lastNanos = 0;
    /** Last record decoded (plain: written per record by the source threads, read at the end). */
    static long lastDecodeNanos = 0;

    private Stats() {}

    /** First record decoded: the start of the processing time. */
    static void touchFirst() {
        if (firstNanos == 0) {
            synchronized (Stats.class) {
                if (firstNanos == 0) firstNanos = System.nanoTime();
            }
        }
    }

    /** A commit to Redis: the processing time runs to the last one. */
    static void touchLast() { lastNanos = System.nanoTime(); }
}

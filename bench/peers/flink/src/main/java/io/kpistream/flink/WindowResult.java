package io.kpistream.flink;

import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import org.apache.flink.types.Row;

/**
 * One window instance's KPIs for one grouping-set value: a row of the SQL
 * query, named the way kpistream names it (docs/redis-schema.md).
 */
final class WindowResult {
    /** kpistream's counter fields, in the query's column order. */
    static final String[] COUNTERS = {"events", "usage", "revenue", "activations", "churns", "bytes",
            "seconds", "nps_network_promoters", "nps_network_passives", "nps_network_detractors",
            "nps_brand_promoters", "nps_brand_passives", "nps_brand_detractors"};

    String window, set, value;
    long start;
    final long[] c = new long[COUNTERS.length];
    long active;

    /** Row: w, window_start, gid, region, plan, segment, counters..., active. */
    static WindowResult of(Row r) {
        WindowResult x = new WindowResult();
        x.window = (String) r.getField(0);
        Object ws = r.getField(1);
        x.start = ws instanceof LocalDateTime ? ((LocalDateTime) ws).toInstant(ZoneOffset.UTC).toEpochMilli()
                : ((Instant) ws).toEpochMilli();
        long gid = ((Number) r.getField(2)).longValue();
        String region = (String) r.getField(3), plan = (String) r.getField(4), segment = (String) r.getField(5);
        // GROUPING_ID(region, plan, segment): a bit set for each column NOT grouped.
        if (gid == 7) { x.set = "all"; x.value = "all"; }
        else if (gid == 3) { x.set = "region"; x.value = region; }
        else if (gid == 1) { x.set = "region+plan"; x.value = region + "|" + plan; }
        else if (gid == 6) { x.set = "segment"; x.value = segment; }
        else throw new IllegalStateException("unexpected grouping id " + gid);
        for (int i = 0; i < COUNTERS.length; i++) {
            Object v = r.getField(6 + i);
            x.c[i] = v == null ? 0 : ((Number) v).longValue();
        }
        x.active = ((Number) r.getField(6 + COUNTERS.length)).longValue();
        return x;
    }

    void write(DataOutput o) throws IOException {
        o.writeUTF(window);
        o.writeUTF(set);
        o.writeUTF(value);
        o.writeLong(start);
        for (long v : c) o.writeLong(v);
        o.writeLong(active);
    }

    static WindowResult read(DataInput in) throws IOException {
        WindowResult x = new WindowResult();
        x.window = in.readUTF();
        x.set = in.readUTF();
        x.value = in.readUTF();
        x.start = in.readLong();
        for (int i = 0; i < x.c.length; i++) x.c[i] = in.readLong();
        x.active = in.readLong();
        return x;
    }
}

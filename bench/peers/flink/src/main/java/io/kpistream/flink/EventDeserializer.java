package io.kpistream.flink;

import io.kpistream.peer.Event;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Kafka value -> one row of the `events` table (docs/events.md), or nothing
 * for bad input (counted in {@link Stats#bad}), through the Kafka Streams
 * peer's decoder (bench/peers/common: a hand-written msgpack reader, one
 * pass, no object tree).
 *
 * Columns: t (0 usage, 1 activation, 2 churn, 3 nps), ts (ms), sub (the
 * subscriber id's MurmurHash64A, seed 0xadc83b19, of its canonical bytes, as
 * kpistream and Redis's HyperLogLog hash it), region, plan, segment
 * ("__none__" when missing, kpistream's name), amount (micro-units), bytes,
 * seconds (0 unless usage, as kpistream counts them), score, survey (0
 * network, 1 brand).
 */
public final class EventDeserializer implements DeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    static final String[] NAMES = {"t", "ts", "sub", "region", "plan", "segment", "amount", "bytes",
            "seconds", "score", "survey"};
    static final String NONE = "__none__";

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW_NAMED(NAMES, Types.INT, Types.LONG, Types.LONG, Types.STRING, Types.STRING,
                Types.STRING, Types.LONG, Types.LONG, Types.LONG, Types.INT, Types.INT);
    }

    @Override
    public Row deserialize(byte[] m) {
        Stats.touchFirst();
        Stats.consumed.increment();
        Stats.lastDecodeNanos = System.nanoTime();
        Row r = decode(m);
        if (r == null) Stats.bad.increment();
        return r;
    }

    @Override
    public void deserialize(byte[] m, Collector<Row> out) {
        Row r = deserialize(m);
        if (r != null) out.collect(r);
    }

    @Override
    public boolean isEndOfStream(Row r) { return false; }

    /** Decode one msgpack map (the peers' one decoder, bench/peers/common), or
     * return null for bad input. */
    static Row decode(byte[] m) {
        Event e = Event.decode(m);
        if (e == null) return null;
        return Row.of((int) e.type, e.ts, e.subHash, orNone(e.region), orNone(e.plan),
                orNone(e.segment), e.amountMicros, e.bytes, e.seconds, (int) e.score, (int) e.survey);
    }

    private static String orNone(String dim) { return dim != null ? dim : NONE; }
}

package io.kpistream.flink;

import java.nio.charset.StandardCharsets;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Kafka value -> one row of the `events` table (docs/events.md), or nothing
 * for bad input (counted in {@link Stats#bad}).  A hand-written msgpack
 * reader, the same as the Kafka Streams peer's: one pass, no object tree.
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
    /** kpistream's engine.max_skew default: event times further ahead are bad. */
    static final long MAX_SKEW_MS = 300_000;
    /** docs/events.md: amount, bytes and seconds are at most 2^53. */
    static final long MAX_QUANTITY = 1L << 53;

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

    /** Decode one msgpack map, or return null for bad input. */
    static Row decode(byte[] m) {
        if (m == null || m.length == 0) return null;
        try {
            Msgpack r = new Msgpack(m);
            int n = r.mapHeader();
            if (n < 0) return null;
            int type = -1, score = -1, survey = 0;
            long ts = -1, sub = 0, amount = 0, bytes = 0, seconds = 0;
            boolean hasSub = false;
            String region = NONE, plan = NONE, segment = NONE;
            for (int i = 0; i < n; i++) {
                String k = r.readStrOrNull();
                if (k == null) return null;
                switch (k) {
                    case "type": {
                        String t = r.readStrOrNull();
                        if (t == null) return null;
                        switch (t) {
                            case "usage": type = 0; break;
                            case "activation": type = 1; break;
                            case "churn": type = 2; break;
                            case "nps": type = 3; break;
                            default: return null;
                        }
                        break;
                    }
                    case "ts": {
                        Long v = r.readUintOrNull();
                        if (v == null) return null;
                        ts = v;
                        break;
                    }
                    case "sub": {
                        byte[] id = r.readSubId();
                        if (id == null) return null;
                        sub = Murmur64A.hash(id, 0xadc83b19L);
                        hasSub = true;
                        break;
                    }
                    case "region": if ((region = r.readStrOrNull()) == null) return null; break;
                    case "plan": if ((plan = r.readStrOrNull()) == null) return null; break;
                    case "segment": if ((segment = r.readStrOrNull()) == null) return null; break;
                    case "amount": {
                        Long v = r.readAmountMicros();
                        if (v == null || v < 0 || v > MAX_QUANTITY) return null;
                        amount = v;
                        break;
                    }
                    case "bytes":
                    case "seconds": {
                        Long v = r.readUintOrNull();
                        if (v == null || v > MAX_QUANTITY) return null;
                        if (k.equals("bytes")) bytes = v;
                        else seconds = v;
                        break;
                    }
                    case "score": {
                        Long v = r.readUintOrNull();
                        if (v == null || v > 10) return null;
                        score = (int) (long) v;
                        break;
                    }
                    case "survey": {
                        String s = r.readStrOrNull();
                        if ("network".equals(s)) survey = 0;
                        else if ("brand".equals(s)) survey = 1;
                        else return null;
                        break;
                    }
                    default: r.skip(0);
                }
            }
            if (!r.atEnd() || type < 0 || ts < 0 || !hasSub) return null;
            if (ts > System.currentTimeMillis() + MAX_SKEW_MS) return null; // ts_in_future
            if (type == 3 && score < 0) return null;
            if (type != 0) amount = bytes = seconds = 0;
            return Row.of(type, ts, sub, region, plan, segment, amount, bytes, seconds, score, survey);
        } catch (RuntimeException ex) {
            return null;
        }
    }

    /** A tiny msgpack reader: just what the event contract needs. */
    static final class Msgpack {
        private final byte[] b;
        private int p;

        Msgpack(byte[] b) { this.b = b; }

        boolean atEnd() { return p == b.length; }

        private int u8() { return b[p++] & 0xff; }
        private int u16() { return (u8() << 8) | u8(); }
        private long u32() { return ((long) u16() << 16) | u16(); }
        private long u64() { return (u32() << 32) | u32(); }

        int mapHeader() {
            int c = u8();
            if ((c & 0xf0) == 0x80) return c & 0x0f;
            if (c == 0xde) return u16();
            if (c == 0xdf) return (int) u32();
            return -1;
        }

        private int strLen(int c) {
            if ((c & 0xe0) == 0xa0) return c & 0x1f;
            if (c == 0xd9) return u8();
            if (c == 0xda) return u16();
            if (c == 0xdb) return (int) u32();
            return -1;
        }

        String readStrOrNull() {
            int n = strLen(u8());
            if (n < 0 || p + n > b.length) return null;
            String s = new String(b, p, n, StandardCharsets.UTF_8);
            p += n;
            return s;
        }

        /** A uint (or a non-negative int), or null. */
        Long readUintOrNull() {
            int c = u8();
            if (c <= 0x7f) return (long) c;
            switch (c) {
                case 0xcc: return (long) u8();
                case 0xcd: return (long) u16();
                case 0xce: return u32();
                case 0xcf: { long v = u64(); return v < 0 ? null : v; }
                case 0xd0: { long v = (byte) u8(); return v < 0 ? null : v; }
                case 0xd1: { long v = (short) u16(); return v < 0 ? null : v; }
                case 0xd2: { long v = (int) u32(); return v < 0 ? null : v; }
                case 0xd3: { long v = u64(); return v < 0 ? null : v; }
                default: return null;
            }
        }

        /** sub: a uint (hashed as its decimal digits) or a non-empty str. */
        byte[] readSubId() {
            int c = b[p] & 0xff;
            int n = strLen(c);
            if (n >= 0) {
                p++;
                n = strLen(c);
                if (n <= 0 || p + n > b.length) return null;
                byte[] id = java.util.Arrays.copyOfRange(b, p, p + n);
                p += n;
                return id;
            }
            Long v = readUintOrNull();
            return v == null ? null : Long.toUnsignedString(v).getBytes(StandardCharsets.US_ASCII);
        }

        /** amount: int = micro-units, float = currency units. */
        Long readAmountMicros() {
            int c = b[p] & 0xff;
            if (c == 0xca) { p++; return Math.round(Float.intBitsToFloat((int) u32()) * 1e6); }
            if (c == 0xcb) { p++; return Math.round(Double.longBitsToDouble(u64()) * 1e6); }
            if (c >= 0xe0) { p++; return (long) (byte) c; }
            return readUintOrNull();
        }

        /** Skip one value of any type. */
        void skip(int depth) {
            if (depth > 32) throw new IllegalStateException("too deep");
            int c = u8();
            if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) return;
            if ((c & 0xf0) == 0x80) { for (int i = 0; i < 2 * (c & 0x0f); i++) skip(depth + 1); return; }
            if ((c & 0xf0) == 0x90) { for (int i = 0; i < (c & 0x0f); i++) skip(depth + 1); return; }
            if ((c & 0xe0) == 0xa0) { p += c & 0x1f; return; }
            switch (c) {
                case 0xcc: case 0xd0: p += 1; return;
                case 0xcd: case 0xd1: p += 2; return;
                case 0xce: case 0xd2: case 0xca: p += 4; return;
                case 0xcf: case 0xd3: case 0xcb: p += 8; return;
                case 0xc4: case 0xd9: p += u8(); return;
                case 0xc5: case 0xda: p += u16(); return;
                case 0xc6: case 0xdb: p += (int) u32(); return;
                case 0xd4: p += 2; return;
                case 0xd5: p += 3; return;
                case 0xd6: p += 5; return;
                case 0xd7: p += 9; return;
                case 0xd8: p += 17; return;
                case 0xc7: { int n = u8(); p += 1 + n; return; }
                case 0xc8: { int n = u16(); p += 1 + n; return; }
                case 0xc9: { int n = (int) u32(); p += 1 + n; return; }
                case 0xdc: { int n = u16(); for (int i = 0; i < n; i++) skip(depth + 1); return; }
                case 0xdd: { int n = (int) u32(); for (int i = 0; i < n; i++) skip(depth + 1); return; }
                case 0xde: { int n = u16(); for (int i = 0; i < 2 * n; i++) skip(depth + 1); return; }
                case 0xdf: { int n = (int) u32(); for (int i = 0; i < 2 * n; i++) skip(depth + 1); return; }
                default: throw new IllegalStateException("malformed");
            }
        }
    }
}

package io.kpistream.peer;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * One decoded event (docs/events.md): the one msgpack decoder of both peers
 * (bench/peers/common, compiled into each: Kafka Streams and Flink), and the
 * Kafka Streams peer's compact form on its repartition topic (the
 * grouping-set value travels in the record key).
 */
public final class Event {
    public static final byte USAGE = 0, ACTIVATION = 1, CHURN = 2, NPS = 3;

    public byte type;
    public long ts;
    /** the subscriber id's MurmurHash64A (seed 0xadc83b19) of its canonical
     * bytes, as kpistream and Redis's HyperLogLog hash it */
    public long subHash;
    public long amountMicros;
    public long bytes, seconds; // usage volumes, 0 otherwise (as kpistream counts them)
    public byte score = -1;
    public byte survey; // 0 network, 1 brand
    public String region, plan, segment; // null when missing

    /** The value of the event in each grouping set: all, region, region+plan, segment. */
    String[] setKeys() {
        String r = region != null ? region : "__none__";
        String p = plan != null ? plan : "__none__";
        String s = segment != null ? segment : "__none__";
        return new String[] {"all:all", "region:" + r, "region+plan:" + r + "|" + p, "segment:" + s};
    }

    /** kpistream's engine.max_skew default: event times further ahead are bad. */
    public static final long MAX_SKEW_MS = 300_000;

    static final int WIRE = 1 + 8 + 8 + 8 + 8 + 8 + 1 + 1;

    /** docs/events.md: amount, bytes and seconds are at most 2^53. */
    public static final long MAX_QUANTITY = 1L << 53;

    byte[] toBytes() {
        return ByteBuffer.allocate(WIRE).put(type).putLong(ts).putLong(subHash).putLong(amountMicros)
                .putLong(bytes).putLong(seconds).put(score).put(survey).array();
    }

    static Event fromBytes(byte[] b) {
        ByteBuffer bb = ByteBuffer.wrap(b);
        Event e = new Event();
        e.type = bb.get();
        e.ts = bb.getLong();
        e.subHash = bb.getLong();
        e.amountMicros = bb.getLong();
        e.bytes = bb.getLong();
        e.seconds = bb.getLong();
        e.score = bb.get();
        e.survey = bb.get();
        return e;
    }

    /**
     * Decode one msgpack map, or return null for bad input.  Checks what the
     * KPIs need (type, ts, sub, score for nps, non-negative amount, string
     * dimensions); kpistream's decoder is stricter (31 reasons), the peer
     * only counts bad events.
     */
    public static Event decode(byte[] m) {
        if (m == null || m.length == 0) return null;
        try {
            Msgpack r = new Msgpack(m);
            int n = r.mapHeader();
            if (n < 0) return null;
            Event e = new Event();
            boolean hasType = false, hasTs = false, hasSub = false;
            for (int i = 0; i < n; i++) {
                String k = r.readStrOrNull();
                if (k == null) return null;
                switch (k) {
                    case "type": {
                        String t = r.readStrOrNull();
                        if (t == null) return null;
                        switch (t) {
                            case "usage": e.type = USAGE; break;
                            case "activation": e.type = ACTIVATION; break;
                            case "churn": e.type = CHURN; break;
                            case "nps": e.type = NPS; break;
                            default: return null;
                        }
                        hasType = true;
                        break;
                    }
                    case "ts": {
                        Long v = r.readUintOrNull();
                        if (v == null) return null;
                        e.ts = v;
                        hasTs = true;
                        break;
                    }
                    case "sub": {
                        byte[] id = r.readSubId();
                        if (id == null) return null;
                        e.subHash = Murmur64A.hash(id, 0xadc83b19L);
                        hasSub = true;
                        break;
                    }
                    case "region": if ((e.region = r.readStrOrNull()) == null) return null; break;
                    case "plan": if ((e.plan = r.readStrOrNull()) == null) return null; break;
                    case "segment": if ((e.segment = r.readStrOrNull()) == null) return null; break;
                    case "amount": {
                        Long v = r.readAmountMicros();
                        if (v == null || v < 0 || v > MAX_QUANTITY) return null;
                        e.amountMicros = v;
                        break;
                    }
                    case "bytes":
                    case "seconds": {
                        Long v = r.readUintOrNull();
                        if (v == null || v > MAX_QUANTITY) return null;
                        if (k.equals("bytes")) e.bytes = v;
                        else e.seconds = v;
                        break;
                    }
                    case "score": {
                        Long v = r.readUintOrNull();
                        if (v == null || v > 10) return null;
                        e.score = (byte) (long) v;
                        break;
                    }
                    case "survey": {
                        String s = r.readStrOrNull();
                        if ("network".equals(s)) e.survey = 0;
                        else if ("brand".equals(s)) e.survey = 1;
                        else return null;
                        break;
                    }
                    default: r.skip(0);
                }
            }
            if (!r.atEnd() || !hasType || !hasTs || !hasSub) return null;
            if (e.ts > System.currentTimeMillis() + MAX_SKEW_MS) return null; // ts_in_future
            if (e.type == NPS && e.score < 0) return null;
            if (e.type != USAGE) e.amountMicros = e.bytes = e.seconds = 0;
            return e;
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

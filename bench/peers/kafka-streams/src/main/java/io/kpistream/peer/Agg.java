package io.kpistream.peer;

import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * One window bucket's KPIs for one grouping-set value: counters plus a
 * HyperLogLog of subscribers (2^14 registers, Redis's precision, so the
 * distinct counts have the same ~0.8% standard error as kpistream's).
 * Sparse (sorted index<<8|rank ints) while small, one byte per register
 * once it has more than 3000 non-zero registers.  Kafka Streams has no
 * distinct-count sketch of its own; this is the usual hand-written one.
 */
final class Agg {
    static final int P = 14, M = 1 << P, SPARSE_MAX = 3000;
    /** false with --no-distinct: counters only, no sketch (the peer's upper bound). */
    static boolean distinct = true;

    /** The counters, in c[] at these indexes: the first seven are named in Redis by COUNTERS. */
    static final int EVENTS = 0, USAGE = 1, REVENUE = 2, ACTIVATIONS = 3, CHURNS = 4, BYTES = 5, SECONDS = 6;
    /** Then the NPS answers per survey: promoters, passives, detractors. */
    static final int NPS_NETWORK = 7, NPS_BRAND = 10, N = 13;
    static final String[] COUNTERS = {"events", "usage", "revenue_micros", "activations", "churns", "bytes", "seconds"};

    final long[] c = new long[N];
    int[] sparse = new int[0];
    byte[] dense; // null while sparse

    Agg add(Event e) {
        c[EVENTS]++;
        switch (e.type) {
            case Event.USAGE:
                c[USAGE]++;
                c[REVENUE] += e.amountMicros;
                c[BYTES] += e.bytes;
                c[SECONDS] += e.seconds;
                break;
            case Event.ACTIVATION: c[ACTIVATIONS]++; break;
            case Event.CHURN: c[CHURNS]++; break;
            case Event.NPS:
                c[(e.survey == 1 ? NPS_BRAND : NPS_NETWORK) + (e.score >= 9 ? 0 : e.score >= 7 ? 1 : 2)]++;
                break;
            default:
        }
        if (!distinct) return this;
        int idx = (int) (e.subHash & (M - 1));
        long rest = (e.subHash >>> P) | (1L << (64 - P));
        int rank = Long.numberOfTrailingZeros(rest) + 1;
        setReg(idx, rank);
        return this;
    }

    /** Add another bucket's counts and registers (the Processor-API peer's pre-aggregates). */
    Agg merge(Agg o) {
        for (int i = 0; i < N; i++) c[i] += o.c[i];
        if (o.dense != null) {
            for (int i = 0; i < M; i++)
                if (o.dense[i] != 0) setReg(i, o.dense[i]);
        } else {
            for (int v : o.sparse) setReg(v >>> 8, v & 0xff);
        }
        return this;
    }

    private void setReg(int idx, int rank) {
        if (dense != null) {
            if (dense[idx] < rank) dense[idx] = (byte) rank;
            return;
        }
        int key = idx << 8;
        int pos = Arrays.binarySearch(sparse, key); // entries are idx<<8|rank, rank >= 1
        int ins = pos >= 0 ? pos : -pos - 1;
        if (ins < sparse.length && (sparse[ins] >>> 8) == idx) {
            if ((sparse[ins] & 0xff) < rank) sparse[ins] = key | rank;
            return;
        }
        if (sparse.length >= SPARSE_MAX) {
            dense = new byte[M];
            for (int v : sparse) dense[v >>> 8] = (byte) (v & 0xff);
            sparse = new int[0];
            dense[idx] = (byte) Math.max(dense[idx], rank);
            return;
        }
        int[] n = new int[sparse.length + 1];
        System.arraycopy(sparse, 0, n, 0, ins);
        n[ins] = key | rank;
        System.arraycopy(sparse, ins, n, ins + 1, sparse.length - ins);
        sparse = n;
    }

    long distinct() {
        double sum = 0;
        int zeros = 0;
        if (dense != null) {
            for (byte r : dense) {
                sum += Math.scalb(1.0, -r);
                if (r == 0) zeros++;
            }
        } else {
            zeros = M - sparse.length;
            sum = zeros;
            for (int v : sparse) sum += Math.scalb(1.0, -(v & 0xff));
        }
        double alpha = 0.7213 / (1 + 1.079 / M);
        double est = alpha * M * (double) M / sum;
        if (est <= 2.5 * M && zeros > 0) est = M * Math.log((double) M / zeros);
        return Math.round(est);
    }

    byte[] toBytes() {
        int hll = dense != null ? M : 4 * sparse.length;
        ByteBuffer b = ByteBuffer.allocate(8 * N + 1 + 4 + hll);
        for (long v : c) b.putLong(v);
        if (dense != null) {
            b.put((byte) 1).putInt(M).put(dense);
        } else {
            b.put((byte) 0).putInt(sparse.length);
            for (int v : sparse) b.putInt(v);
        }
        return b.array();
    }

    static Agg fromBytes(byte[] a) {
        ByteBuffer b = ByteBuffer.wrap(a);
        Agg g = new Agg();
        for (int i = 0; i < N; i++) g.c[i] = b.getLong();
        boolean isDense = b.get() == 1;
        int n = b.getInt();
        if (isDense) {
            g.dense = new byte[M];
            b.get(g.dense);
        } else {
            g.sparse = new int[n];
            for (int i = 0; i < n; i++) g.sparse[i] = b.getInt();
        }
        return g;
    }

    /** The Redis hash of a bucket: counters, distinct estimate and derived KPIs. */
    java.util.Map<String, String> fields() {
        long active = distinct();
        java.util.Map<String, String> h = new java.util.HashMap<>();
        for (int i = 0; i < COUNTERS.length; i++) h.put(COUNTERS[i], Long.toString(c[i]));
        h.put("active", Long.toString(active));
        h.put("churn_rate", Double.toString(active == 0 ? 0 : (double) c[CHURNS] / active));
        h.put("arpu", Double.toString(active == 0 ? 0 : c[REVENUE] / 1e6 / active));
        h.put("nps_network", Double.toString(nps(NPS_NETWORK)));
        h.put("nps_brand", Double.toString(nps(NPS_BRAND)));
        return h;
    }

    /** The NPS of the survey whose answers start at c[at]. */
    double nps(int at) {
        long r = c[at] + c[at + 1] + c[at + 2];
        return r == 0 ? 0 : 100.0 * (c[at] - c[at + 2]) / r;
    }
}

package io.kpistream.flink;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.connector.sink2.Committer;
import org.apache.flink.api.connector.sink2.CommitterInitContext;
import org.apache.flink.api.connector.sink2.CommittingSinkWriter;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.SupportsCommitter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.types.Row;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Transaction;

/**
 * The peer's Redis sink: two-phase commit through Flink's checkpoints
 * (Sink V2 with a committer).
 *
 * The writer only buffers the window results it receives.  At a checkpoint
 * barrier it hands the buffer over as one committable, which Flink stores in
 * the checkpoint; once the checkpoint has completed on every task, the
 * committer applies it in one MULTI/EXEC.  A result is therefore visible only
 * once the input offsets that produced it are durable, and a committable is
 * applied all or nothing.  After a failure Flink retries committables it
 * cannot prove committed: retrying one is harmless because every write is
 * the absolute, final value of a closed window (HSET of every field), not an
 * increment.  That idempotence is what makes it exactly-once in effect;
 * there is no offsets fence in Redis as kpistream has, because nothing here
 * is incremental.
 */
final class RedisSink implements Sink<Row>, SupportsCommitter<List<WindowResult>> {
    private static final long serialVersionUID = 1L;

    private final String host, prefix;
    private final int port;
    private final Map<String, Long> ttlMs;

    /** Keys: PREFIX<window>:<set>:<value>:<window start ms>; TTL per window id. */
    RedisSink(String host, int port, String prefix, Map<String, Long> ttlMs) {
        this.host = host;
        this.port = port;
        this.prefix = prefix;
        this.ttlMs = new HashMap<>(ttlMs);
    }

    @Override
    public SinkWriter<Row> createWriter(WriterInitContext ctx) { return new Writer(); }

    @Override
    public Committer<List<WindowResult>> createCommitter(CommitterInitContext ctx) {
        return new RedisCommitter(new Jedis(host, port), prefix, ttlMs);
    }

    @Override
    public SimpleVersionedSerializer<List<WindowResult>> getCommittableSerializer() { return new Ser(); }

    static final class Writer implements CommittingSinkWriter<Row, List<WindowResult>> {
        private List<WindowResult> buf = new ArrayList<>();

        @Override
        public void write(Row r, Context ctx) { buf.add(WindowResult.of(r)); }

        @Override
        public void flush(boolean endOfInput) {}

        @Override
        public Collection<List<WindowResult>> prepareCommit() {
            if (buf.isEmpty()) return Collections.emptyList();
            List<WindowResult> out = buf;
            buf = new ArrayList<>();
            return Collections.singletonList(out);
        }

        @Override
        public void close() {}
    }

    static final class RedisCommitter implements Committer<List<WindowResult>> {
        private final Jedis jedis;
        private final String prefix;
        private final Map<String, Long> ttlMs;

        RedisCommitter(Jedis jedis, String prefix, Map<String, Long> ttlMs) {
            this.jedis = jedis;
            this.prefix = prefix;
            this.ttlMs = ttlMs;
        }

        @Override
        public void commit(Collection<CommitRequest<List<WindowResult>>> reqs) {
            for (CommitRequest<List<WindowResult>> req : reqs) {
                List<WindowResult> rows = req.getCommittable();
                Transaction t = jedis.multi();
                for (WindowResult x : rows) {
                    String key = prefix + x.window + ":" + x.set + ":" + x.value + ":" + x.start;
                    t.hset(key, fields(x));
                    t.pexpire(key, ttlMs.get(x.window));
                }
                t.exec();
                Stats.rows.addAndGet(rows.size());
                Stats.commits.incrementAndGet();
                Stats.touchLast();
            }
        }

        @Override
        public void close() { jedis.close(); }
    }

    /** The hash kpistream's rolling hash has (docs/redis-schema.md), minus bookkeeping. */
    static Map<String, String> fields(WindowResult x) {
        Map<String, String> h = new HashMap<>();
        for (int i = 0; i < x.c.length; i++) h.put(WindowResult.COUNTERS[i], Long.toString(x.c[i]));
        h.put("active", Long.toString(x.active));
        long churns = x.c[4], revenue = x.c[2];
        h.put("churn_rate", x.active == 0 ? "" : Double.toString((double) churns / x.active));
        h.put("arpu", x.active == 0 ? "" : Double.toString(revenue / 1e6 / x.active));
        h.put("nps_network", nps(x.c[7], x.c[8], x.c[9]));
        h.put("nps_brand", nps(x.c[10], x.c[11], x.c[12]));
        return h;
    }

    static String nps(long pro, long pas, long det) {
        long n = pro + pas + det;
        return n == 0 ? "" : Double.toString(100.0 * (pro - det) / n);
    }

    static final class Ser implements SimpleVersionedSerializer<List<WindowResult>> {
        @Override
        public int getVersion() { return 1; }

        @Override
        public byte[] serialize(List<WindowResult> rows) throws IOException {
            ByteArrayOutputStream b = new ByteArrayOutputStream();
            DataOutputStream o = new DataOutputStream(b);
            o.writeInt(rows.size());
            for (WindowResult x : rows) x.write(o);
            o.flush();
            return b.toByteArray();
        }

        @Override
        public List<WindowResult> deserialize(int version, byte[] s) throws IOException {
            DataInputStream in = new DataInputStream(new ByteArrayInputStream(s));
            int n = in.readInt();
            List<WindowResult> rows = new ArrayList<>(n);
            for (int i = 0; i < n; i++) rows.add(WindowResult.read(in));
            return rows;
        }
    }
}

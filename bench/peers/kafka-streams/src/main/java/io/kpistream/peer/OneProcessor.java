package io.kpistream.peer;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowStore;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;

/**
 * The Processor-API variant of the Kafka Streams peer (`--processor`): what a
 * Kafka Streams expert writes when the DSL's repartitions are the cost.
 *
 * One processor per input partition (task) does everything: decode, count
 * the event into an in-memory pre-aggregate per (window, grouping-set value,
 * bucket) for all 4 sets and 3 windows, and, once per commit interval
 * (a wall-clock punctuation, 1 s), merge each touched pre-aggregate into a
 * persistent window store (RocksDB, changelogged, so restored exactly after
 * a crash under exactly_once_v2), write the bucket's absolute value for
 * this partition to Redis, and request the commit.  No repartition topic: no record goes back
 * through Kafka, and the store sees one read-modify-write per touched bucket
 * per second instead of one per record.
 *
 * What makes that possible: a task holds only its partition's share of a
 * bucket, so the Redis key carries the partition
 * (`ksp:{app}:<window>:<set>:<value>:<bucket>:<partition>`) and a reader sums
 * the partitions' hashes.  Distinct subscribers add up across partitions
 * because the topic is keyed by subscriber (a subscriber's events all land
 * in one partition) — an assumption of this design that kpistream does not
 * need.  Writes are absolute values, so a replay after a crash rewrites the
 * same values (exactly-once in effect, like the DSL peer's).  The gap: a
 * commit Kafka Streams makes on its own (a rebalance, a clean close) can
 * include records whose pre-aggregates are still in memory; Kafka Streams
 * has no hook to flush them before such a commit short of a custom store.
 */
final class OneProcessor implements Processor<byte[], byte[], Void, Void> {
    /** kpistream's engine.lateness default: older buckets are closed. */
    static final long LATENESS_MS = 30_000;

    private final String host, prefix;
    private final int port;
    private ProcessorContext<Void, Void> ctx;
    @SuppressWarnings("unchecked")
    private final WindowStore<String, Agg>[] stores = new WindowStore[PeerApp.WINDOWS.length];
    private final long[] slide = new long[PeerApp.WINDOWS.length], size = new long[PeerApp.WINDOWS.length];
    /** Per window: "set:value" -> bucket start -> what this interval added. */
    @SuppressWarnings("unchecked")
    private final Map<String, Map<Long, Agg>>[] pending = new Map[PeerApp.WINDOWS.length];
    private long streamTime = Long.MIN_VALUE;
    private Jedis jedis;

    OneProcessor(String host, int port, String prefix) {
        this.host = host;
        this.port = port;
        this.prefix = prefix;
    }

    static String storeName(int w) { return "one-" + PeerApp.WINDOWS[w][0]; }

    /** The topology: source -> this processor, with one window store per window. */
    static void build(StreamsBuilder b, String topic, String host, int port, String prefix, Serde<Agg> aggSerde) {
        String[] names = new String[PeerApp.WINDOWS.length];
        for (int w = 0; w < names.length; w++) {
            long sl = Long.parseLong(PeerApp.WINDOWS[w][1]);
            names[w] = storeName(w);
            b.addStateStore(Stores.windowStoreBuilder(Stores.persistentWindowStore(names[w],
                    Duration.ofMillis(sl + LATENESS_MS), Duration.ofMillis(sl), false), Serdes.String(), aggSerde));
        }
        b.stream(topic, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
                .process(() -> new OneProcessor(host, port, prefix), names);
    }

    @Override
    public void init(ProcessorContext<Void, Void> context) {
        ctx = context;
        for (int w = 0; w < stores.length; w++) {
            stores[w] = context.getStateStore(storeName(w));
            slide[w] = Long.parseLong(PeerApp.WINDOWS[w][1]);
            size[w] = Long.parseLong(PeerApp.WINDOWS[w][2]);
            pending[w] = new HashMap<>();
        }
        jedis = new Jedis(host, port);
        context.schedule(Duration.ofMillis(1000), PunctuationType.WALL_CLOCK_TIME, t -> flush());
    }

    @Override
    public void process(Record<byte[], byte[]> r) {
        PeerApp.consumed.incrementAndGet();
        PeerApp.touch();
        Event e = Event.decode(r.value());
        if (e == null) {
            PeerApp.bad.incrementAndGet();
            return;
        }
        if (e.ts > streamTime) streamTime = e.ts;
        String[] keys = e.setKeys();
        for (int w = 0; w < stores.length; w++) {
            long bucket = e.ts - Math.floorMod(e.ts, slide[w]);
            if (bucket + slide[w] <= streamTime - LATENESS_MS) {
                PeerApp.late.incrementAndGet(); // counted once per window it is late for
                continue;
            }
            Map<String, Map<Long, Agg>> pw = pending[w];
            for (String k : keys)
                pw.computeIfAbsent(k, x -> new HashMap<>(4)).computeIfAbsent(bucket, x -> new Agg()).add(e);
        }
        PeerApp.aggregated.addAndGet(keys.length);
    }

    /** Merge the interval's pre-aggregates into the stores, write the touched buckets. */
    private void flush() {
        int n = 0;
        int part = ctx.taskId().partition();
        Pipeline pipe = null;
        for (int w = 0; w < stores.length; w++) {
            if (pending[w].isEmpty()) continue;
            if (pipe == null) pipe = jedis.pipelined();
            for (Map.Entry<String, Map<Long, Agg>> s : pending[w].entrySet()) {
                for (Map.Entry<Long, Agg> b : s.getValue().entrySet()) {
                    long bucket = b.getKey();
                    Agg a = stores[w].fetch(s.getKey(), bucket);
                    a = a == null ? b.getValue() : a.merge(b.getValue());
                    stores[w].put(s.getKey(), a, bucket);
                    String key = prefix + PeerApp.WINDOWS[w][0] + ":" + s.getKey() + ":" + bucket + ":" + part;
                    pipe.hset(key, a.fields());
                    pipe.pexpire(key, size[w] + slide[w] + LATENESS_MS + 600_000);
                    n++;
                }
            }
            pending[w].clear();
        }
        if (pipe != null) {
            pipe.sync();
            PeerApp.written.addAndGet(n);
            PeerApp.touch();
        }
        // Commit now: the thread commits right after punctuating, before it
        // processes more records, so the committed offsets never run ahead
        // of what the stores hold (commit.interval.ms is set out of the way).
        ctx.commit();
    }

    @Override
    public void close() {
        jedis.close();
    }
}

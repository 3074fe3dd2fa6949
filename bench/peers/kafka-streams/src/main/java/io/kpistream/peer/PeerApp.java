package io.kpistream.peer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.WindowStore;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;

/**
 * The Kafka Streams peer of bench/e2e.sh (README.md next to this file):
 * decode, fan out to the grouping sets, repartition by set value, aggregate
 * per window bucket in RocksDB-backed window stores, write every updated
 * bucket to Redis.  Exactly-once v2, two stream threads, commit every second.
 */
public final class PeerApp {
    static final AtomicLong consumed = new AtomicLong(), bad = new AtomicLong(), late = new AtomicLong(),
            aggregated = new AtomicLong(), written = new AtomicLong();
    static volatile long firstNanos = 0, lastNanos = 0;

    /** kpistream's default windows; each aggregated in tumbling buckets of its slide. */
    static final String[][] WINDOWS = {{"1m_5s", "5000", "60000"}, {"1h_1m", "60000", "3600000"},
            {"24h_1h", "3600000", "86400000"}};

    static void touch() {
        long now = System.nanoTime();
        if (firstNanos == 0) firstNanos = now;
        lastNanos = now;
    }

    /** Decode once; forward one record per grouping set, stamped with the event time. */
    static final class DecodeFanOut implements Processor<byte[], byte[], String, byte[]> {
        private ProcessorContext<String, byte[]> ctx;

        @Override
        public void init(ProcessorContext<String, byte[]> context) { ctx = context; }

        @Override
        public void process(Record<byte[], byte[]> r) {
            consumed.incrementAndGet();
            touch();
            Event e = Event.decode(r.value());
            if (e == null) {
                bad.incrementAndGet();
                return;
            }
            byte[] v = e.toBytes();
            for (String k : e.setKeys()) ctx.forward(new Record<>(k, v, e.ts));
        }
    }

    /** Writes updated buckets to Redis, pipelined; flushed every 500 ms and at close. */
    static final class RedisWriter implements Processor<Windowed<String>, Agg, Void, Void> {
        private final String host, prefix, window;
        private final int port;
        private final long ttlMs;
        private Jedis jedis;
        private Pipeline pipe;
        private int pending;

        RedisWriter(String host, int port, String prefix, String window, long ttlMs) {
            this.host = host;
            this.port = port;
            this.prefix = prefix;
            this.window = window;
            this.ttlMs = ttlMs;
        }

        @Override
        public void init(ProcessorContext<Void, Void> context) {
            jedis = new Jedis(host, port);
            pipe = jedis.pipelined();
            context.schedule(Duration.ofMillis(500), PunctuationType.WALL_CLOCK_TIME, t -> sync());
        }

        @Override
        public void process(Record<Windowed<String>, Agg> r) {
            Agg a = r.value();
            if (a == null) return;
            touch();
            Map<String, String> h = a.fields();
            String key = prefix + window + ":" + r.key().key() + ":" + r.key().window().start();
            pipe.hset(key, h);
            pipe.pexpire(key, ttlMs);
            written.incrementAndGet();
            if (++pending >= 1000) sync();
        }

        private void sync() {
            if (pending > 0) {
                pipe.sync();
                pending = 0;
            }
        }

        @Override
        public void close() {
            sync();
            jedis.close();
        }
    }

    static <T> Serde<T> serde(Serializer<T> s, Deserializer<T> d) { return Serdes.serdeFrom(s, d); }

    public static void main(String[] args) throws Exception {
        String bootstrap = "127.0.0.1:9092", topic = "events", appId = "kpistream-peer";
        HostPort redis = new HostPort("127.0.0.1", 6379);
        int threads = 2;
        double idle = 0;
        boolean processor = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--bootstrap": bootstrap = args[++i]; break;
                case "--topic": topic = args[++i]; break;
                case "--app-id": appId = args[++i]; break;
                case "--exit-on-idle": idle = Double.parseDouble(args[++i]); break;
                case "--threads": threads = Integer.parseInt(args[++i]); break;
                case "--no-distinct": Agg.distinct = false; break;
                case "--processor": processor = true; break;
                case "--redis": redis = HostPort.parse(args[++i]); break;
                default:
                    System.err.println("usage: run.sh [--bootstrap B] [--topic T] [--app-id A] "
                            + "[--exit-on-idle S] [--threads N] [--redis HOST:PORT] [--no-distinct] [--processor]");
                    System.exit(2);
            }
        }
        Path stateDir = Files.createTempDirectory("kpistream-peer-");
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
        // The processor variant commits from its punctuation, every second;
        // the interval is only a backstop (it must stay below the transaction
        // timeout, and that below the broker's 15 min maximum).
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, processor ? 600_000 : 1000);
        if (processor)
            p.put(StreamsConfig.producerPrefix(org.apache.kafka.clients.producer.ProducerConfig.TRANSACTION_TIMEOUT_CONFIG),
                    840_000);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.TOPOLOGY_OPTIMIZATION_CONFIG, StreamsConfig.OPTIMIZE);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        Serde<Agg> aggSerde = serde((t, a) -> a == null ? null : a.toBytes(),
                (t, b) -> b == null ? null : Agg.fromBytes(b));
        StreamsBuilder b = new StreamsBuilder();
        String prefix = "peer:{" + appId + "}:";
        final String rh = redis.host;
        final int rp = redis.port;
        if (processor) {
            OneProcessor.build(b, topic, rh, rp, "ksp:{" + appId + "}:", aggSerde);
        } else {
            KStream<byte[], byte[]> src = b.stream(topic, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()));
            KStream<String, byte[]> fan = src.process(DecodeFanOut::new, Named.as("decode"));
            KGroupedStream<String, byte[]> bySet =
                    fan.groupByKey(Grouped.with("by-set", Serdes.String(), Serdes.ByteArray()));
            for (String[] w : WINDOWS) {
                long slide = Long.parseLong(w[1]), size = Long.parseLong(w[2]);
                String id = w[0];
                bySet.windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(slide), Duration.ofSeconds(30)))
                        .aggregate(Agg::new, (k, v, a) -> {
                            aggregated.incrementAndGet();
                            return a.add(Event.fromBytes(v));
                        }, Named.as("agg-" + id),
                                Materialized.<String, Agg, WindowStore<Bytes, byte[]>>as("agg-" + id)
                                        .withKeySerde(Serdes.String()).withValueSerde(aggSerde)
                                        .withRetention(Duration.ofMillis(slide + 30000)))
                        .toStream(Named.as("changes-" + id))
                        .process(() -> new RedisWriter(rh, rp, prefix, id, size + slide), Named.as("redis-" + id));
            }
        }

        KafkaStreams ks = new KafkaStreams(b.build(p), p);
        final int[] exit = {0};
        ks.setUncaughtExceptionHandler(ex -> {
            System.err.println("peer: " + ex);
            for (Throwable c = ex.getCause(); c != null; c = c.getCause())
                System.err.println("peer:   caused by " + c);
            exit[0] = 1;
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> ks.close(Duration.ofSeconds(30))));
        ks.start();
        long idleNanos = (long) (idle * 1e9);
        while (exit[0] == 0 && ks.state() != KafkaStreams.State.NOT_RUNNING
                && ks.state() != KafkaStreams.State.ERROR) {
            Thread.sleep(200);
            long last = lastNanos;
            if (idleNanos > 0 && last != 0 && System.nanoTime() - last > idleNanos) break;
        }
        ks.close(Duration.ofSeconds(60));
        try (Stream<Path> s = Files.walk(stateDir)) {
            s.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        } catch (IOException ignored) {
            // a leftover temp directory is harmless
        }
        double secs = (lastNanos - firstNanos) / 1e9;
        System.out.printf("peer: aggregated %d set-records into 3 windows (%d late), wrote %d bucket updates%n",
                aggregated.get(), late.get(), written.get());
        System.out.printf("peer: %d events (%d bad) in %.1f s%n", consumed.get(), bad.get(), secs);
        System.exit(exit[0]);
    }
}

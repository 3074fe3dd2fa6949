package io.kpistream.flink;

import io.kpistream.peer.HostPort;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.Schema;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.types.Row;

/**
 * The Apache Flink peer of bench/e2e.sh (README.md next to this file): a
 * bounded Kafka source (earliest to the end offsets at start), the msgpack
 * decoder, one Flink SQL query per window (HOP window TVF, GROUPING SETS,
 * exact COUNT(DISTINCT)), and a two-phase-commit Redis sink; checkpoints
 * every second, exactly-once; a local MiniCluster in this JVM.
 */
public final class FlinkPeer {
    /** kpistream's default windows: id, slide s, size s, slide and size in SQL. */
    static final Object[][] WINDOWS = {{"1m_5s", 5, 60, "'5' SECOND", "'1' MINUTE"},
            {"1h_1m", 60, 3600, "'1' MINUTE", "'1' HOUR"}, {"24h_1h", 3600, 86400, "'1' HOUR", "'24' HOUR"}};
    /** kpistream's engine.lateness default. */
    static final Duration LATENESS = Duration.ofSeconds(30);

    static final String USAGE = "usage: run.sh [--bootstrap B] [--topic T] [--group G] [--redis HOST:PORT]\n"
            + "              [--job ID] [--parallelism N] [--state hashmap|rocksdb] [--checkpoint-ms MS]\n"
            + "              [--split-distinct] [--explain]\n"
            + "       run.sh check --redis HOST:PORT --kpi-group G --job ID [--kpi-prefix kpi]";

    static String query(String id, String slide, String size, String distinct) {
        return "SELECT CAST('" + id + "' AS STRING) AS w, window_start, GROUPING_ID(region, plan, segment) AS gid,\n"
                + "  region, plan, segment,\n"
                + "  COUNT(*) AS n_events,\n"
                + "  COUNT(*) FILTER (WHERE t = 0) AS n_usage,\n"
                + "  SUM(amount) AS n_revenue,\n"
                + "  COUNT(*) FILTER (WHERE t = 1) AS n_activations,\n"
                + "  COUNT(*) FILTER (WHERE t = 2) AS n_churns,\n"
                + "  SUM(`bytes`) AS n_bytes,\n"
                + "  SUM(`seconds`) AS n_seconds,\n"
                + "  COUNT(*) FILTER (WHERE t = 3 AND survey = 0 AND score >= 9) AS nn_pro,\n"
                + "  COUNT(*) FILTER (WHERE t = 3 AND survey = 0 AND score IN (7, 8)) AS nn_pas,\n"
                + "  COUNT(*) FILTER (WHERE t = 3 AND survey = 0 AND score <= 6) AS nn_det,\n"
                + "  COUNT(*) FILTER (WHERE t = 3 AND survey = 1 AND score >= 9) AS nb_pro,\n"
                + "  COUNT(*) FILTER (WHERE t = 3 AND survey = 1 AND score IN (7, 8)) AS nb_pas,\n"
                + "  COUNT(*) FILTER (WHERE t = 3 AND survey = 1 AND score <= 6) AS nb_det,\n"
                + "  " + distinct + " AS active\n"
                + "FROM TABLE(HOP(TABLE events, DESCRIPTOR(rt), INTERVAL " + slide + ", INTERVAL " + size + "))\n"
                + "GROUP BY window_start, window_end, GROUPING SETS ((), (region), (region, plan), (segment))";
    }

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("check")) {
            System.exit(Check.run(args));
        }
        String bootstrap = "127.0.0.1:9092", topic = "events", group = null, job = "flink-peer";
        String state = "hashmap";
        HostPort redis = new HostPort("127.0.0.1", 6379);
        int parallelism = 2;
        long checkpointMs = 1000;
        boolean explain = false, splitDistinct = false, onePhase = false;
        String distinct = "COUNT(DISTINCT sub)";
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--bootstrap": bootstrap = args[++i]; break;
                case "--topic": topic = args[++i]; break;
                case "--group": group = args[++i]; break;
                case "--job": job = args[++i]; break;
                case "--parallelism": parallelism = Integer.parseInt(args[++i]); break;
                case "--state": state = args[++i]; break;
                case "--checkpoint-ms": checkpointMs = Long.parseLong(args[++i]); break;
                case "--split-distinct": splitDistinct = true; break;
                case "--approx": distinct = "APPROX_COUNT_DISTINCT(sub)"; break;
                case "--explain": explain = true; break;
                case "--one-phase": onePhase = true; break;
                case "--redis": redis = HostPort.parse(args[++i]); break;
                default:
                    System.err.println(USAGE);
                    System.exit(2);
            }
        }
        if (!state.equals("hashmap") && !state.equals("rocksdb")) {
            System.err.println("flink-peer: --state must be hashmap or rocksdb");
            System.exit(2);
        }
        if (group == null) group = job;

        Path tmp = Files.createTempDirectory("kpistream-flink-peer-");
        Map<String, String> c = new HashMap<>();
        c.put("parallelism.default", Integer.toString(parallelism));
        c.put("execution.checkpointing.interval", checkpointMs + " ms");
        c.put("execution.checkpointing.mode", "EXACTLY_ONCE");
        c.put("execution.checkpointing.storage", "filesystem");
        c.put("execution.checkpointing.dir", tmp.resolve("checkpoints").toUri().toString());
        c.put("state.backend.type", state);
        c.put("execution.checkpointing.incremental", Boolean.toString(state.equals("rocksdb")));
        c.put("restart-strategy.type", "none");
        c.put("table.local-time-zone", "UTC");
        // Window aggregation is two-phase already (local pre-aggregation, then
        // the global one); this spreads each key's distinct count over buckets
        // of sub (the `all` value is one key, so one task otherwise).
        c.put("table.optimizer.distinct-agg.split.enabled", Boolean.toString(splitDistinct));
        // Chained operators hand records on without copying them.
        c.put("pipeline.object-reuse", "true");
        if (onePhase) c.put("table.optimizer.agg-phase-strategy", "ONE_PHASE");
        Configuration conf = Configuration.fromMap(c);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);

        KafkaSource<Row> source = KafkaSource.<Row>builder()
                .setBootstrapServers(bootstrap)
                .setTopics(topic)
                .setGroupId(group)
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setBounded(OffsetsInitializer.latest())
                .setDeserializer(KafkaRecordDeserializationSchema.valueOnly(new EventDeserializer()))
                .setProperty("isolation.level", "read_committed")
                .build();
        // Per-partition watermarks, min over partitions, 30 s behind: kpistream's.
        WatermarkStrategy<Row> wm = WatermarkStrategy.<Row>forBoundedOutOfOrderness(LATENESS)
                .withTimestampAssigner((r, prev) -> (Long) r.getField(1));
        DataStream<Row> events = env.fromSource(source, wm, "kafka: " + topic);

        StreamTableEnvironment t = StreamTableEnvironment.create(env);
        t.createTemporaryView("events", events, Schema.newBuilder()
                .columnByMetadata("rt", DataTypes.TIMESTAMP_LTZ(3), "rowtime")
                .watermark("rt", "SOURCE_WATERMARK()")
                .build());

        Map<String, Long> ttl = new LinkedHashMap<>();
        DataStream<Row> results = null;
        for (Object[] w : WINDOWS) {
            String id = (String) w[0];
            int slide = (Integer) w[1], size = (Integer) w[2];
            ttl.put(id, (size + slide) * 1000L + LATENESS.toMillis() + 600_000L); // kpistream's bucket TTL
            Table q = t.sqlQuery(query(id, (String) w[3], (String) w[4], distinct));
            if (explain) System.err.println(q.explain());
            DataStream<Row> s = t.toDataStream(q);
            results = results == null ? s : results.union(s);
        }
        results.sinkTo(new RedisSink(redis.host, redis.port, "flink:{" + job + "}:", ttl)).name("redis");

        try {
            env.execute("kpistream flink peer " + job);
        } finally {
            try (Stream<Path> s = Files.walk(tmp)) {
                s.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            } catch (IOException ignored) {
                // a leftover temp directory is harmless
            }
        }
        double secs = (Stats.lastNanos - Stats.firstNanos) / 1e9;
        System.out.printf("peer: input read in %.1f s, then %.1f s to the last commit%n",
                (Stats.lastDecodeNanos - Stats.firstNanos) / 1e9, (Stats.lastNanos - Stats.lastDecodeNanos) / 1e9);
        System.out.printf("peer: wrote %d window results in %d commits%n", Stats.rows.get(), Stats.commits.get());
        System.out.printf("peer: %d events (%d bad) in %.1f s%n", Stats.consumed.sum(), Stats.bad.sum(), secs);
        System.exit(0);
    }
}

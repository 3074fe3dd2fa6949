package io.kpistream.flink;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;
import redis.clients.jedis.Response;
import redis.clients.jedis.params.ScanParams;
import redis.clients.jedis.resps.ScanResult;

/**
 * `run.sh check`: compares the Flink peer's window results with what
 * kpistream wrote for the same topic, in the same Redis.
 *
 * kpistream keeps one counters hash (and one HyperLogLog) per window bucket
 * (`P:b:` / `P:h:` keys of docs/redis-schema.md), the Flink peer one hash per
 * window instance.  For every window instance Flink emitted, the sum of
 * kpistream's buckets inside it must equal Flink's counters exactly, and
 * PFCOUNT of the buckets' sketches must be within the tolerance of Flink's
 * exact distinct count.  And nothing may be missing on either side: per
 * (window, set, value), Flink's events summed over its instances must be
 * size/slide times kpistream's summed over its buckets (each event is in
 * size/slide instances of a hopping window).  Exit 0 when all hold.
 */
final class Check {
    private Check() {}

    /** window id, set, value, start ms: parsed from the tail of a key. */
    record Tail(String window, String set, String value, long start) {
        static Tail parse(String tail) {
            int a = tail.indexOf(':'), b = tail.indexOf(':', a + 1), z = tail.lastIndexOf(':');
            if (a < 0 || b < 0 || z <= b) return null;
            return new Tail(tail.substring(0, a), tail.substring(a + 1, b), tail.substring(b + 1, z),
                    Long.parseLong(tail.substring(z + 1)));
        }

        String series() { return window + ":" + set + ":" + value; }
    }

    static List<String> scan(Jedis j, String pattern) {
        List<String> keys = new ArrayList<>();
        String cursor = ScanParams.SCAN_POINTER_START;
        ScanParams p = new ScanParams().match(pattern).count(1000);
        do {
            ScanResult<String> r = j.scan(cursor, p);
            keys.addAll(r.getResult());
            cursor = r.getCursor();
        } while (!cursor.equals(ScanParams.SCAN_POINTER_START));
        return keys;
    }

    static Map<String, Map<String, String>> hgetall(Jedis j, List<String> keys) {
        Pipeline p = j.pipelined();
        List<Response<Map<String, String>>> rs = new ArrayList<>();
        for (String k : keys) rs.add(p.hgetAll(k));
        p.sync();
        Map<String, Map<String, String>> out = new HashMap<>();
        for (int i = 0; i < keys.size(); i++) out.put(keys.get(i), rs.get(i).get());
        return out;
    }

    static long[] counters(Map<String, String> h) {
        long[] c = new long[WindowResult.COUNTERS.length];
        for (int i = 0; i < c.length; i++) {
            String v = h.get(WindowResult.COUNTERS[i]);
            c[i] = v == null || v.isEmpty() ? 0 : Long.parseLong(v);
        }
        return c;
    }

    static int run(String[] args) {
        String host = "127.0.0.1", group = null, job = null, kpiPrefix = "kpi";
        int port = 6379;
        double tol = 0.05;
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--redis": {
                    String[] hp = args[++i].split(":");
                    host = hp[0];
                    port = Integer.parseInt(hp[1]);
                    break;
                }
                case "--kpi-group": group = args[++i]; break;
                case "--kpi-prefix": kpiPrefix = args[++i]; break;
                case "--job": job = args[++i]; break;
                case "--tolerance": tol = Double.parseDouble(args[++i]); break;
                default:
                    System.err.println(FlinkPeer.USAGE);
                    return 2;
            }
        }
        if (group == null || job == null) {
            System.err.println(FlinkPeer.USAGE);
            return 2;
        }
        Map<String, long[]> win = new HashMap<>(); // id -> {slide ms, size ms}
        for (Object[] w : FlinkPeer.WINDOWS)
            win.put((String) w[0], new long[] {(Integer) w[1] * 1000L, (Integer) w[2] * 1000L});

        try (Jedis j = new Jedis(host, port)) {
            // kpistream's buckets: series -> bucket start -> {counters, sketch key}
            List<String> bkeys = scan(j, kpiPrefix + ":{" + group + ".*}:b:*");
            bkeys.addAll(scan(j, kpiPrefix + ":{" + group + "}:b:*"));
            Map<String, Map<String, String>> bh = hgetall(j, bkeys);
            Map<String, TreeMap<Long, long[]>> kpi = new HashMap<>();
            Map<String, String> sketchKey = new HashMap<>(); // series + ":" + bucket -> P:h: key
            for (String k : bkeys) {
                int at = k.indexOf("}:b:");
                Tail t = Tail.parse(k.substring(at + 4));
                if (t == null || !win.containsKey(t.window())) continue;
                kpi.computeIfAbsent(t.series(), s -> new TreeMap<>()).put(t.start(), counters(bh.get(k)));
                sketchKey.put(t.series() + ":" + t.start(), k.substring(0, at) + "}:h:" + k.substring(at + 4));
            }
            // Flink's window instances.
            String fpre = "flink:{" + job + "}:";
            List<String> fkeys = scan(j, fpre + "*");
            Map<String, Map<String, String>> fh = hgetall(j, fkeys);
            if (bkeys.isEmpty() || fkeys.isEmpty()) {
                System.out.printf("check: FAILED: %d kpistream bucket keys (group %s), %d Flink results (job %s)%n",
                        bkeys.size(), group, fkeys.size(), job);
                return 1;
            }

            int compared = 0, counterMismatch = 0, distinctBad = 0;
            double maxErr = 0, sumErr = 0;
            Map<String, Long> flinkEvents = new HashMap<>();
            Pipeline p = j.pipelined();
            List<Object[]> pending = new ArrayList<>(); // {Tail, exact active, Response<Long>}
            for (String k : fkeys) {
                Tail t = Tail.parse(k.substring(fpre.length()));
                long[] ws = win.get(t.window());
                long[] fc = counters(fh.get(k));
                flinkEvents.merge(t.series(), fc[0], Long::sum);
                long[] sum = new long[fc.length];
                List<String> sk = new ArrayList<>();
                TreeMap<Long, long[]> series = kpi.get(t.series());
                if (series != null) {
                    for (Map.Entry<Long, long[]> e : series.subMap(t.start(), t.start() + ws[1]).entrySet()) {
                        for (int i = 0; i < sum.length; i++) sum[i] += e.getValue()[i];
                        sk.add(sketchKey.get(t.series() + ":" + e.getKey()));
                    }
                }
                compared++;
                if (!java.util.Arrays.equals(sum, fc)) {
                    if (counterMismatch++ < 5)
                        System.out.printf("check: %s: Flink %s, kpistream %s%n", k,
                                java.util.Arrays.toString(fc), java.util.Arrays.toString(sum));
                }
                long exact = Long.parseLong(fh.get(k).get("active"));
                Response<Long> r = sk.isEmpty() ? null : p.pfcount(sk.toArray(new String[0]));
                pending.add(new Object[] {t, exact, r, k});
            }
            p.sync();
            for (Object[] o : pending) {
                long exact = (Long) o[1];
                @SuppressWarnings("unchecked")
                Response<Long> r = (Response<Long>) o[2];
                long est = r == null ? 0 : r.get();
                double err = exact == 0 ? (est == 0 ? 0 : 1) : Math.abs(est - exact) / (double) exact;
                maxErr = Math.max(maxErr, err);
                sumErr += err;
                if (Math.abs(est - exact) > Math.max(2, tol * exact) && distinctBad++ < 5)
                    System.out.printf("check: %s: Flink active %d, kpistream PFCOUNT %d%n", o[3], exact, est);
            }

            // Completeness: each event is in size/slide instances of its window.
            int seriesBad = 0;
            Map<String, Long> totals = new TreeMap<>();
            java.util.Set<String> all = new java.util.TreeSet<>(kpi.keySet());
            all.addAll(flinkEvents.keySet());
            for (String s : all) {
                long[] ws = win.get(s.substring(0, s.indexOf(':')));
                long k = 0;
                if (kpi.containsKey(s)) for (long[] c : kpi.get(s).values()) k += c[0];
                long f = flinkEvents.getOrDefault(s, 0L);
                if (f != k * (ws[1] / ws[0]) && seriesBad++ < 5)
                    System.out.printf("check: %s: Flink %d event-instances, kpistream %d events x %d%n", s, f, k,
                            ws[1] / ws[0]);
                if (s.endsWith(":all:all")) totals.put(s.substring(0, s.indexOf(':')), k);
            }
            boolean ok = counterMismatch == 0 && distinctBad == 0 && seriesBad == 0;
            System.out.printf("check: %d Flink window results over %d series; kpistream events per window %s%n",
                    compared, all.size(), totals);
            System.out.printf("check: counters %s (%d differ), series %s (%d differ), distinct: %d outside %.0f %%,"
                    + " max error %.2f %%, mean %.3f %% (kpistream HLL vs Flink exact)%n",
                    counterMismatch == 0 ? "equal" : "DIFFER", counterMismatch, seriesBad == 0 ? "complete" : "DIFFER",
                    seriesBad, distinctBad, tol * 100, maxErr * 100, sumErr / compared * 100);
            System.out.println(ok ? "check: OK" : "check: FAILED");
            return ok ? 0 : 1;
        }
    }
}

// A closed-loop load generator on Apache ZooKeeper's own Java client: the
// cross-check that corral-loadgen measures a server the way another client
// library would (bench/client-check.sh runs both against the same server).
//
// Same shape as corral-loadgen: --clients sessions, each keeping --inflight
// asynchronous getData or setData calls on random keys of --keys nodes of
// --value-size bytes (corral-loadgen's own: /loadgen/k00000000...); --warmup seconds unmeasured, then
// --duration seconds counted. Prints one line of JSON: ops_per_s, errors and
// the client's own CPU time per operation.
//
//   java -cp zookeeper.jar:... ZkLoad --connect 127.0.0.1:2181 read

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.zookeeper.AsyncCallback;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

public final class ZkLoad {
    private static String connect = "127.0.0.1:2181";
    private static int clients = 32;
    private static int inflight = 16;
    private static double duration = 8;
    private static double warmup = 2;
    private static int valueSize = 1024;
    private static int keys = 1000;
    private static String workload;

    private static final AtomicBoolean counting = new AtomicBoolean(false);
    private static final AtomicBoolean stopping = new AtomicBoolean(false);
    private static final AtomicLong ops = new AtomicLong();
    private static final AtomicLong errors = new AtomicLong();

    public static void main(String[] args) throws Exception {
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--connect": connect = args[++i]; break;
                case "--clients": clients = Integer.parseInt(args[++i]); break;
                case "--inflight": inflight = Integer.parseInt(args[++i]); break;
                case "--duration": duration = Double.parseDouble(args[++i]); break;
                case "--warmup": warmup = Double.parseDouble(args[++i]); break;
                case "--value-size": valueSize = Integer.parseInt(args[++i]); break;
                case "--keys": keys = Integer.parseInt(args[++i]); break;
                default:
                    if (args[i].startsWith("--")) {
                        throw new IllegalArgumentException("unknown option " + args[i]);
                    }
                    workload = args[i];
            }
        }
        if (!"read".equals(workload) && !"write".equals(workload)) {
            throw new IllegalArgumentException("workload: read or write");
        }
        byte[] value = new byte[valueSize];
        List<ZooKeeper> sessions = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            sessions.add(connected());
        }
        createKeys(sessions.get(0), value);

        for (ZooKeeper zk : sessions) {
            for (int k = 0; k < inflight; k++) {
                next(zk, value);
            }
        }
        Thread.sleep((long) (warmup * 1000));
        long cpu0 = cpuNanos();
        long t0 = System.nanoTime();
        counting.set(true);
        Thread.sleep((long) (duration * 1000));
        counting.set(false);
        long elapsed = System.nanoTime() - t0;
        long cpu = cpuNanos() - cpu0;
        stopping.set(true);
        long n = ops.get();
        System.out.printf(
            "{\"client\":\"zookeeper-java\",\"workload\":\"%s\",\"clients\":%d,\"inflight\":%d,"
                + "\"ops\":%d,\"ops_per_s\":%.1f,\"errors\":%d,\"client_cpu_us_per_op\":%.2f}%n",
            workload, clients, inflight, n, n / (elapsed / 1e9), errors.get(),
            n == 0 ? 0.0 : cpu / 1e3 / n);
        for (ZooKeeper zk : sessions) {
            zk.close();
        }
    }

    private static ZooKeeper connected() throws Exception {
        CountDownLatch up = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(connect, 30000, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) {
                up.countDown();
            }
        });
        if (!up.await(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("no session with " + connect);
        }
        return zk;
    }

    private static String key(int i) {
        return String.format("/loadgen/k%08d", i);
    }

    private static void createKeys(ZooKeeper zk, byte[] value) throws Exception {
        try {
            zk.create("/loadgen", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        } catch (KeeperException.NodeExistsException e) {
            // from an earlier run, of this or of corral-loadgen
        }
        CountDownLatch done = new CountDownLatch(keys);
        for (int i = 0; i < keys; i++) {
            zk.create(key(i), value, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT,
                (AsyncCallback.StringCallback) (rc, path, ctx, name) -> done.countDown(), null);
        }
        if (!done.await(60, TimeUnit.SECONDS)) {
            throw new IllegalStateException("creating the keys timed out");
        }
    }

    /** Issues one request; its callback issues the next. */
    private static void next(ZooKeeper zk, byte[] value) {
        if (stopping.get()) {
            return;
        }
        String path = key(ThreadLocalRandom.current().nextInt(keys));
        if ("read".equals(workload)) {
            zk.getData(path, false, (rc, p, ctx, data, stat) -> done(zk, value, rc), null);
        } else {
            zk.setData(path, value, -1, (rc, p, ctx, stat) -> done(zk, value, rc), null);
        }
    }

    private static void done(ZooKeeper zk, byte[] value, int rc) {
        if (counting.get()) {
            if (rc == KeeperException.Code.OK.intValue()) {
                ops.incrementAndGet();
            } else {
                errors.incrementAndGet();
            }
        }
        next(zk, value);
    }

    private static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean)
            ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }
}

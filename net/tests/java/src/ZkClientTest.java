import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooDefs.Perms;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.server.auth.DigestAuthenticationProvider;

/**
 * Drives a server with Apache ZooKeeper's own Java client
 * (org.apache.zookeeper.ZooKeeper). Usage: ZkClientTest host:port [globalTimeoutSec]
 */
public class ZkClientTest extends TestBase {
    static final int SESSION_TIMEOUT = 10000;
    static final long EVENT_WAIT_MS = 5000;
    static final long QUIET_MS = 500;
    static final List<ACL> OPEN = Ids.OPEN_ACL_UNSAFE;

    final String connect;
    final String base = "/java-zk-" + System.currentTimeMillis();
    final List<ZooKeeper> extra = Collections.synchronizedList(new ArrayList<>());
    ZooKeeper zk;

    ZkClientTest(String connect, long timeoutSec) {
        super("ZkClientTest", timeoutSec, 20);
        this.connect = connect;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: ZkClientTest host:port [globalTimeoutSec]");
            System.exit(2);
        }
        // Never block forever on a request the server does not answer.
        System.setProperty("zookeeper.request.timeout", "10000");
        long timeout = args.length > 1 ? Long.parseLong(args[1]) : 60;
        new ZkClientTest(args[0], timeout).runAll();
    }

    // ---- helpers -------------------------------------------------------

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** A watcher that records every event into a queue. */
    static class Recorder implements Watcher {
        final BlockingQueue<WatchedEvent> events = new LinkedBlockingQueue<>();

        @Override
        public void process(WatchedEvent e) {
            events.add(e);
        }

        WatchedEvent next(String what) throws InterruptedException {
            WatchedEvent e = events.poll(EVENT_WAIT_MS, TimeUnit.MILLISECONDS);
            check(e != null, what + ": no watch event within " + EVENT_WAIT_MS + " ms");
            return e;
        }

        /** The next node event, skipping connection-state events (type None). */
        WatchedEvent nextNodeEvent(String what) throws InterruptedException {
            long deadline = System.currentTimeMillis() + EVENT_WAIT_MS;
            while (true) {
                long left = deadline - System.currentTimeMillis();
                WatchedEvent e = left > 0 ? events.poll(left, TimeUnit.MILLISECONDS) : null;
                check(e != null, what + ": no watch event within " + EVENT_WAIT_MS + " ms");
                if (e.getType() != EventType.None) {
                    return e;
                }
            }
        }

        void expect(EventType type, String path, String what) throws InterruptedException {
            WatchedEvent e = nextNodeEvent(what);
            eq(type + " " + path, e.getType() + " " + e.getPath(), what + " (event type and path)");
            eq(KeeperState.SyncConnected, e.getState(), what + " (event state)");
        }

        void expectQuiet(String what) throws InterruptedException {
            WatchedEvent e = events.poll(QUIET_MS, TimeUnit.MILLISECONDS);
            check(e == null, what + ": unexpected event " + e);
        }
    }

    /** Opens a session and waits for SyncConnected. */
    ZooKeeper open(Watcher also) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper z = new ZooKeeper(connect, SESSION_TIMEOUT, e -> {
            // Record first, so that the caller sees this event before open() returns.
            if (also != null) {
                also.process(e);
            }
            if (e.getType() == EventType.None && e.getState() == KeeperState.SyncConnected) {
                connected.countDown();
            }
        });
        extra.add(z);
        check(connected.await(10, TimeUnit.SECONDS), "session did not reach SyncConnected within 10 s");
        return z;
    }

    /**
     * Closes the client's TCP connection without closing its session, as a
     * network failure would; the client then reconnects and re-registers its
     * watches with SetWatches/SetWatches2.
     */
    static void dropConnection(ZooKeeper z) throws Exception {
        java.lang.reflect.Field cnxnField = ZooKeeper.class.getDeclaredField("cnxn");
        cnxnField.setAccessible(true);
        Object cnxn = cnxnField.get(z);
        java.lang.reflect.Field st = cnxn.getClass().getDeclaredField("sendThread");
        st.setAccessible(true);
        Object sendThread = st.get(cnxn);
        java.lang.reflect.Method close = sendThread.getClass().getDeclaredMethod("testableCloseSocket");
        close.setAccessible(true);
        close.invoke(sendThread);
    }

    /** Waits for Disconnected and then SyncConnected on a session's default watcher. */
    static void awaitReconnect(Recorder r) throws InterruptedException {
        boolean disconnected = false;
        long deadline = System.currentTimeMillis() + 10000;
        while (System.currentTimeMillis() < deadline) {
            WatchedEvent e = r.events.poll(200, TimeUnit.MILLISECONDS);
            if (e == null || e.getType() != EventType.None) {
                continue;
            }
            if (e.getState() == KeeperState.Disconnected) {
                disconnected = true;
            } else if (e.getState() == KeeperState.SyncConnected && disconnected) {
                return;
            } else if (e.getState() == KeeperState.Expired) {
                throw new AssertionError("session expired instead of reconnecting");
            }
        }
        throw new AssertionError(disconnected ? "client did not reconnect within 10 s"
                : "client did not see the connection drop");
    }

    static String errs(List<OpResult> results) {
        List<String> out = new ArrayList<>();
        for (OpResult r : results) {
            if (r instanceof OpResult.ErrorResult) {
                out.add(Integer.toString(((OpResult.ErrorResult) r).getErr()));
            } else {
                out.add(r.getClass().getSimpleName());
            }
        }
        return out.toString();
    }

    static Set<String> set(String... xs) {
        return new HashSet<>(Arrays.asList(xs));
    }

    // ---- tests ---------------------------------------------------------

    void runAll() {
        test("connect", () -> {
            zk = open(null);
            check(zk.getSessionId() != 0, "session id is 0");
            check(zk.getSessionPasswd() != null && zk.getSessionPasswd().length == 16,
                    "session password should be 16 bytes, got "
                            + (zk.getSessionPasswd() == null ? "null" : zk.getSessionPasswd().length));
            check(zk.getSessionTimeout() > 0, "negotiated session timeout " + zk.getSessionTimeout());
            eq(ZooKeeper.States.CONNECTED, zk.getState(), "client state");
        });
        if (zk == null) {
            finish();
            return;
        }

        test("root-and-zookeeper-node", () -> {
            check(zk.exists("/", false) != null, "exists(/) returned null");
            check(zk.exists("/zookeeper", false) != null, "exists(/zookeeper) returned null");
            check(zk.getChildren("/", false).contains("zookeeper"), "getChildren(/) lacks 'zookeeper'");
        });

        test("create-persistent", () -> {
            eq(base, zk.create(base, b("root"), OPEN, CreateMode.PERSISTENT), "create returned path");
            Stat st = new Stat();
            String p = base + "/p";
            eq(p, zk.create(p, b("hello"), OPEN, CreateMode.PERSISTENT, st), "create2 returned path");
            eq(0, st.getVersion(), "create2 stat.version");
            eq(5, st.getDataLength(), "create2 stat.dataLength");
            eq(0, st.getNumChildren(), "create2 stat.numChildren");
            eq(0L, st.getEphemeralOwner(), "create2 stat.ephemeralOwner");
            eq(st.getCzxid(), st.getMzxid(), "create2 czxid == mzxid");
            eq(st.getCzxid(), st.getPzxid(), "create2 czxid == pzxid");
            check(st.getCtime() > 0, "create2 ctime " + st.getCtime());
            Stat got = new Stat();
            eq(b("hello"), zk.getData(p, false, got), "getData");
            eq(st, got, "getData stat equals create2 stat");
            Stat parent = zk.exists(base, false);
            eq(1, parent.getNumChildren(), "parent numChildren");
            eq(1, parent.getCversion(), "parent cversion");
            eq(st.getCzxid(), parent.getPzxid(), "parent pzxid == child czxid");
        });

        test("create-errors", () -> {
            KeeperException e = expectThrows(KeeperException.class, "create existing node",
                    () -> zk.create(base + "/p", b("x"), OPEN, CreateMode.PERSISTENT));
            eq(KeeperException.Code.NODEEXISTS, e.code(), "create existing node error code");
            eq(base + "/p", e.getPath(), "NodeExists path");
            e = expectThrows(KeeperException.class, "create under missing parent",
                    () -> zk.create(base + "/missing/child", b("x"), OPEN, CreateMode.PERSISTENT));
            eq(KeeperException.Code.NONODE, e.code(), "create under missing parent error code");
            e = expectThrows(KeeperException.class, "getData missing",
                    () -> zk.getData(base + "/missing", false, null));
            eq(KeeperException.Code.NONODE, e.code(), "getData missing error code");
            check(zk.exists(base + "/missing", false) == null, "exists(missing) should be null");
        });

        test("null-and-empty-data", () -> {
            zk.create(base + "/null", null, OPEN, CreateMode.PERSISTENT);
            zk.create(base + "/empty", new byte[0], OPEN, CreateMode.PERSISTENT);
            Stat st = new Stat();
            byte[] d = zk.getData(base + "/null", false, st);
            eq(0, st.getDataLength(), "null data: dataLength");
            check(d == null, "null data: getData should return null like ZooKeeper, got " + show(d));
            d = zk.getData(base + "/empty", false, st);
            eq(0, st.getDataLength(), "empty data: dataLength");
            check(d != null && d.length == 0, "empty data: expected empty array, got " + show(d));
        });

        test("large-data", () -> {
            byte[] big = new byte[512 * 1024];
            for (int i = 0; i < big.length; i++) {
                big[i] = (byte) (i * 31);
            }
            zk.create(base + "/big", big, OPEN, CreateMode.PERSISTENT);
            Stat st = new Stat();
            byte[] got = zk.getData(base + "/big", false, st);
            eq(big.length, st.getDataLength(), "dataLength");
            check(Arrays.equals(big, got), "512 KiB data did not round-trip");
        });

        test("create-ephemeral", () -> {
            Stat st = new Stat();
            zk.create(base + "/e", b("eph"), OPEN, CreateMode.EPHEMERAL, st);
            eq(zk.getSessionId(), st.getEphemeralOwner(), "ephemeralOwner");
            KeeperException e = expectThrows(KeeperException.class, "child of ephemeral",
                    () -> zk.create(base + "/e/child", b("x"), OPEN, CreateMode.PERSISTENT));
            eq(KeeperException.Code.NOCHILDRENFOREPHEMERALS, e.code(), "child of ephemeral error code");
        });

        test("create-sequential", () -> {
            String dir = base + "/seq";
            zk.create(dir, null, OPEN, CreateMode.PERSISTENT);
            eq(dir + "/s-0000000000", zk.create(dir + "/s-", b("a"), OPEN, CreateMode.PERSISTENT_SEQUENTIAL),
                    "first sequential");
            eq(dir + "/s-0000000001", zk.create(dir + "/s-", b("b"), OPEN, CreateMode.PERSISTENT_SEQUENTIAL),
                    "second sequential");
            Stat st = new Stat();
            eq(dir + "/eph-0000000002",
                    zk.create(dir + "/eph-", b("c"), OPEN, CreateMode.EPHEMERAL_SEQUENTIAL, st),
                    "ephemeral sequential");
            eq(zk.getSessionId(), st.getEphemeralOwner(), "ephemeral sequential owner");
            eq(3, zk.exists(dir, false).getCversion(), "parent cversion after 3 creates");
            zk.delete(dir + "/s-0000000001", -1);
            // The visible cversion counts creates and deletes ...
            eq(4, zk.exists(dir, false).getCversion(), "parent cversion after 3 creates and 1 delete");
            // ... but the sequence counter counts only creates (ZooKeeper keeps
            // creates internally and reports creates*2 - numChildren).
            eq(dir + "/s-0000000003", zk.create(dir + "/s-", b("d"), OPEN, CreateMode.PERSISTENT_SEQUENTIAL),
                    "sequential after a delete");
            eq(5, zk.exists(dir, false).getCversion(), "parent cversion after 4 creates and 1 delete");
            eq(set("s-0000000000", "eph-0000000002", "s-0000000003"), new HashSet<>(zk.getChildren(dir, false)),
                    "children");
        });

        test("create-container", () -> {
            Stat st = new Stat();
            String c = base + "/cont";
            eq(c, zk.create(c, b("c"), OPEN, CreateMode.CONTAINER, st), "container path");
            // ZooKeeper stores 0x8000000000000000 internally but reports 0 to clients.
            eq(0L, st.getEphemeralOwner(), "container create2 stat.ephemeralOwner");
            zk.create(c + "/child", b("x"), OPEN, CreateMode.PERSISTENT);
            eq(Collections.singletonList("child"), zk.getChildren(c, false), "container children");
            eq(0L, zk.exists(c, false).getEphemeralOwner(), "container exists().ephemeralOwner");
            check(!zk.getEphemerals(c).contains(c), "a container is not an ephemeral");
        });

        long containerCheckMs = Long.getLong("test.containerCheckMs", 0);
        if (containerCheckMs > 0 && containerCheckMs <= 5000) {
            test("container-auto-delete", () -> {
                // The server runs with a short container check interval (run.sh
                // sets it and passes -Dtest.containerCheckMs).
                String c = base + "/cont-auto";
                String never = base + "/cont-never-used";
                zk.create(c, null, OPEN, CreateMode.CONTAINER);
                zk.create(never, null, OPEN, CreateMode.CONTAINER);
                zk.create(c + "/child", null, OPEN, CreateMode.PERSISTENT);
                Thread.sleep(containerCheckMs * 2 + 500);
                check(zk.exists(c, false) != null, "a container with a child was deleted");
                Recorder r = new Recorder();
                check(zk.exists(c, r) != null, "container vanished");
                zk.delete(c + "/child", -1);
                WatchedEvent ev = r.events.poll(containerCheckMs * 3 + 2000, TimeUnit.MILLISECONDS);
                check(ev != null, "empty container not deleted within " + (containerCheckMs * 3 + 2000) + " ms");
                eq(EventType.NodeDeleted + " " + c, ev.getType() + " " + ev.getPath(), "container deletion event");
                // A container that never had a child is kept (maxNeverUsedIntervalMs=0).
                check(zk.exists(never, false) != null, "a never-used container was deleted");
            });
        } else {
            skip("container-auto-delete", "run with a short container check interval and -Dtest.containerCheckMs");
        }

        test("many-children", () -> {
            String d = base + "/many";
            zk.create(d, null, OPEN, CreateMode.PERSISTENT);
            List<Op> ops = new ArrayList<>();
            Set<String> want = new HashSet<>();
            for (int i = 0; i < 300; i++) {
                ops.add(Op.create(d + "/n" + i, b("v" + i), OPEN, CreateMode.PERSISTENT));
                want.add("n" + i);
            }
            eq(300, zk.multi(ops).size(), "multi results");
            Stat st = new Stat();
            List<String> kids = zk.getChildren(d, false, st);
            eq(want, new HashSet<>(kids), "children");
            eq(300, kids.size(), "children count (no duplicates)");
            eq(300, st.getNumChildren(), "numChildren");
            eq(300, st.getCversion(), "cversion");
            eq(300, zk.getAllChildrenNumber(d), "getAllChildrenNumber");
            // One multi, one zxid: pzxid is that zxid and every child has it as czxid.
            eq(st.getPzxid(), zk.exists(d + "/n0", false).getCzxid(), "child czxid == parent pzxid");
            eq(st.getPzxid(), zk.exists(d + "/n299", false).getCzxid(), "last child czxid == parent pzxid");
            List<Op> dels = new ArrayList<>();
            for (int i = 0; i < 300; i++) {
                dels.add(Op.delete(d + "/n" + i, 0));
            }
            zk.multi(dels);
            st = zk.exists(d, false);
            eq(0, st.getNumChildren(), "numChildren after deleting all");
            eq(600, st.getCversion(), "cversion after 300 creates and 300 deletes");
        });

        test("setData-versions", () -> {
            String p = base + "/v";
            Stat created = new Stat();
            zk.create(p, b("v0"), OPEN, CreateMode.PERSISTENT, created);
            Stat st = zk.setData(p, b("v1"), 0);
            eq(1, st.getVersion(), "version after setData(version=0)");
            check(st.getMzxid() > created.getMzxid(), "mzxid did not advance");
            eq(created.getCzxid(), st.getCzxid(), "czxid unchanged");
            eq(created.getCtime(), st.getCtime(), "ctime unchanged");
            KeeperException e = expectThrows(KeeperException.class, "setData stale version",
                    () -> zk.setData(p, b("v2"), 0));
            eq(KeeperException.Code.BADVERSION, e.code(), "setData stale version error code");
            check(e instanceof KeeperException.BadVersionException, "not a BadVersionException: " + e);
            st = zk.setData(p, b("v2"), -1);
            eq(2, st.getVersion(), "version after setData(version=-1)");
            eq(b("v2"), zk.getData(p, false, null), "data after setData");
            e = expectThrows(KeeperException.class, "setData missing", () -> zk.setData(base + "/nope", b("x"), -1));
            eq(KeeperException.Code.NONODE, e.code(), "setData missing error code");
        });

        test("delete", () -> {
            String p = base + "/d";
            zk.create(p, b("x"), OPEN, CreateMode.PERSISTENT);
            zk.create(p + "/c", b("x"), OPEN, CreateMode.PERSISTENT);
            KeeperException e = expectThrows(KeeperException.class, "delete non-empty", () -> zk.delete(p, -1));
            eq(KeeperException.Code.NOTEMPTY, e.code(), "delete non-empty error code");
            e = expectThrows(KeeperException.class, "delete bad version", () -> zk.delete(p + "/c", 7));
            eq(KeeperException.Code.BADVERSION, e.code(), "delete bad version error code");
            zk.delete(p + "/c", 0);
            zk.delete(p, -1);
            check(zk.exists(p, false) == null, "node still exists after delete");
            e = expectThrows(KeeperException.class, "delete missing", () -> zk.delete(p, -1));
            eq(KeeperException.Code.NONODE, e.code(), "delete missing error code");
        });

        test("exists-and-data-watches", () -> {
            String p = base + "/w";
            Recorder r = new Recorder();
            check(zk.exists(p, r) == null, "exists should be null");
            zk.create(p, b("a"), OPEN, CreateMode.PERSISTENT);
            r.expect(EventType.NodeCreated, p, "exists watch on create");
            zk.setData(p, b("b"), -1);
            r.expectQuiet("watch is one-shot");
            eq(b("b"), zk.getData(p, r, null), "getData");
            zk.setData(p, b("c"), -1);
            r.expect(EventType.NodeDataChanged, p, "data watch on setData");
            check(zk.exists(p, r) != null, "exists should be non-null");
            zk.delete(p, -1);
            r.expect(EventType.NodeDeleted, p, "exists watch on delete");
            r.expectQuiet("no duplicate events");
        });

        test("default-watcher", () -> {
            Recorder r = new Recorder();
            ZooKeeper z = open(r);
            r.events.clear();
            String p = base + "/dw";
            check(z.exists(p, true) == null, "exists should be null");
            zk.create(p, b("a"), OPEN, CreateMode.PERSISTENT);
            r.expect(EventType.NodeCreated, p, "default watcher on create");
            z.close();
        });

        test("child-watches", () -> {
            String p = base + "/c";
            zk.create(p, null, OPEN, CreateMode.PERSISTENT);
            Recorder r = new Recorder();
            Stat st = new Stat();
            eq(Collections.emptyList(), zk.getChildren(p, r, st), "initial children");
            eq(0, st.getNumChildren(), "getChildren2 numChildren");
            zk.create(p + "/x", null, OPEN, CreateMode.PERSISTENT);
            r.expect(EventType.NodeChildrenChanged, p, "child watch on create");
            zk.getChildren(p, r);
            zk.setData(p + "/x", b("d"), -1);
            r.expectQuiet("child watch ignores child data changes");
            zk.delete(p + "/x", -1);
            r.expect(EventType.NodeChildrenChanged, p, "child watch on delete");
            zk.getChildren(p, r);
            zk.delete(p, -1);
            r.expect(EventType.NodeDeleted, p, "child watch when the node itself is deleted");
            KeeperException e = expectThrows(KeeperException.class, "getChildren missing",
                    () -> zk.getChildren(p, false));
            eq(KeeperException.Code.NONODE, e.code(), "getChildren missing error code");
        });

        test("async-api", () -> {
            CountDownLatch done = new CountDownLatch(3);
            AtomicReference<String> problems = new AtomicReference<>("");
            zk.getData(base + "/p", false, (rc, path, ctx, data, stat) -> {
                if (rc != 0 || !"hello".equals(new String(data, StandardCharsets.UTF_8)) || !"ctx1".equals(ctx)) {
                    problems.updateAndGet(s -> s + " getData rc=" + rc + " ctx=" + ctx);
                }
                done.countDown();
            }, "ctx1");
            zk.create(base + "/p", b("x"), OPEN, CreateMode.PERSISTENT, (rc, path, ctx, name) -> {
                if (rc != KeeperException.Code.NODEEXISTS.intValue()) {
                    problems.updateAndGet(s -> s + " create rc=" + rc);
                }
                done.countDown();
            }, null);
            zk.exists(base + "/none", false, (rc, path, ctx, stat) -> {
                if (rc != KeeperException.Code.NONODE.intValue() || stat != null) {
                    problems.updateAndGet(s -> s + " exists rc=" + rc + " stat=" + stat);
                }
                done.countDown();
            }, null);
            check(done.await(10, TimeUnit.SECONDS), "async callbacks not all called");
            eq("", problems.get(), "async callback problems");
        });

        test("multi-success", () -> {
            String m = base + "/m";
            List<OpResult> res = zk.multi(Arrays.asList(
                    Op.create(m, b("m0"), OPEN, CreateMode.PERSISTENT),
                    Op.create(m + "/a", b("a"), OPEN, CreateMode.PERSISTENT),
                    Op.setData(m, b("m1"), 0),
                    Op.check(m, 1),
                    Op.delete(m + "/a", 0)));
            eq(5, res.size(), "number of results");
            eq(m, ((OpResult.CreateResult) res.get(0)).getPath(), "result 0 create path");
            eq(m + "/a", ((OpResult.CreateResult) res.get(1)).getPath(), "result 1 create path");
            eq(1, ((OpResult.SetDataResult) res.get(2)).getStat().getVersion(), "result 2 setData version");
            check(res.get(3) instanceof OpResult.CheckResult, "result 3 should be CheckResult: " + res.get(3));
            check(res.get(4) instanceof OpResult.DeleteResult, "result 4 should be DeleteResult: " + res.get(4));
            Stat st = new Stat();
            eq(b("m1"), zk.getData(m, false, st), "data after multi");
            eq(0, st.getNumChildren(), "children after multi");
            // All ops of one multi share one zxid.
            eq(st.getCzxid(), st.getMzxid(), "multi ops share a zxid (czxid == mzxid)");

            List<OpResult> tx = zk.transaction()
                    .create(m + "/t", b("t"), OPEN, CreateMode.PERSISTENT_SEQUENTIAL)
                    .setData(m, b("m2"), 1)
                    .commit();
            eq(2, tx.size(), "transaction results");
            check(((OpResult.CreateResult) tx.get(0)).getPath().startsWith(m + "/t00000"),
                    "sequential create in transaction: " + ((OpResult.CreateResult) tx.get(0)).getPath());
        });

        test("multi-failure", () -> {
            String m = base + "/mf";
            KeeperException e = expectThrows(KeeperException.class, "multi with failing op",
                    () -> zk.multi(Arrays.asList(
                            Op.create(m + "1", b("1"), OPEN, CreateMode.PERSISTENT),
                            Op.create(m + "2", b("2"), OPEN, CreateMode.PERSISTENT),
                            Op.setData(base + "/does-not-exist", b("x"), -1),
                            Op.create(m + "3", b("3"), OPEN, CreateMode.PERSISTENT))));
            eq(KeeperException.Code.NONODE, e.code(), "multi exception code");
            List<OpResult> res = e.getResults();
            check(res != null, "KeeperException.getResults() is null");
            eq("[0, 0, -101, -2]", errs(res), "per-op results (OK, OK, NONODE, RUNTIMEINCONSISTENCY)");
            check(zk.exists(m + "1", false) == null, "multi was not atomic: " + m + "1 exists");
            check(zk.exists(m + "2", false) == null, "multi was not atomic: " + m + "2 exists");

            e = expectThrows(KeeperException.class, "multi with failing check",
                    () -> zk.multi(Arrays.asList(
                            Op.create(m + "4", b("4"), OPEN, CreateMode.PERSISTENT),
                            Op.check(base + "/p", 99))));
            eq(KeeperException.Code.BADVERSION, e.code(), "failing check code");
            eq("[0, -103]", errs(e.getResults()), "per-op results (OK, BADVERSION)");
            check(zk.exists(m + "4", false) == null, "multi was not atomic: " + m + "4 exists");

            // The async form reports the same per-op results.
            CountDownLatch done = new CountDownLatch(1);
            AtomicReference<String> got = new AtomicReference<>();
            zk.multi(Arrays.asList(
                    Op.delete(base + "/p", 5),
                    Op.create(m + "5", null, OPEN, CreateMode.PERSISTENT)), (rc, path, ctx, opResults) -> {
                        got.set(rc + " " + (opResults == null ? "null" : errs(opResults)));
                        done.countDown();
                    }, null);
            check(done.await(10, TimeUnit.SECONDS), "async multi callback not called");
            eq("-103 [-103, -2]", got.get(), "async multi rc and results");
        });

        test("multi-read", () -> {
            String m = base + "/mr";
            zk.create(m, b("mr"), OPEN, CreateMode.PERSISTENT);
            zk.create(m + "/k", null, OPEN, CreateMode.PERSISTENT);
            List<OpResult> res = zk.multi(Arrays.asList(
                    Op.getChildren(m),
                    Op.getData(m),
                    Op.getData(base + "/does-not-exist")));
            eq(3, res.size(), "number of results");
            eq(Collections.singletonList("k"), ((OpResult.GetChildrenResult) res.get(0)).getChildren(),
                    "getChildren result");
            eq(b("mr"), ((OpResult.GetDataResult) res.get(1)).getData(), "getData result");
            eq(1, ((OpResult.GetDataResult) res.get(1)).getStat().getNumChildren(), "getData result stat");
            check(res.get(2) instanceof OpResult.ErrorResult, "missing node result: " + res.get(2));
            eq(-101, ((OpResult.ErrorResult) res.get(2)).getErr(), "missing node error");
        });

        test("acl-digest", () -> {
            String user = "alice:secret";
            String digest = DigestAuthenticationProvider.generateDigest(user);
            zk.addAuthInfo("digest", b(user));
            String p = base + "/acl";
            zk.create(p, b("private"), Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
            Stat st = new Stat();
            List<ACL> acl = zk.getACL(p, st);
            eq(Collections.singletonList(new ACL(Perms.ALL, new Id("digest", digest))), acl, "getACL");
            eq(0, st.getAversion(), "aversion");
            eq(b("private"), zk.getData(p, false, null), "owner can read");

            ZooKeeper other = open(null);
            check(other.exists(p, false) != null, "exists is not ACL-checked");
            KeeperException e = expectThrows(KeeperException.class, "unauthenticated read",
                    () -> other.getData(p, false, null));
            eq(KeeperException.Code.NOAUTH, e.code(), "unauthenticated read error code");
            e = expectThrows(KeeperException.class, "CREATOR_ALL_ACL without auth",
                    () -> other.create(base + "/acl2", null, Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT));
            eq(KeeperException.Code.INVALIDACL, e.code(), "CREATOR_ALL_ACL without auth error code");
            other.addAuthInfo("digest", b("alice:wrong"));
            e = expectThrows(KeeperException.class, "wrong password read",
                    () -> other.getData(p, false, null));
            eq(KeeperException.Code.NOAUTH, e.code(), "wrong password read error code");
            other.addAuthInfo("digest", b(user));
            eq(b("private"), other.getData(p, false, null), "read after addAuthInfo");

            // Explicit digest ACL: only read for bob, everything for alice.
            String bob = "bob:pw";
            List<ACL> mixed = Arrays.asList(
                    new ACL(Perms.READ, new Id("digest", DigestAuthenticationProvider.generateDigest(bob))),
                    new ACL(Perms.ALL, new Id("digest", digest)));
            st = zk.setACL(p, mixed, 0);
            eq(1, st.getAversion(), "aversion after setACL");
            e = expectThrows(KeeperException.class, "setACL stale version", () -> zk.setACL(p, mixed, 0));
            eq(KeeperException.Code.BADVERSION, e.code(), "setACL stale version error code");
            eq(mixed, zk.getACL(p, new Stat()), "getACL after setACL");
            ZooKeeper bobZk = open(null);
            bobZk.addAuthInfo("digest", b(bob));
            eq(b("private"), bobZk.getData(p, false, null), "bob can read");
            e = expectThrows(KeeperException.class, "bob write", () -> bobZk.setData(p, b("x"), -1));
            eq(KeeperException.Code.NOAUTH, e.code(), "bob write error code");
            e = expectThrows(KeeperException.class, "bob create child",
                    () -> bobZk.create(p + "/c", null, OPEN, CreateMode.PERSISTENT));
            eq(KeeperException.Code.NOAUTH, e.code(), "bob create child error code");
            e = expectThrows(KeeperException.class, "bob setACL",
                    () -> bobZk.setACL(p, OPEN, -1));
            eq(KeeperException.Code.NOAUTH, e.code(), "bob setACL error code");

            // World read-only node.
            String ro = base + "/ro";
            zk.create(ro, b("r"), Ids.READ_ACL_UNSAFE, CreateMode.PERSISTENT);
            e = expectThrows(KeeperException.class, "write read-only", () -> zk.setData(ro, b("x"), -1));
            eq(KeeperException.Code.NOAUTH, e.code(), "write read-only error code");
            eq(Ids.READ_ACL_UNSAFE, zk.getACL(ro, null), "getACL read-only");
            e = expectThrows(KeeperException.class, "invalid ACL scheme",
                    () -> zk.create(base + "/bad", null,
                            Collections.singletonList(new ACL(Perms.ALL, new Id("nosuchscheme", "x"))),
                            CreateMode.PERSISTENT));
            eq(KeeperException.Code.INVALIDACL, e.code(), "invalid ACL scheme error code");
            other.close();
            bobZk.close();
        });

        test("auth-failed-unknown-scheme", () -> {
            Recorder r = new Recorder();
            ZooKeeper z = open(r);
            r.events.clear();
            z.addAuthInfo("nosuchscheme", b("x"));
            WatchedEvent ev = r.next("AuthFailed event");
            eq(KeeperState.AuthFailed, ev.getState(), "state after unknown auth scheme");
            z.close();
        });

        test("whoAmI", () -> {
            ZooKeeper z = open(null);
            List<ClientInfo> infos = z.whoAmI();
            Set<String> got = new HashSet<>();
            for (ClientInfo ci : infos) {
                got.add(ci.getAuthScheme() + ":" + ci.getUser());
            }
            eq(set("ip:127.0.0.1"), got, "whoAmI of a fresh session");
            z.addAuthInfo("digest", b("carol:pw"));
            got.clear();
            for (ClientInfo ci : z.whoAmI()) {
                got.add(ci.getAuthScheme() + ":" + ci.getUser());
            }
            eq(set("ip:127.0.0.1", "digest:carol"), got, "whoAmI after addAuthInfo");
            z.close();
        });

        test("sync", () -> {
            CountDownLatch done = new CountDownLatch(1);
            AtomicReference<String> got = new AtomicReference<>();
            zk.sync(base, (rc, path, ctx) -> {
                got.set(rc + " " + path + " " + ctx);
                done.countDown();
            }, "c");
            check(done.await(10, TimeUnit.SECONDS), "sync callback not called");
            eq("0 " + base + " c", got.get(), "sync rc, path, ctx");
        });

        test("addWatch-persistent-recursive", () -> {
            String r0 = base + "/r";
            Recorder r = new Recorder();
            // A session of its own, so a failure here cannot break the shared one.
            ZooKeeper w = open(null);
            w.addWatch(r0, r, AddWatchMode.PERSISTENT_RECURSIVE);
            zk.create(r0, null, OPEN, CreateMode.PERSISTENT);
            r.expect(EventType.NodeCreated, r0, "create watched root");
            zk.create(r0 + "/a", null, OPEN, CreateMode.PERSISTENT);
            r.expect(EventType.NodeCreated, r0 + "/a", "create child");
            zk.create(r0 + "/a/b", b("1"), OPEN, CreateMode.PERSISTENT);
            r.expect(EventType.NodeCreated, r0 + "/a/b", "create grandchild");
            zk.setData(r0 + "/a/b", b("2"), -1);
            r.expect(EventType.NodeDataChanged, r0 + "/a/b", "setData grandchild");
            zk.setData(r0 + "/a/b", b("3"), -1);
            r.expect(EventType.NodeDataChanged, r0 + "/a/b", "second setData (watch is persistent)");
            zk.delete(r0 + "/a/b", -1);
            r.expect(EventType.NodeDeleted, r0 + "/a/b", "delete grandchild");
            zk.create(base + "/rsibling", null, OPEN, CreateMode.PERSISTENT);
            zk.create(base + "/r-not-under", null, OPEN, CreateMode.PERSISTENT);
            r.expectQuiet("nodes outside the watched subtree");
            w.removeWatches(r0, r, Watcher.WatcherType.Any, false);
            WatchedEvent ev = r.next("removeWatches notification");
            eq(EventType.PersistentWatchRemoved + " " + r0, ev.getType() + " " + ev.getPath(),
                    "removeWatches notification");
            zk.create(r0 + "/after", null, OPEN, CreateMode.PERSISTENT);
            r.expectQuiet("no events after removeWatches");
            w.close();
        });

        test("addWatch-persistent", () -> {
            String p = base + "/pw";
            Recorder r = new Recorder();
            ZooKeeper w = open(null);
            w.addWatch(p, r, AddWatchMode.PERSISTENT);
            zk.create(p, null, OPEN, CreateMode.PERSISTENT);
            r.expect(EventType.NodeCreated, p, "create");
            zk.create(p + "/k", null, OPEN, CreateMode.PERSISTENT);
            r.expect(EventType.NodeChildrenChanged, p, "child create");
            zk.create(p + "/k/g", null, OPEN, CreateMode.PERSISTENT);
            r.expectQuiet("grandchild is not watched by PERSISTENT");
            zk.setData(p, b("x"), -1);
            r.expect(EventType.NodeDataChanged, p, "setData");
            zk.setData(p, b("y"), -1);
            r.expect(EventType.NodeDataChanged, p, "second setData");
            w.removeAllWatches(p, Watcher.WatcherType.Any, false);
            WatchedEvent ev = r.next("removeAllWatches notification");
            eq(EventType.PersistentWatchRemoved, ev.getType(), "removeAllWatches notification type");
            w.close();
        });

        test("removeWatches", () -> {
            String p = base + "/rw";
            zk.create(p, b("0"), OPEN, CreateMode.PERSISTENT);
            Recorder r = new Recorder();
            zk.getData(p, r, null);
            zk.removeWatches(p, r, Watcher.WatcherType.Data, false);
            r.expect(EventType.DataWatchRemoved, p, "data watch removed");
            zk.setData(p, b("1"), -1);
            r.expectQuiet("no data event after removal");
            zk.getChildren(p, r);
            zk.removeWatches(p, r, Watcher.WatcherType.Children, false);
            r.expect(EventType.ChildWatchRemoved, p, "child watch removed");
            zk.create(p + "/c", null, OPEN, CreateMode.PERSISTENT);
            r.expectQuiet("no child event after removal");
            Recorder r2 = new Recorder();
            zk.exists(p, r2);
            zk.getChildren(p, r2);
            zk.removeAllWatches(p, Watcher.WatcherType.Any, false);
            Set<EventType> types = new HashSet<>();
            types.add(r2.next("first removal event").getType());
            types.add(r2.next("second removal event").getType());
            eq(new HashSet<>(Arrays.asList(EventType.DataWatchRemoved, EventType.ChildWatchRemoved)), types,
                    "removeAllWatches(Any) events");
            KeeperException e = expectThrows(KeeperException.class, "removeWatches with no watch",
                    () -> zk.removeWatches(p, r2, Watcher.WatcherType.Data, false));
            eq(KeeperException.Code.NOWATCHER, e.code(), "no watcher error code");
        });

        test("reconnect-restores-watches", () -> {
            // Not a connection-drop test of the server as such: the client's
            // reconnect sends SetWatches, whose reply must echo the request xid.
            String p = base + "/rc";
            zk.create(p, b("0"), OPEN, CreateMode.PERSISTENT);
            Recorder def = new Recorder();
            ZooKeeper w = open(def);
            Recorder data = new Recorder();
            Recorder exist = new Recorder();
            Recorder kids = new Recorder();
            w.getData(p, data, null);
            check(w.exists(p + "/new", exist) == null, "exists should be null");
            w.getChildren(p, kids);
            def.events.clear();
            dropConnection(w);
            awaitReconnect(def);
            eq(b("0"), w.getData(p, false, null), "getData after reconnect");
            zk.setData(p, b("1"), -1);
            data.expect(EventType.NodeDataChanged, p, "data watch after reconnect");
            zk.create(p + "/new", null, OPEN, CreateMode.PERSISTENT);
            exist.expect(EventType.NodeCreated, p + "/new", "exists watch after reconnect");
            kids.expect(EventType.NodeChildrenChanged, p, "child watch after reconnect");
            eq(ZooKeeper.States.CONNECTED, w.getState(), "state at the end");
            w.close();
        });

        test("reconnect-restores-persistent-watches", () -> {
            String p = base + "/rcp";
            Recorder def = new Recorder();
            ZooKeeper w = open(def);
            Recorder r = new Recorder();
            w.addWatch(p, r, AddWatchMode.PERSISTENT_RECURSIVE);
            def.events.clear();
            dropConnection(w);
            awaitReconnect(def);
            check(w.exists(p, false) == null, "exists after reconnect");
            zk.create(p, null, OPEN, CreateMode.PERSISTENT);
            r.expect(EventType.NodeCreated, p, "persistent recursive watch after reconnect");
            zk.create(p + "/x", null, OPEN, CreateMode.PERSISTENT);
            r.expect(EventType.NodeCreated, p + "/x", "persistent recursive watch after reconnect (child)");
            w.close();
        });

        test("getEphemerals", () -> {
            ZooKeeper z = open(null);
            String d = base + "/eph";
            zk.create(d, null, OPEN, CreateMode.PERSISTENT);
            z.create(d + "/a", null, OPEN, CreateMode.EPHEMERAL);
            z.create(d + "/b", null, OPEN, CreateMode.EPHEMERAL);
            z.create(base + "/eph-elsewhere", null, OPEN, CreateMode.EPHEMERAL);
            zk.create(d + "/mine", null, OPEN, CreateMode.EPHEMERAL);
            eq(set(d + "/a", d + "/b", base + "/eph-elsewhere"), new HashSet<>(z.getEphemerals()),
                    "getEphemerals()");
            // The prefix is a plain string prefix, not a path prefix.
            eq(set(d + "/a", d + "/b", base + "/eph-elsewhere"), new HashSet<>(z.getEphemerals(d)),
                    "getEphemerals(prefix)");
            eq(set(d + "/b"), new HashSet<>(z.getEphemerals(d + "/b")), "getEphemerals(exact path)");
            eq(set(), new HashSet<>(z.getEphemerals("/no-such-prefix")), "getEphemerals(unmatched prefix)");
            z.close();
        });

        test("getAllChildrenNumber", () -> {
            String d = base + "/cnt";
            zk.create(d, null, OPEN, CreateMode.PERSISTENT);
            zk.create(d + "/a", null, OPEN, CreateMode.PERSISTENT);
            zk.create(d + "/a/b", null, OPEN, CreateMode.PERSISTENT);
            zk.create(d + "/a/b/c", null, OPEN, CreateMode.PERSISTENT);
            zk.create(d + "/z", null, OPEN, CreateMode.PERSISTENT);
            eq(4, zk.getAllChildrenNumber(d), "getAllChildrenNumber");
            eq(1, zk.getAllChildrenNumber(d + "/a/b"), "getAllChildrenNumber of a/b");
            eq(0, zk.getAllChildrenNumber(d + "/z"), "getAllChildrenNumber of leaf");
            KeeperException e = expectThrows(KeeperException.class, "getAllChildrenNumber missing",
                    () -> zk.getAllChildrenNumber(d + "/missing"));
            eq(KeeperException.Code.NONODE, e.code(), "getAllChildrenNumber missing error code");
        });

        test("ephemeral-removed-on-close", () -> {
            ZooKeeper z = open(null);
            String p = base + "/gone";
            z.create(p, b("x"), OPEN, CreateMode.EPHEMERAL);
            Recorder r = new Recorder();
            Recorder cr = new Recorder();
            check(zk.exists(p, r) != null, "ephemeral not visible to other session");
            zk.getChildren(base, cr);
            z.close();
            r.expect(EventType.NodeDeleted, p, "other session sees NodeDeleted");
            cr.expect(EventType.NodeChildrenChanged, base, "other session sees NodeChildrenChanged");
            check(zk.exists(p, false) == null, "ephemeral still exists after close");
        });

        test("session-reattach", () -> {
            Recorder ra = new Recorder();
            ZooKeeper a = open(ra);
            long id = a.getSessionId();
            byte[] pw = a.getSessionPasswd();
            String p = base + "/reattach";
            a.create(p, b("x"), OPEN, CreateMode.EPHEMERAL);
            // Drop a's socket without closing the session on the server.
            a.getTestable().injectSessionExpiration();

            // Wrong password: the server refuses and the client sees Expired,
            // but the session itself lives on.
            Recorder rc = new Recorder();
            byte[] bad = pw.clone();
            bad[0] ^= 0x5a;
            ZooKeeper c = new ZooKeeper(connect, SESSION_TIMEOUT, rc, id, bad);
            extra.add(c);
            WatchedEvent ev = rc.next("wrong-password connection event");
            eq(KeeperState.Expired, ev.getState(), "state with a wrong session password");
            c.close();
            check(zk.exists(p, false) != null, "wrong-password attempt must not kill the session");

            Recorder rb = new Recorder();
            ZooKeeper re = new ZooKeeper(connect, SESSION_TIMEOUT, rb, id, pw);
            extra.add(re);
            ev = rb.next("re-attach connection event");
            eq(KeeperState.SyncConnected, ev.getState(), "re-attach state");
            eq(id, re.getSessionId(), "re-attached session id");
            Stat st = re.exists(p, false);
            check(st != null, "ephemeral missing after re-attach");
            eq(id, st.getEphemeralOwner(), "ephemeral owner after re-attach");
            re.create(p + "2", null, OPEN, CreateMode.EPHEMERAL);
            eq(set(p, p + "2"), new HashSet<>(re.getEphemerals(p)), "ephemerals of re-attached session");

            Recorder watch = new Recorder();
            zk.exists(p, watch);
            re.close();
            watch.expect(EventType.NodeDeleted, p, "ephemeral deleted after close of re-attached session");
            check(zk.exists(p + "2", false) == null, "second ephemeral still exists");

            // A closed session cannot be re-attached.
            Recorder rd = new Recorder();
            ZooKeeper d = new ZooKeeper(connect, SESSION_TIMEOUT, rd, id, pw);
            extra.add(d);
            ev = rd.next("re-attach to closed session");
            eq(KeeperState.Expired, ev.getState(), "state when re-attaching a closed session");
            d.close();
        });

        test("session-expiry-removes-ephemerals", () -> {
            CountDownLatch connected = new CountDownLatch(1);
            ZooKeeper z = new ZooKeeper(connect, 4000, e -> {
                if (e.getState() == KeeperState.SyncConnected) {
                    connected.countDown();
                }
            });
            extra.add(z);
            check(connected.await(10, TimeUnit.SECONDS), "not connected");
            String p = base + "/expiring";
            z.create(p, null, OPEN, CreateMode.EPHEMERAL);
            Recorder r = new Recorder();
            zk.exists(p, r);
            long t0 = System.nanoTime();
            z.getTestable().injectSessionExpiration();
            WatchedEvent ev = r.events.poll(15, TimeUnit.SECONDS);
            check(ev != null, "ephemeral of an abandoned session (timeout " + z.getSessionTimeout()
                    + " ms) not deleted within 15 s");
            eq(EventType.NodeDeleted + " " + p, ev.getType() + " " + ev.getPath(), "expiry event");
            long ms = (System.nanoTime() - t0) / 1_000_000;
            check(ms >= z.getSessionTimeout() / 2, "expired too early: after " + ms + " ms");
        });

        test("cleanup", () -> {
            org.apache.zookeeper.ZKUtil.deleteRecursive(zk, base);
            check(zk.exists(base, false) == null, "base still exists");
        });

        for (ZooKeeper z : new ArrayList<>(extra)) {
            try {
                z.close(2000);
            } catch (Exception ignored) {
                // best effort
            }
        }
        finish();
    }
}

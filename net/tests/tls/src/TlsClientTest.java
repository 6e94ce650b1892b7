import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

/**
 * Apache ZooKeeper's own Java client over TLS. The TLS settings are the
 * client's system properties, set by run-java.sh (zookeeper.client.secure,
 * zookeeper.clientCnxnSocket=ClientCnxnSocketNetty, zookeeper.ssl.keyStore.*,
 * zookeeper.ssl.trustStore.*); this program only uses the ZooKeeper API.
 *
 *   java TlsClientTest HOST:PORT                   session, ephemeral + persistent
 *                                                  znodes, a watch, set, read back
 *   java TlsClientTest --expect-refused NAME HOST:PORT
 *                                                  no session within a few seconds
 *
 * Prints one PASS/FAIL line per check; exits 1 if any check failed.
 */
public class TlsClientTest {
    static final int SESSION_TIMEOUT_MS = 15000;
    static final long CONNECT_WAIT_S = 20;
    static final long REFUSED_WAIT_S = 6;
    static final long EVENT_WAIT_S = 10;

    static int failed = 0;

    static void pass(String name) {
        System.out.println("PASS TlsClientTest." + name);
    }

    static void fail(String name, String why) {
        failed++;
        System.out.println("FAIL TlsClientTest." + name + ": " + why);
    }

    static void check(String name, boolean ok, String why) {
        if (ok) {
            pass(name);
        } else {
            fail(name, why);
        }
    }

    /** A client whose connection events go to `connected`, other events to `events`. */
    static ZooKeeper connect(String server, CountDownLatch connected, LinkedBlockingQueue<WatchedEvent> events)
            throws Exception {
        return new ZooKeeper(server, SESSION_TIMEOUT_MS, event -> {
            if (event.getType() == Watcher.Event.EventType.None) {
                if (event.getState() == Watcher.Event.KeeperState.SyncConnected) {
                    connected.countDown();
                }
            } else if (events != null) {
                events.add(event);
            }
        });
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String str(byte[] b) {
        return b == null ? "null" : new String(b, StandardCharsets.UTF_8);
    }

    static void expectRefused(String name, String server) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = connect(server, connected, null);
        try {
            boolean ok = !connected.await(REFUSED_WAIT_S, TimeUnit.SECONDS);
            check("refused." + name, ok, "got a session 0x" + Long.toHexString(zk.getSessionId()));
        } finally {
            zk.close();
        }
    }

    static void crud(String server) throws Exception {
        String base = "/tls-java-" + UUID.randomUUID().toString().substring(0, 8);
        String eph = base + "/ephemeral";

        LinkedBlockingQueue<WatchedEvent> events = new LinkedBlockingQueue<>();
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = connect(server, connected, events);
        long sessionId;
        try {
            if (!connected.await(CONNECT_WAIT_S, TimeUnit.SECONDS)) {
                fail("connect", "no SyncConnected within " + CONNECT_WAIT_S + " s");
                return;
            }
            sessionId = zk.getSessionId();
            check("connect", sessionId != 0, "session id 0");

            String created = zk.create(base, bytes("persistent"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            check("create.persistent", created.equals(base), "created " + created);
            created = zk.create(eph, bytes("ephemeral"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            check("create.ephemeral", created.equals(eph), "created " + created);
            Stat st = zk.exists(eph, false);
            check("ephemeral.owner", st != null && st.getEphemeralOwner() == sessionId,
                    "stat " + st + ", session 0x" + Long.toHexString(sessionId));
            List<String> eps = zk.getEphemerals(base);
            check("getEphemerals", eps.equals(List.of(eph)), "got " + eps);

            Stat stat = new Stat();
            byte[] data = zk.getData(base, true, stat);
            check("getData.watch", str(data).equals("persistent") && stat.getVersion() == 0,
                    "data " + str(data) + " version " + stat.getVersion());
            Stat set = zk.setData(base, bytes("changed over TLS"), 0);
            check("setData", set.getVersion() == 1, "version " + set.getVersion());
            WatchedEvent ev = events.poll(EVENT_WAIT_S, TimeUnit.SECONDS);
            check("watch.fired", ev != null && ev.getType() == Watcher.Event.EventType.NodeDataChanged
                    && base.equals(ev.getPath()), "event " + ev);
            data = zk.getData(base, false, stat);
            check("readBack", str(data).equals("changed over TLS") && stat.getVersion() == 1,
                    "data " + str(data) + " version " + stat.getVersion());
        } finally {
            zk.close();
        }

        // A second TLS session: the first one's ephemeral node went with it,
        // the persistent node stayed.
        CountDownLatch connected2 = new CountDownLatch(1);
        ZooKeeper zk2 = connect(server, connected2, null);
        try {
            if (!connected2.await(CONNECT_WAIT_S, TimeUnit.SECONDS)) {
                fail("reconnect", "no SyncConnected within " + CONNECT_WAIT_S + " s");
                return;
            }
            check("reconnect.newSession", zk2.getSessionId() != sessionId, "same session id");
            check("ephemeral.goneWithSession", zk2.exists(eph, false) == null, eph + " still exists");
            byte[] data = zk2.getData(base, false, null);
            check("persistent.kept", str(data).equals("changed over TLS"), "data " + str(data));
            try {
                zk2.delete(base, 1);
                pass("delete");
            } catch (KeeperException e) {
                fail("delete", e.toString());
            }
        } finally {
            zk2.close();
        }
    }

    public static void main(String[] args) throws Exception {
        // Nothing here may hang the script: a watchdog ends the JVM.
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(120_000);
                System.out.println("FAIL TlsClientTest.watchdog: still running after 120 s");
                System.exit(1);
            } catch (InterruptedException e) {
                // done in time
            }
        });
        watchdog.setDaemon(true);
        watchdog.start();
        try {
            if (args.length == 3 && args[0].equals("--expect-refused")) {
                expectRefused(args[1], args[2]);
            } else if (args.length == 1) {
                crud(args[0]);
            } else {
                System.err.println("usage: TlsClientTest HOST:PORT | --expect-refused NAME HOST:PORT");
                System.exit(2);
            }
        } catch (Exception e) {
            fail("exception", e.toString());
        }
        System.exit(failed == 0 ? 0 : 1);
    }
}

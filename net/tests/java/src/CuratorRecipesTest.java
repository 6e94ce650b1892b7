import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.TreeCache;
import org.apache.curator.framework.recipes.cache.TreeCacheEvent;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.queue.SimpleDistributedQueue;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.data.Stat;

/**
 * Drives a server with Apache Curator's framework and recipes.
 * Usage: CuratorRecipesTest host:port [globalTimeoutSec]
 */
public class CuratorRecipesTest extends TestBase {
    final String connect;
    final String base = "/curator-" + System.currentTimeMillis();
    final List<AutoCloseable> closeAtEnd = Collections.synchronizedList(new ArrayList<>());
    CuratorFramework client;

    CuratorRecipesTest(String connect, long timeoutSec) {
        super("CuratorRecipesTest", timeoutSec, 30);
        this.connect = connect;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: CuratorRecipesTest host:port [globalTimeoutSec]");
            System.exit(2);
        }
        System.setProperty("zookeeper.request.timeout", "10000");
        long timeout = args.length > 1 ? Long.parseLong(args[1]) : 90;
        new CuratorRecipesTest(args[0], timeout).runAll();
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String s(byte[] d) {
        return d == null ? null : new String(d, StandardCharsets.UTF_8);
    }

    CuratorFramework newClient() throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(connect, 10000, 10000, new RetryNTimes(3, 500));
        closeAtEnd.add(c);
        c.start();
        check(c.blockUntilConnected(10, TimeUnit.SECONDS), "Curator client did not connect within 10 s");
        return c;
    }

    static void waitFor(String what, long ms, java.util.function.BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + ms;
        while (!cond.getAsBoolean()) {
            if (System.currentTimeMillis() > deadline) {
                throw new AssertionError(what + " (waited " + ms + " ms)");
            }
            Thread.sleep(50);
        }
    }

    static int leaders(List<LeaderLatch> latches) {
        int n = 0;
        for (LeaderLatch l : latches) {
            if (l.hasLeadership()) {
                n++;
            }
        }
        return n;
    }

    void runAll() {
        test("connect", () -> {
            client = newClient();
            client.checkExists().forPath("/");
        });
        if (client == null) {
            finish();
            return;
        }

        test("framework-basics", () -> {
            String p = base + "/basic/a/b";
            client.create().creatingParentsIfNeeded().forPath(p, b("v0"));
            eq("v0", s(client.getData().forPath(p)), "getData");
            Stat st = client.setData().withVersion(0).forPath(p, b("v1"));
            eq(1, st.getVersion(), "setData version");
            expectThrows(org.apache.zookeeper.KeeperException.BadVersionException.class, "stale setData",
                    () -> client.setData().withVersion(0).forPath(p, b("v2")));
            String seq = client.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(base + "/basic/e-");
            check(seq.startsWith(base + "/basic/e-00000"), "sequential path " + seq);
            client.create().creatingParentContainersIfNeeded().forPath(base + "/containers/x/y", b("y"));
            eq(Arrays.asList("x"), client.getChildren().forPath(base + "/containers"), "container parents");
            // Curator's protected mode (GUID-prefixed name, find-after-connection-loss).
            String prot = client.create().withProtection().withMode(CreateMode.EPHEMERAL_SEQUENTIAL)
                    .forPath(base + "/basic/lock-");
            check(prot.contains("_c_") && client.checkExists().forPath(prot) != null, "protected create " + prot);
            client.delete().deletingChildrenIfNeeded().forPath(base + "/basic");
            check(client.checkExists().forPath(base + "/basic") == null, "deletingChildrenIfNeeded");
        });

        test("transaction", () -> {
            String p = base + "/tx";
            CuratorOp c1 = client.transactionOp().create().forPath(p, b("t"));
            CuratorOp c2 = client.transactionOp().create().forPath(p + "/child", b("c"));
            CuratorOp c3 = client.transactionOp().setData().forPath(p, b("t2"));
            List<CuratorTransactionResult> res = client.transaction().forOperations(c1, c2, c3);
            eq(3, res.size(), "transaction results");
            eq(p + "/child", res.get(1).getResultPath(), "result path");
            eq("t2", s(client.getData().forPath(p)), "data after transaction");
            CuratorOp bad1 = client.transactionOp().create().forPath(p + "/new");
            CuratorOp bad2 = client.transactionOp().check().withVersion(42).forPath(p);
            expectThrows(org.apache.zookeeper.KeeperException.BadVersionException.class, "failing transaction",
                    () -> client.transaction().forOperations(bad1, bad2));
            check(client.checkExists().forPath(p + "/new") == null, "failed transaction was not atomic");
        });

        test("leader-latch", () -> {
            String path = base + "/leader";
            List<LeaderLatch> latches = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                LeaderLatch l = new LeaderLatch(newClient(), path, "p" + i);
                latches.add(l);
                closeAtEnd.add(l);
                l.start();
            }
            waitFor("exactly one leader among 3 (have " + leaders(latches) + ")", 10000,
                    () -> leaders(latches) == 1);
            Thread.sleep(500);
            eq(1, leaders(latches), "leaders after settling");
            LeaderLatch leader = null;
            for (LeaderLatch l : latches) {
                if (l.hasLeadership()) {
                    leader = l;
                }
            }
            for (LeaderLatch l : latches) {
                Participant p = l.getLeader();
                eq(leader.getId(), p.getId(), "getLeader() seen by " + l.getId());
            }
            eq(3, leader.getParticipants().size(), "participants");
            leader.close();
            List<LeaderLatch> rest = new ArrayList<>(latches);
            rest.remove(leader);
            waitFor("a new leader after the leader closed (have " + leaders(rest) + ")", 10000,
                    () -> leaders(rest) == 1);
            Thread.sleep(300);
            eq(1, leaders(rest), "leaders after failover");
            for (LeaderLatch l : rest) {
                l.close();
            }
        });

        test("interprocess-mutex", () -> {
            String lockPath = base + "/lock";
            String counter = base + "/counter";
            client.create().creatingParentsIfNeeded().forPath(counter, b("0"));
            ExecutorService pool = Executors.newFixedThreadPool(2);
            List<Future<?>> fs = new ArrayList<>();
            AtomicInteger inside = new AtomicInteger();
            AtomicInteger overlap = new AtomicInteger();
            for (int t = 0; t < 2; t++) {
                CuratorFramework c = newClient();
                InterProcessMutex m = new InterProcessMutex(c, lockPath);
                fs.add(pool.submit(() -> {
                    for (int i = 0; i < 50; i++) {
                        check(m.acquire(10, TimeUnit.SECONDS), "acquire timed out");
                        try {
                            if (inside.incrementAndGet() != 1) {
                                overlap.incrementAndGet();
                            }
                            int v = Integer.parseInt(s(c.getData().forPath(counter)));
                            Thread.yield();
                            c.setData().forPath(counter, b(Integer.toString(v + 1)));
                            inside.decrementAndGet();
                        } finally {
                            m.release();
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : fs) {
                f.get(25, TimeUnit.SECONDS);
            }
            pool.shutdown();
            eq(0, overlap.get(), "times two holders were inside the lock at once");
            eq("100", s(client.getData().forPath(counter)), "counter after 2x50 locked increments");
            // Re-entrancy and tryLock semantics.
            InterProcessMutex a = new InterProcessMutex(client, lockPath);
            InterProcessMutex other = new InterProcessMutex(newClient(), lockPath);
            check(a.acquire(5, TimeUnit.SECONDS), "acquire");
            check(a.acquire(5, TimeUnit.SECONDS), "re-entrant acquire");
            check(!other.acquire(300, TimeUnit.MILLISECONDS), "second client acquired a held lock");
            a.release();
            check(!other.acquire(300, TimeUnit.MILLISECONDS), "lock released too early (re-entrancy)");
            a.release();
            check(other.acquire(5, TimeUnit.SECONDS), "second client could not acquire a free lock");
            other.release();
            // The lock's parent is a container and may already be gone.
            if (client.checkExists().forPath(lockPath) != null) {
                try {
                    eq(Collections.emptyList(), client.getChildren().forPath(lockPath), "lock nodes left behind");
                } catch (org.apache.zookeeper.KeeperException.NoNodeException gone) {
                    // removed by the container manager in between
                }
            }
        });

        test("simple-distributed-queue", () -> {
            CuratorFramework producer = newClient();
            CuratorFramework consumer = newClient();
            SimpleDistributedQueue qp = new SimpleDistributedQueue(producer, base + "/queue");
            SimpleDistributedQueue qc = new SimpleDistributedQueue(consumer, base + "/queue");
            check(qc.poll() == null, "poll of an empty queue should be null");
            for (int i = 0; i < 10; i++) {
                check(qp.offer(b("item-" + i)), "offer " + i);
            }
            for (int i = 0; i < 10; i++) {
                eq("item-" + i, s(qc.take()), "take " + i);
            }
            check(qc.poll() == null, "queue should be empty");
            // A blocked take() is woken by a later offer.
            ExecutorService ex = Executors.newSingleThreadExecutor();
            Future<byte[]> f = ex.submit(() -> qc.poll(10, TimeUnit.SECONDS));
            Thread.sleep(300);
            qp.offer(b("late"));
            eq("late", s(f.get(12, TimeUnit.SECONDS)), "blocked poll woken by offer");
            ex.shutdown();
        });

        test("distributed-barrier", () -> {
            String path = base + "/barrier";
            DistributedBarrier owner = new DistributedBarrier(client, path);
            owner.setBarrier();
            DistributedBarrier waiter = new DistributedBarrier(newClient(), path);
            check(!waiter.waitOnBarrier(300, TimeUnit.MILLISECONDS), "passed a set barrier");
            ExecutorService ex = Executors.newSingleThreadExecutor();
            Future<Boolean> f = ex.submit(() -> waiter.waitOnBarrier(10, TimeUnit.SECONDS));
            Thread.sleep(300);
            check(!f.isDone(), "waiter returned before removeBarrier");
            owner.removeBarrier();
            eq(true, f.get(12, TimeUnit.SECONDS), "waitOnBarrier after removeBarrier");
            ex.shutdown();
        });

        test("distributed-double-barrier", () -> {
            String path = base + "/dbarrier";
            int n = 3;
            ExecutorService ex = Executors.newFixedThreadPool(n);
            AtomicInteger entered = new AtomicInteger();
            AtomicInteger earlyExit = new AtomicInteger();
            List<Future<Boolean>> fs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                DistributedDoubleBarrier bar = new DistributedDoubleBarrier(newClient(), path, n);
                final int delay = i * 200;
                fs.add(ex.submit(() -> {
                    Thread.sleep(delay);
                    entered.incrementAndGet();
                    boolean in = bar.enter(10, TimeUnit.SECONDS);
                    if (entered.get() != n) {
                        earlyExit.incrementAndGet();
                    }
                    boolean out = bar.leave(10, TimeUnit.SECONDS);
                    return in && out;
                }));
            }
            for (int i = 0; i < n; i++) {
                eq(true, fs.get(i).get(25, TimeUnit.SECONDS), "member " + i + " enter && leave");
            }
            eq(0, earlyExit.get(), "members that passed enter() before all arrived");
            ex.shutdown();
        });

        test("shared-count-and-atomic-long", () -> {
            SharedCount sc = new SharedCount(client, base + "/shared", 5);
            closeAtEnd.add(sc);
            sc.start();
            eq(5, sc.getCount(), "initial SharedCount");
            org.apache.curator.framework.recipes.shared.VersionedValue<Integer> v0 = sc.getVersionedValue();
            check(sc.trySetCount(v0, 6), "trySetCount with current version");
            check(!sc.trySetCount(v0, 7), "trySetCount with a stale version should fail");
            waitFor("SharedCount sees its own update", 5000, () -> sc.getCount() == 6);
            DistributedAtomicLong al = new DistributedAtomicLong(client, base + "/atomic", new RetryNTimes(50, 20));
            ExecutorService ex = Executors.newFixedThreadPool(2);
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < 2; t++) {
                DistributedAtomicLong mine = new DistributedAtomicLong(newClient(), base + "/atomic",
                        new RetryNTimes(100, 10));
                fs.add(ex.submit(() -> {
                    for (int i = 0; i < 20; i++) {
                        AtomicValue<Long> v = mine.increment();
                        check(v.succeeded(), "increment did not succeed");
                    }
                    return null;
                }));
            }
            for (Future<?> f : fs) {
                f.get(25, TimeUnit.SECONDS);
            }
            ex.shutdown();
            eq(40L, al.get().postValue(), "DistributedAtomicLong after 2x20 increments");
        });

        test("curator-cache", () -> {
            String path = base + "/cache";
            client.create().creatingParentsIfNeeded().forPath(path, b("root"));
            BlockingQueue<String> events = new LinkedBlockingQueue<>();
            CountDownLatch initialized = new CountDownLatch(1);
            // A client of its own, so a failure here cannot break the shared one.
            CuratorCache cache = CuratorCache.build(newClient(), path);
            closeAtEnd.add(cache);
            cache.listenable().addListener(CuratorCacheListener.builder()
                    .forCreates(n -> events.add("create " + n.getPath() + " " + s(n.getData())))
                    .forChanges((o, n) -> events.add("change " + n.getPath() + " " + s(o.getData()) + "->"
                            + s(n.getData())))
                    .forDeletes(o -> events.add("delete " + o.getPath()))
                    .forInitialized(initialized::countDown)
                    .build());
            cache.start();
            check(initialized.await(10, TimeUnit.SECONDS), "CuratorCache not initialized");
            eq("create " + path + " root", events.poll(5, TimeUnit.SECONDS), "initial event for the root");
            client.create().forPath(path + "/a", b("1"));
            eq("create " + path + "/a 1", events.poll(5, TimeUnit.SECONDS), "create event");
            client.create().forPath(path + "/a/deep", b("d"));
            eq("create " + path + "/a/deep d", events.poll(5, TimeUnit.SECONDS), "create event (grandchild)");
            client.setData().forPath(path + "/a", b("2"));
            eq("change " + path + "/a 1->2", events.poll(5, TimeUnit.SECONDS), "change event");
            client.delete().forPath(path + "/a/deep");
            eq("delete " + path + "/a/deep", events.poll(5, TimeUnit.SECONDS), "delete event (grandchild)");
            client.delete().forPath(path + "/a");
            eq("delete " + path + "/a", events.poll(5, TimeUnit.SECONDS), "delete event");
            check(!cache.get(path + "/a").isPresent(), "deleted node still in cache");
            eq(1L, (long) cache.size(), "cache size");
            cache.close();
        });

        test("tree-cache", () -> {
            String path = base + "/tree";
            client.create().creatingParentsIfNeeded().forPath(path, b("root"));
            BlockingQueue<String> events = new LinkedBlockingQueue<>();
            TreeCache cache = TreeCache.newBuilder(newClient(), path).build();
            closeAtEnd.add(cache);
            cache.getListenable().addListener((c, e) -> {
                if (e.getType() == TreeCacheEvent.Type.INITIALIZED) {
                    events.add("initialized");
                } else if (e.getData() != null) {
                    events.add(e.getType() + " " + e.getData().getPath() + " " + s(e.getData().getData()));
                }
            });
            cache.start();
            eq("NODE_ADDED " + path + " root", events.poll(5, TimeUnit.SECONDS), "initial event");
            eq("initialized", events.poll(5, TimeUnit.SECONDS), "initialized");
            client.create().forPath(path + "/x", b("1"));
            eq("NODE_ADDED " + path + "/x 1", events.poll(5, TimeUnit.SECONDS), "add event");
            client.setData().forPath(path + "/x", b("2"));
            eq("NODE_UPDATED " + path + "/x 2", events.poll(5, TimeUnit.SECONDS), "update event");
            client.delete().forPath(path + "/x");
            eq("NODE_REMOVED " + path + "/x 2", events.poll(5, TimeUnit.SECONDS), "remove event");
            cache.close();
        });

        test("leader-selector", () -> {
            String path = base + "/selector";
            AtomicInteger leading = new AtomicInteger();
            AtomicInteger overlap = new AtomicInteger();
            AtomicInteger terms = new AtomicInteger();
            List<org.apache.curator.framework.recipes.leader.LeaderSelector> sels = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                org.apache.curator.framework.recipes.leader.LeaderSelector sel =
                        new org.apache.curator.framework.recipes.leader.LeaderSelector(newClient(), path,
                                new org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter() {
                                    @Override
                                    public void takeLeadership(CuratorFramework c) throws Exception {
                                        if (leading.incrementAndGet() != 1) {
                                            overlap.incrementAndGet();
                                        }
                                        Thread.sleep(100);
                                        leading.decrementAndGet();
                                        terms.incrementAndGet();
                                    }
                                });
                sel.setId("s" + i);
                sel.autoRequeue();
                sels.add(sel);
                closeAtEnd.add(sel);
                sel.start();
            }
            waitFor("9 leadership terms among 3 selectors (have " + terms.get() + ")", 15000,
                    () -> terms.get() >= 9);
            for (org.apache.curator.framework.recipes.leader.LeaderSelector sel : sels) {
                sel.close();
            }
            eq(0, overlap.get(), "terms during which two selectors led at once");
        });

        test("semaphore-and-rwlock", () -> {
            String sem = base + "/sem";
            org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2 s1 =
                    new org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2(newClient(), sem, 2);
            org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2 s2 =
                    new org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2(newClient(), sem, 2);
            Collection<org.apache.curator.framework.recipes.locks.Lease> held = s1.acquire(2, 5, TimeUnit.SECONDS);
            check(held != null && held.size() == 2, "could not take both leases");
            check(s2.acquire(300, TimeUnit.MILLISECONDS) == null, "got a third lease of two");
            s1.returnAll(held);
            org.apache.curator.framework.recipes.locks.Lease l = s2.acquire(5, TimeUnit.SECONDS);
            check(l != null, "no lease after they were returned");
            s2.returnLease(l);

            String rw = base + "/rw";
            org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock a =
                    new org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock(newClient(), rw);
            org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock bLock =
                    new org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock(newClient(), rw);
            check(a.readLock().acquire(5, TimeUnit.SECONDS), "read lock a");
            check(bLock.readLock().acquire(5, TimeUnit.SECONDS), "read lock b while a reads");
            check(!bLock.writeLock().acquire(300, TimeUnit.MILLISECONDS), "write lock while another reads");
            a.readLock().release();
            bLock.readLock().release();
            check(bLock.writeLock().acquire(5, TimeUnit.SECONDS), "write lock once readers left");
            check(!a.readLock().acquire(300, TimeUnit.MILLISECONDS), "read lock while another writes");
            bLock.writeLock().release();
            check(a.readLock().acquire(5, TimeUnit.SECONDS), "read lock after the writer left");
            a.readLock().release();
        });

        test("distributed-queue", () -> {
            BlockingQueue<String> got = new LinkedBlockingQueue<>();
            org.apache.curator.framework.recipes.queue.QueueSerializer<String> ser =
                    new org.apache.curator.framework.recipes.queue.QueueSerializer<String>() {
                        public byte[] serialize(String item) {
                            return b(item);
                        }

                        public String deserialize(byte[] bytes) {
                            return s(bytes);
                        }
                    };
            org.apache.curator.framework.recipes.queue.QueueConsumer<String> consumer =
                    new org.apache.curator.framework.recipes.queue.QueueConsumer<String>() {
                        public void consumeMessage(String message) {
                            got.add(message);
                        }

                        public void stateChanged(CuratorFramework c,
                                org.apache.curator.framework.state.ConnectionState st) {
                        }
                    };
            org.apache.curator.framework.recipes.queue.DistributedQueue<String> consumerQ =
                    org.apache.curator.framework.recipes.queue.QueueBuilder
                            .builder(newClient(), consumer, ser, base + "/dq").buildQueue();
            closeAtEnd.add(consumerQ);
            consumerQ.start();
            org.apache.curator.framework.recipes.queue.DistributedQueue<String> producerQ =
                    org.apache.curator.framework.recipes.queue.QueueBuilder
                            .builder(newClient(), null, ser, base + "/dq").buildQueue();
            closeAtEnd.add(producerQ);
            producerQ.start();
            for (int i = 0; i < 10; i++) {
                producerQ.put("m" + i);
            }
            for (int i = 0; i < 10; i++) {
                eq("m" + i, got.poll(5, TimeUnit.SECONDS), "message " + i + " in order");
            }
            producerQ.close();
            consumerQ.close();
        });

        test("path-children-and-node-cache", () -> {
            String path = base + "/pcc";
            client.create().creatingParentsIfNeeded().forPath(path, b("r"));
            BlockingQueue<String> events = new LinkedBlockingQueue<>();
            org.apache.curator.framework.recipes.cache.PathChildrenCache pcc =
                    new org.apache.curator.framework.recipes.cache.PathChildrenCache(newClient(), path, true);
            closeAtEnd.add(pcc);
            pcc.getListenable().addListener((c, e) -> {
                if (e.getData() != null) {
                    events.add(e.getType() + " " + e.getData().getPath() + " " + s(e.getData().getData()));
                }
            });
            pcc.start(org.apache.curator.framework.recipes.cache.PathChildrenCache.StartMode.BUILD_INITIAL_CACHE);
            client.create().forPath(path + "/k", b("1"));
            eq("CHILD_ADDED " + path + "/k 1", events.poll(5, TimeUnit.SECONDS), "child added");
            client.setData().forPath(path + "/k", b("2"));
            eq("CHILD_UPDATED " + path + "/k 2", events.poll(5, TimeUnit.SECONDS), "child updated");
            client.delete().forPath(path + "/k");
            eq("CHILD_REMOVED " + path + "/k 2", events.poll(5, TimeUnit.SECONDS), "child removed");
            pcc.close();

            org.apache.curator.framework.recipes.cache.NodeCache nc =
                    new org.apache.curator.framework.recipes.cache.NodeCache(newClient(), path + "/nc");
            closeAtEnd.add(nc);
            BlockingQueue<String> changes = new LinkedBlockingQueue<>();
            nc.getListenable().addListener(() -> changes.add(nc.getCurrentData() == null ? "gone"
                    : s(nc.getCurrentData().getData())));
            nc.start(true);
            check(nc.getCurrentData() == null, "NodeCache of a missing node should be empty");
            client.create().forPath(path + "/nc", b("a"));
            eq("a", changes.poll(5, TimeUnit.SECONDS), "NodeCache create");
            client.setData().forPath(path + "/nc", b("b"));
            eq("b", changes.poll(5, TimeUnit.SECONDS), "NodeCache update");
            client.delete().forPath(path + "/nc");
            eq("gone", changes.poll(5, TimeUnit.SECONDS), "NodeCache delete");
            nc.close();
        });

        test("persistent-ephemeral-node", () -> {
            String path = base + "/pen";
            client.create().creatingParentsIfNeeded().forPath(path);
            CuratorFramework owner = newClient();
            org.apache.curator.framework.recipes.nodes.PersistentNode pn =
                    new org.apache.curator.framework.recipes.nodes.PersistentNode(owner, CreateMode.EPHEMERAL,
                            false, path + "/member", b("me"));
            closeAtEnd.add(pn);
            pn.start();
            check(pn.waitForInitialCreate(5, TimeUnit.SECONDS), "PersistentNode not created");
            Stat st = client.checkExists().forPath(path + "/member");
            check(st != null && st.getEphemeralOwner() == owner.getZookeeperClient().getZooKeeper().getSessionId(),
                    "PersistentNode is not an ephemeral of its client: " + st);
            // Someone deletes it: the recipe puts it back.
            client.delete().forPath(path + "/member");
            waitFor("PersistentNode re-created after deletion", 5000, () -> {
                try {
                    return client.checkExists().forPath(path + "/member") != null;
                } catch (Exception e) {
                    return false;
                }
            });
            pn.close();
            waitFor("PersistentNode removed on close", 5000, () -> {
                try {
                    return client.checkExists().forPath(path + "/member") == null;
                } catch (Exception e) {
                    return false;
                }
            });
        });

        test("cleanup", () -> {
            if (client.checkExists().forPath(base) == null) {
                return; // an empty container removed by the server
            }
            client.delete().deletingChildrenIfNeeded().forPath(base);
            check(client.checkExists().forPath(base) == null, "base still exists");
        });

        List<AutoCloseable> all = new ArrayList<>(closeAtEnd);
        Collections.reverse(all);
        for (AutoCloseable c : all) {
            try {
                c.close();
            } catch (Exception ignored) {
                // already closed or best effort
            }
        }
        finish();
    }
}

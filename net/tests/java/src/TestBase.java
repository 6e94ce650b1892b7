import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Tiny test harness shared by the Java client tests (no JUnit in Debian's
 * default set of jars we rely on). Each test case prints exactly one line,
 * "PASS name" or "FAIL name: reason"; the program prints a summary and exits
 * non-zero if anything failed. A watchdog thread halts the JVM after a global
 * timeout so a test can never hang CI.
 */
public abstract class TestBase {
    public interface Body {
        void run() throws Exception;
    }

    private int passed = 0;
    private int failed = 0;
    private final String suite;
    private final long perTestTimeoutMs;
    private final ExecutorService runner = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "test-body");
        t.setDaemon(true);
        return t;
    });

    protected TestBase(String suite, long globalTimeoutSec, long perTestTimeoutSec) {
        this.suite = suite;
        this.perTestTimeoutMs = perTestTimeoutSec * 1000;
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(globalTimeoutSec * 1000);
            } catch (InterruptedException e) {
                return;
            }
            synchronized (System.out) {
                System.out.println("FAIL " + suite + ".global-timeout: suite did not finish within "
                        + globalTimeoutSec + " s");
                System.out.println(suite + ": " + passed + " passed, " + (failed + 1) + " failed");
                System.out.flush();
            }
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
    }

    /** Runs one named test case with a per-test timeout; never throws. */
    protected void test(String name, Body body) {
        Future<?> f = runner.submit(() -> {
            body.run();
            return null;
        });
        String full = suite + "." + name;
        try {
            f.get(perTestTimeoutMs, TimeUnit.MILLISECONDS);
            pass(full);
        } catch (TimeoutException e) {
            f.cancel(true);
            fail(full, "timed out after " + perTestTimeoutMs / 1000 + " s");
        } catch (java.util.concurrent.ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof AssertionError) {
                fail(full, c.getMessage());
            } else {
                fail(full, "unexpected exception: " + c);
                if (System.getenv("JAVA_TEST_TRACES") != null) {
                    c.printStackTrace();
                }
            }
        } catch (InterruptedException e) {
            fail(full, "interrupted");
        }
    }

    /** Reports a test case that cannot run in this configuration; not counted. */
    protected synchronized void skip(String name, String why) {
        System.out.println("SKIP " + suite + "." + name + ": " + why);
        System.out.flush();
    }

    private synchronized void pass(String name) {
        passed++;
        System.out.println("PASS " + name);
        System.out.flush();
    }

    private synchronized void fail(String name, String why) {
        failed++;
        System.out.println("FAIL " + name + ": " + why);
        System.out.flush();
    }

    /** Prints the summary and exits; 0 only if every test passed. */
    protected void finish() {
        synchronized (System.out) {
            System.out.println(suite + ": " + passed + " passed, " + failed + " failed");
            System.out.flush();
        }
        Runtime.getRuntime().halt(failed == 0 && passed > 0 ? 0 : 1);
    }

    // ---- assertions ----------------------------------------------------

    public static void check(boolean cond, String msg) {
        if (!cond) {
            throw new AssertionError(msg);
        }
    }

    public static void eq(Object expected, Object actual, String what) {
        boolean same = (expected instanceof byte[] && actual instanceof byte[])
                ? Arrays.equals((byte[]) expected, (byte[]) actual)
                : Objects.equals(expected, actual);
        if (!same) {
            throw new AssertionError(what + ": expected <" + show(expected) + "> but got <" + show(actual) + ">");
        }
    }

    public static String show(Object o) {
        if (o instanceof byte[]) {
            return "bytes\"" + new String((byte[]) o, java.nio.charset.StandardCharsets.UTF_8) + "\"";
        }
        return String.valueOf(o);
    }

    /** Expects body to throw an exception of class cls (or a subclass). */
    public static <T extends Throwable> T expectThrows(Class<T> cls, String what, Body body) throws Exception {
        try {
            body.run();
        } catch (Throwable t) {
            if (cls.isInstance(t)) {
                return cls.cast(t);
            }
            throw new AssertionError(what + ": expected " + cls.getSimpleName() + " but got " + t);
        }
        throw new AssertionError(what + ": expected " + cls.getSimpleName() + " but the call succeeded");
    }
}

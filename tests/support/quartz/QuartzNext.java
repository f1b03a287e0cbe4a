/*
 * Next fire times according to Quartz itself, for tests/test_quartz_differential.py.
 *
 * Reads lines "expression<TAB>timezone<TAB>afterEpochMillis<TAB>count" on stdin and prints one
 * line per input line: "OK<TAB>millis,millis,..." (as many as Quartz finds, up to count; empty if
 * none), "ERR<TAB>message" when Quartz refuses the expression, or "TIMEOUT" when Quartz is still
 * searching after two seconds (its search has no step bound). Fire times come from
 * org.quartz.CronExpression.getNextValidTimeAfter, as CronTrigger uses it.
 */
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.text.ParseException;
import java.util.Date;
import java.util.Set;
import java.util.TimeZone;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.quartz.CronExpression;

public final class QuartzNext {
    private static final Set<String> ZONES = Set.of(TimeZone.getAvailableIDs());

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        ExecutorService pool = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r);
            t.setDaemon(true);
            return t;
        });
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) {
                continue;
            }
            String[] f = line.split("\t", -1);
            final String tz = f[1];
            final long after = Long.parseLong(f[2]);
            final int count = Integer.parseInt(f[3]);
            if (!ZONES.contains(tz)) {
                out.println("ERR\tunknown time zone " + tz);
                continue;
            }
            final CronExpression cron;
            try {
                cron = new CronExpression(f[0]);
            } catch (ParseException | RuntimeException e) {
                out.println("ERR\t" + String.valueOf(e.getMessage()).replace('\t', ' ').replace('\n', ' '));
                continue;
            }
            cron.setTimeZone(TimeZone.getTimeZone(tz));
            Future<String> job = pool.submit(() -> {
                StringBuilder times = new StringBuilder();
                Date current = new Date(after);
                for (int i = 0; i < count; i++) {
                    Date next = cron.getNextValidTimeAfter(current);
                    if (next == null) {
                        break;
                    }
                    if (times.length() > 0) {
                        times.append(',');
                    }
                    times.append(next.getTime());
                    current = next;
                }
                return "OK\t" + times;
            });
            try {
                out.println(job.get(2, TimeUnit.SECONDS));
            } catch (TimeoutException e) {
                job.cancel(true);
                out.println("TIMEOUT");
            }
        }
        out.flush();
    }
}

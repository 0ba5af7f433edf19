// Reads an interval log (.hlog) with HdrHistogram's own Java reader and
// prints, per interval: count p50 p99 p99.9 max.
import org.HdrHistogram.Histogram;
import org.HdrHistogram.HistogramLogReader;

public class ReadLog {
    public static void main(String[] args) throws Exception {
        HistogramLogReader reader = new HistogramLogReader(args[0]);
        Histogram h;
        while ((h = (Histogram) reader.nextIntervalHistogram()) != null) {
            System.out.println(h.getTotalCount() + " " + h.getValueAtPercentile(50.0) + " "
                + h.getValueAtPercentile(99.0) + " " + h.getValueAtPercentile(99.9) + " "
                + h.getMaxValue());
        }
    }
}

// Decodes a transbench histogram (HdrHistogram V2 + deflate, base64) with
// HdrHistogram's own Java library and prints: count p50 p99 max.
import org.HdrHistogram.Histogram;
import java.nio.ByteBuffer;
import java.util.Base64;

public class Decode {
    public static void main(String[] args) throws Exception {
        ByteBuffer buf = ByteBuffer.wrap(Base64.getDecoder().decode(args[0]));
        Histogram h = Histogram.decodeFromCompressedByteBuffer(buf, 0);
        System.out.println(h.getTotalCount() + " " + h.getValueAtPercentile(50.0) + " "
            + h.getValueAtPercentile(99.0) + " " + h.getMaxValue());
    }
}

// Apache Avro Java's view of our wire contract, for tests/interop/test_avro_interop.py.
//
// Run with the Java 11+ source launcher and the jars of avro-java.lock:
//   java -cp "var/interop-jars/*" tests/interop/AvroCheck.java fingerprints schemas
//   java -cp "var/interop-jars/*" tests/interop/AvroCheck.java decode schemas gov.lienthong.Envelope f.bin
//
// fingerprints: two lines per .avsc file, sorted by full name:
//   <fullname> <16 hex digits: CRC-64-AVRO fingerprint, little-endian, as single-object encoding writes it>
//   <Parsing Canonical Form>
// decode: the record of a single-object frame, as GenericData prints it (JSON).
// Exit 0 on success, 1 on failure, 2 on bad usage.

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import org.apache.avro.AvroRuntimeException;
import org.apache.avro.AvroTypeException;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.SchemaParseException;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;

public class AvroCheck {

    public static void main(String[] args) throws IOException {
        // UTF-8 whatever the locale: subjects and names are Vietnamese.
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true,
                StandardCharsets.UTF_8);
        if (args.length == 2 && args[0].equals("fingerprints")) {
            for (Schema schema : parseFolder(Path.of(args[1])).values()) {
                out.println(schema.getFullName() + " " + fingerprintHex(schema));
                out.println(SchemaNormalization.toParsingForm(schema));
            }
        } else if (args.length == 4 && args[0].equals("decode")) {
            Schema schema = parseFolder(Path.of(args[1])).get(args[2]);
            if (schema == null) {
                System.err.println("no schema named " + args[2] + " in " + args[1]);
                System.exit(1);
            }
            BinaryMessageDecoder<GenericRecord> decoder =
                    new BinaryMessageDecoder<>(GenericData.get(), schema);
            out.println(decoder.decode(Files.readAllBytes(Path.of(args[3]))));
        } else {
            System.err.println(
                    "usage: AvroCheck fingerprints <schema dir> | decode <schema dir> <fullname> <file>");
            System.exit(2);
        }
    }

    /** Every .avsc in the folder, parsed by one Parser; a file naming a type not yet parsed waits a round. */
    static Map<String, Schema> parseFolder(Path folder) throws IOException {
        List<Path> pending;
        try (Stream<Path> files = Files.list(folder)) {
            pending = new ArrayList<>(files.filter(p -> p.toString().endsWith(".avsc")).sorted().toList());
        }
        Schema.Parser parser = new Schema.Parser();
        Map<String, Schema> parsed = new TreeMap<>();
        while (!pending.isEmpty()) {
            List<Path> unresolved = new ArrayList<>();
            AvroRuntimeException last = null;
            for (Path file : pending) {
                try {
                    Schema schema = parser.parse(Files.readString(file, StandardCharsets.UTF_8));
                    parsed.put(schema.getFullName(), schema);
                } catch (SchemaParseException | AvroTypeException e) {  // 1.12 throws the latter if undefined
                    unresolved.add(file);
                    last = e;
                }
            }
            if (unresolved.size() == pending.size()) {
                throw new SchemaParseException("cannot resolve " + unresolved + ": " + last.getMessage());
            }
            pending = unresolved;
        }
        return parsed;
    }

    static String fingerprintHex(Schema schema) {
        byte[] bytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
                .putLong(SchemaNormalization.parsingFingerprint64(schema)).array();
        StringBuilder hex = new StringBuilder();
        for (byte b : bytes) {
            hex.append(String.format("%02x", b));
        }
        return hex.toString();
    }
}

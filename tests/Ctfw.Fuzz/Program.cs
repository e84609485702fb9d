using System.Text;
using Ctfw.Capture;
using Ctfw.Cli.Control;
using Ctfw.Cli.Daemon;
using Ctfw.Packets;
using Ctfw.Rules;
using Ctfw.Conntrack;
using Ctfw.Linux.Sync;
using SharpFuzz;

namespace Ctfw.Fuzz;

/// <summary>
/// One afl-fuzz target per argument. Each reads one input from afl and runs the code the daemon runs
/// on untrusted bytes; any exception escaping it is a crash for afl. tests/fuzz.sh instruments the
/// project's assemblies and drives afl-fuzz; tests/Ctfw.Fuzz/corpus/TARGET holds the seeds.
/// </summary>
internal static class Program
{
    private static readonly (string Name, Action<byte[]> Run)[] Targets =
    [
        ("packet", Packet),
        ("capture", Capture),
        ("rules", Rules),
        ("control", Control),
        ("sync", Sync),
        ("track", Track),
    ];

    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false);

    private static int Main(string[] args)
    {
        if (args.Length is 1 or 2)
        {
            foreach ((string name, Action<byte[]> run) in Targets)
            {
                if (name != args[0])
                    continue;
                if (args.Length == 2)
                    run(File.ReadAllBytes(args[1])); // reproduce one input outside afl
                else
                    Fuzzer.OutOfProcess.Run(stream => run(ReadAll(stream)));
                return 0;
            }
        }
        Console.Error.WriteLine($"usage: Ctfw.Fuzz TARGET [INPUT]; targets: {string.Join(", ", Targets.Select(t => t.Name))}");
        return 2;
    }

    private static byte[] ReadAll(Stream stream)
    {
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>The NFQUEUE payload path: parse, then the checksum check the tracker asks for.</summary>
    private static void Packet(byte[] input)
    {
        if (PacketParser.Parse(input, out ParsedPacket parsed) == InvalidReason.None)
            Checksums.VerifyTransport(input, parsed);
    }

    /// <summary>`ctfw replay FILE`: every record, then the reader's verdict on the rest.</summary>
    private static void Capture(byte[] input)
    {
        using var reader = new CaptureReader(new MemoryStream(input));
        while (reader.TryRead(out CaptureRecord record))
        {
            if (LinkLayer.TryGetNetworkPacket(record.LinkType, record.Frame, out ReadOnlySpan<byte> payload, out _))
                PacketParser.Parse(payload, out _);
        }
        _ = reader.Error?.ToString();
    }

    /// <summary>`ctfw run --rules FILE` and `reload`, with the errors formatted as they are printed.</summary>
    private static void Rules(byte[] input)
    {
        if (!Ruleset.TryLoad(s_utf8.GetString(input), "fuzz.rules", out _, out IReadOnlyList<RuleError> errors))
            _ = string.Join('\n', errors);
    }

    /// <summary>
    /// What the control socket parses from its peer: a request line's filter words (split as the
    /// server splits them) and, on the first line only, a hand-over offer.
    /// </summary>
    private static void Control(byte[] input)
    {
        string text = s_utf8.GetString(input);
        int eol = text.IndexOf('\n', StringComparison.Ordinal);
        string line = eol < 0 ? text : text[..eol];
        string[] words = line.Contains('\t', StringComparison.Ordinal) ? line.Split('\t') : line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        ConntrackFilter.Parse(words.Length == 0 ? words : words[1..], out _);
        HandoverOffer.Parse(line, out _);
    }

    /// <summary>
    /// A datagram from the sync peer (conntrackd's FTFW), as <see cref="SyncService"/> hands it to its
    /// session: the session twice (fresh, then after a HELLO exchange state), and the message codec on
    /// the datagram as one message. What it accepts is encoded again (the bulk path).
    /// </summary>
    private static void Sync(byte[] input)
    {
        var session = new FtfwSession(new FtfwOptions { InitialSequence = 1, QueueLimit = 64 });
        var sink = new NullSink();
        var receiver = new ReEncode();
        session.Receive(input, 1000, receiver, sink);
        session.Receive(input, 2000, receiver, sink);
        session.Tick(3000, sink);
        session.Flush(3000, sink);
        if (SyncCodec.TryReadConnection(input, out SyncMessageType type, out KernelConnection c) == SyncParse.Ok)
            receiver.OnConnection(type, c);
    }

    /// <summary>
    /// The tracker with helpers on: the input is a sequence of packets, each behind a 3-byte header
    /// (byte 0: bits 0-1 the raw table's helper for it — none, ftp, tftp —, bits 2-6 how many 100 ms
    /// pass before it, bit 7 checksums not verified; bytes 1-2 its length, big endian). Every protocol tracker, the FTP/TFTP readers
    /// and the expectation table see the bytes; listings are formatted as `conntrack -L` would.
    /// </summary>
    private static void Track(byte[] input)
    {
        // A small table: cheap to make per input, and a fuzzed run that fills it meets early drop.
        var settings = new ConntrackSettings();
        _ = settings.Set("nf_conntrack_max", "64");
        var engine = new ConntrackEngine(settings, 1_000, maxWorkers: 1);
        engine.EnableHelpers();
        using ConntrackWorker worker = engine.CreateWorker();
        long now = 1_000;
        ReadOnlySpan<byte> rest = input;
        while (rest.Length >= 3)
        {
            byte head = rest[0];
            int length = Math.Min((rest[1] << 8) | rest[2], rest.Length - 3);
            ReadOnlySpan<byte> packet = rest.Slice(3, length);
            rest = rest[(3 + length)..];
            now += ((head >> 2) & 0x1F) * 100;
            var ctx = new PacketContext { VerifyChecksums = (head & 0x80) == 0, Helper = (head & 3) == 3 ? CtHelper.None : (CtHelper)(head & 3) };
            worker.Enter();
            worker.Process(packet, now, ctx, out _);
            worker.Exit();
            engine.Maintain(now);
        }
        foreach (FlowInfo flow in engine.Snapshot(now))
            _ = ConntrackListing.Format(flow);
        foreach (ExpectationInfo expectation in engine.ListExpectations(now))
            _ = expectation.ToString();
        _ = engine.ExportConnections(now);
    }

    private sealed class NullSink : IDatagramSink
    {
        public void Send(ReadOnlySpan<byte> datagram)
        {
        }
    }

    private sealed class ReEncode : ISyncReceiver
    {
        private readonly byte[] _buffer = new byte[2048];

        public void OnConnection(SyncMessageType type, in KernelConnection connection) => SyncCodec.WriteConnection(_buffer, type, connection);

        public void OnResyncRequest()
        {
        }
    }
}

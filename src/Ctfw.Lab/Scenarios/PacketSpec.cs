using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Ctfw.Lab.Network;
using Ctfw.Packets;

namespace Ctfw.Lab.Scenarios;

/// <summary>
/// One crafted packet of a scenario: who sends it and what it contains. Source and destination
/// addresses follow from <see cref="From"/> (<see cref="LabAddresses"/>), so a spec builds the same
/// bytes with or without a lab.
/// </summary>
public abstract record PacketSpec(Side From, bool V6)
{
    public const int MaxLength = 1500;

    public IpAddress Src => SrcAddress ?? LabAddresses.Of(From, V6);

    /// <summary>A source address other than <see cref="From"/>'s (spoofed; still sent from <see cref="From"/>'s namespace), for packets from a stranger.</summary>
    public IpAddress? SrcAddress { get; init; }
    public IpAddress Dst => LabAddresses.Peer(From, V6);

    /// <summary>Writes the complete IP packet (checksums correct unless the spec asks otherwise); returns its length.</summary>
    public abstract int Build(Span<byte> buffer);

    public byte[] ToBytes()
    {
        Span<byte> buffer = stackalloc byte[MaxLength];
        return buffer[..Build(buffer)].ToArray();
    }

    /// <summary>tcpdump-like one-liner for README tables and failure messages.</summary>
    public abstract string Describe();

    protected string Arrow => From == Side.Client ? "C>S" : "S>C";
    protected string Family => V6 ? "ip6" : "ip";
}

/// <summary>A TCP segment. Options follow Linux's layout (<see cref="PacketBuilder.Tcp(Span{byte}, in TcpSpec)"/>).</summary>
public sealed record TcpPacket(Side From, bool V6) : PacketSpec(From, V6)
{
    public ushort SrcPort { get; init; }
    public ushort DstPort { get; init; }
    public uint Seq { get; init; }
    public uint Ack { get; init; }
    public TcpFlags Flags { get; init; }
    public ushort Window { get; init; }
    public int PayloadLength { get; init; }
    public ushort Mss { get; init; }
    /// <summary>-1 = no window-scale option.</summary>
    public sbyte WindowScale { get; init; } = -1;
    public bool SackPermitted { get; init; }
    public bool Timestamp { get; init; }
    public uint TsVal { get; init; }
    public uint TsEcr { get; init; }
    /// <summary>SACK blocks as (left, right) pairs.</summary>
    public IReadOnlyList<uint> Sack { get; init; } = [];
    /// <summary>Corrupt the TCP checksum after building (kernel-conntrack.md §4.2 step 3).</summary>
    public bool BadChecksum { get; init; }
    /// <summary>
    /// The payload as text (one byte per character, e.g. an FTP command), in place of
    /// <see cref="PayloadLength"/> filler bytes; its length must be <see cref="PayloadLength"/>.
    /// </summary>
    public string? Text { get; init; }

    public override int Build(Span<byte> buffer)
    {
        var spec = new TcpSpec
        {
            V6 = V6,
            Src = Src,
            Dst = Dst,
            SrcPort = SrcPort,
            DstPort = DstPort,
            Seq = Seq,
            Ack = Ack,
            Flags = Flags,
            Window = Window,
            PayloadLength = PayloadLength,
            PayloadFill = 0x61,
            Mss = Mss,
            WindowScale = WindowScale,
            SackPermitted = SackPermitted,
            Timestamp = Timestamp,
            TsVal = TsVal,
            TsEcr = TsEcr,
        };
        uint[] sack = [.. Sack];
        int length = PacketBuilder.Tcp(buffer, spec, sack);
        if (Text is not null)
            PayloadText.Write(buffer[..length], Text, PayloadLength);
        if (BadChecksum)
            buffer[(V6 ? 40 : 20) + 17] ^= 0x5A; // low byte of the TCP checksum
        return length;
    }

    public override string Describe()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{Arrow} {Family} tcp {SrcPort}>{DstPort} [{FlagText(Flags)}] seq {Seq}");
        if ((Flags & TcpFlags.Ack) != 0 || Ack != 0)
            sb.Append(CultureInfo.InvariantCulture, $" ack {Ack}");
        sb.Append(CultureInfo.InvariantCulture, $" win {Window}");
        List<string> o = [];
        if (Mss != 0)
            o.Add(string.Create(CultureInfo.InvariantCulture, $"mss {Mss}"));
        if (SackPermitted)
            o.Add("sackOK");
        if (Timestamp)
            o.Add(string.Create(CultureInfo.InvariantCulture, $"TS {TsVal}:{TsEcr}"));
        if (WindowScale >= 0)
            o.Add(string.Create(CultureInfo.InvariantCulture, $"wscale {WindowScale}"));
        for (int i = 0; i + 1 < Sack.Count; i += 2)
            o.Add(string.Create(CultureInfo.InvariantCulture, $"sack {Sack[i]}:{Sack[i + 1]}"));
        if (o.Count > 0)
            sb.Append(" <").Append(string.Join(',', o)).Append('>');
        sb.Append(CultureInfo.InvariantCulture, $" len {PayloadLength}");
        if (Text is not null)
            sb.Append(' ').Append(PayloadText.Quote(Text));
        if (BadChecksum)
            sb.Append(" BAD-CSUM");
        return sb.ToString();
    }

    public static string FlagText(TcpFlags f)
    {
        if (f == TcpFlags.None)
            return "none";
        var sb = new StringBuilder();
        if ((f & TcpFlags.Syn) != 0) sb.Append('S');
        if ((f & TcpFlags.Fin) != 0) sb.Append('F');
        if ((f & TcpFlags.Rst) != 0) sb.Append('R');
        if ((f & TcpFlags.Psh) != 0) sb.Append('P');
        if ((f & TcpFlags.Urg) != 0) sb.Append('U');
        if ((f & TcpFlags.Ece) != 0) sb.Append('E');
        if ((f & TcpFlags.Cwr) != 0) sb.Append('W');
        if ((f & TcpFlags.Ack) != 0) sb.Append('.');
        return sb.ToString();
    }
}

public sealed record UdpPacket(Side From, bool V6, ushort SrcPort, ushort DstPort, int PayloadLength) : PacketSpec(From, V6)
{
    /// <summary>Corrupt the UDP checksum after building (kernel-conntrack.md §7).</summary>
    public bool BadChecksum { get; init; }

    /// <summary>Send checksum 0 ("none"): legal for IPv4, not for IPv6 (RFC 8200 §8.1).</summary>
    public bool ZeroChecksum { get; init; }

    /// <summary>The payload as text (one byte per character, e.g. a TFTP request), in place of <see cref="PayloadLength"/> filler bytes; same length.</summary>
    public string? Text { get; init; }

    public override int Build(Span<byte> buffer)
    {
        int length = PacketBuilder.Udp(buffer, V6, Src, Dst, SrcPort, DstPort, PayloadLength, payloadFill: 0x75);
        if (Text is not null)
            PayloadText.Write(buffer[..length], Text, PayloadLength);
        int checksum = (V6 ? 40 : 20) + 6;
        if (ZeroChecksum)
            buffer.Slice(checksum, 2).Clear();
        if (BadChecksum)
            buffer[checksum + 1] ^= 0x5A;
        return length;
    }

    public override string Describe() =>
        string.Create(CultureInfo.InvariantCulture, $"{Arrow} {Family} udp {SrcPort}>{DstPort} len {PayloadLength}{(Text is null ? "" : " " + PayloadText.Quote(Text))}{(BadChecksum ? " BAD-CSUM" : "")}{(ZeroChecksum ? " csum 0" : "")}");
}

/// <summary>Text payloads of <see cref="TcpPacket"/> and <see cref="UdpPacket"/>.</summary>
internal static class PayloadText
{
    /// <summary>Puts <paramref name="text"/> at the end of the built <paramref name="packet"/> and recomputes its transport checksum.</summary>
    public static void Write(Span<byte> packet, string text, int payloadLength)
    {
        if (text.Length != payloadLength)
            throw new ArgumentException($"payload text is {text.Length} bytes, PayloadLength {payloadLength}", nameof(text));
        Span<byte> payload = packet[^payloadLength..];
        for (int i = 0; i < text.Length; i++)
            payload[i] = text[i] <= 0xFF ? (byte)text[i] : throw new ArgumentException("payload text must be single-byte characters", nameof(text));
        PacketParser.Parse(packet, out ParsedPacket p);
        PacketBuilder.RewriteTransportChecksum(packet, p);
    }

    /// <summary>The text as a C-like quoted string: "PORT 10,99,1,2,156,64\r\n".</summary>
    public static string Quote(string text)
    {
        var sb = new StringBuilder("\"");
        foreach (char c in text)
        {
            sb.Append(c switch
            {
                '\r' => "\\r",
                '\n' => "\\n",
                '"' => "\\\"",
                '\\' => "\\\\",
                >= ' ' and < (char)0x7F => c.ToString(),
                _ => string.Create(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}"),
            });
        }
        return sb.Append('"').ToString();
    }
}

/// <summary>An ICMP or ICMPv6 message with the echo layout (type, code, id, sequence), e.g. echo request/reply.</summary>
public sealed record IcmpPacket(Side From, bool V6, byte Type, byte Code, ushort Id, ushort Sequence, int PayloadLength = 56) : PacketSpec(From, V6)
{
    public override int Build(Span<byte> buffer) => V6
        ? PacketBuilder.Icmpv6(buffer, Src, Dst, Type, Code, Id, Sequence, PayloadLength, hopLimit: Type is >= 133 and <= 137 ? (byte)255 : PacketBuilder.DefaultTtl)
        : PacketBuilder.Icmp(buffer, Src, Dst, Type, Code, Id, Sequence, PayloadLength);

    public override string Describe() =>
        string.Create(CultureInfo.InvariantCulture, $"{Arrow} {(V6 ? "icmp6" : "icmp")} type {Type} code {Code} id {Id} seq {Sequence}");
}

/// <summary>An ICMP/ICMPv6 error quoting <see cref="Quoted"/> (built from its own spec, so its tuple is exact).</summary>
public sealed record IcmpErrorPacket(Side From, bool V6, byte Type, byte Code, PacketSpec Quoted, uint Rest = 0) : PacketSpec(From, V6)
{
    public override int Build(Span<byte> buffer)
    {
        Span<byte> inner = stackalloc byte[MaxLength];
        int n = Quoted.Build(inner);
        // The builder truncates the quote like Linux's icmp_send / icmp6_send (576 / 1280 bytes in all).
        return PacketBuilder.IcmpError(buffer, V6, Src, Dst, Type, Code, inner[..n], Rest);
    }

    public override string Describe() =>
        string.Create(CultureInfo.InvariantCulture, $"{Arrow} {(V6 ? "icmp6" : "icmp")} error type {Type} code {Code} quoting [{Quoted.Describe()}]");
}

/// <summary>A packet of any other protocol, with a payload of <see cref="Fill"/> bytes (zero-filled GRE is a GREv0 header).</summary>
public sealed record GenericPacket(Side From, bool V6, byte Protocol, int PayloadLength = 32, byte Fill = 0x47) : PacketSpec(From, V6)
{
    public override int Build(Span<byte> buffer) =>
        PacketBuilder.Generic(buffer, V6, Src, Dst, Protocol, PayloadLength, payloadFill: Fill);

    public override string Describe() =>
        string.Create(CultureInfo.InvariantCulture, $"{Arrow} {Family} proto {Protocol} len {PayloadLength}");
}

/// <summary>
/// One SCTP chunk of an <see cref="SctpPacket"/>. The value is what the type needs to look real:
/// INIT / INIT ACK the 16-byte fixed part with <see cref="InitTag"/>, DATA a 12-byte header and 4
/// bytes, SACK 12 bytes, SHUTDOWN the cumulative TSN, HEARTBEAT (ACK) a heartbeat-info parameter,
/// COOKIE ECHO an 8-byte cookie, I-DATA as DATA, ECNE / CWR / (I-)FORWARD TSN / ASCONF (ACK) a TSN or
/// serial number, ERROR one cause; the rest (ABORT, COOKIE ACK, SHUTDOWN ACK / COMPLETE, AUTH, …) none.
/// <see cref="ZeroLength"/> writes 0 in the length field (a malformed chunk); <see cref="ValueBytes"/>
/// cuts the value short (the length field says so), <see cref="LengthField"/> claims another length
/// than the bytes written (a chunk running past the end of the packet).
/// </summary>
public sealed record SctpChunk(byte Type, byte Flags = 0, uint InitTag = 0)
{
    public bool ZeroLength { get; init; }

    /// <summary>Keep only this many bytes of the value (null: all).</summary>
    public int? ValueBytes { get; init; }

    /// <summary>Write this in the length field instead of the true length (null: the true length).</summary>
    public ushort? LengthField { get; init; }

    public int Write(Span<byte> buffer)
    {
        Span<byte> value = stackalloc byte[16];
        int n;
        switch (Type)
        {
            case SctpChunkTypes.Init or SctpChunkTypes.InitAck:
                BinaryPrimitives.WriteUInt32BigEndian(value, InitTag);
                BinaryPrimitives.WriteUInt32BigEndian(value[4..], 65536); // a_rwnd
                BinaryPrimitives.WriteUInt16BigEndian(value[8..], 10);    // outbound streams
                BinaryPrimitives.WriteUInt16BigEndian(value[10..], 10);   // inbound streams
                BinaryPrimitives.WriteUInt32BigEndian(value[12..], InitTag ^ 0x5A5A5A5Au); // initial TSN
                n = 16;
                break;
            case SctpChunkTypes.Data:
                BinaryPrimitives.WriteUInt32BigEndian(value, 1000); // TSN
                BinaryPrimitives.WriteUInt32BigEndian(value[8..], 46); // PPID: Diameter
                value[12..16].Fill(0x64);
                n = 16;
                break;
            case SctpChunkTypes.Sack:
                BinaryPrimitives.WriteUInt32BigEndian(value, 1000);
                BinaryPrimitives.WriteUInt32BigEndian(value[4..], 65536);
                n = 12;
                break;
            case SctpChunkTypes.Shutdown:
                BinaryPrimitives.WriteUInt32BigEndian(value, 1000);
                n = 4;
                break;
            case SctpChunkTypes.Heartbeat or SctpChunkTypes.HeartbeatAck:
                BinaryPrimitives.WriteUInt16BigEndian(value, 1); // heartbeat info
                BinaryPrimitives.WriteUInt16BigEndian(value[2..], 8);
                BinaryPrimitives.WriteUInt32BigEndian(value[4..], 0x48424231);
                n = 8;
                break;
            case SctpChunkTypes.CookieEcho:
                value[..8].Fill(0xC0);
                n = 8;
                break;
            case SctpChunkTypes.IData:
                BinaryPrimitives.WriteUInt32BigEndian(value, 1000); // TSN; stream, MID, PPID 0
                value[12..16].Fill(0x64);
                n = 16;
                break;
            case SctpChunkTypes.Ecne or SctpChunkTypes.Cwr or SctpChunkTypes.ForwardTsn or SctpChunkTypes.IForwardTsn
                or SctpChunkTypes.Asconf or SctpChunkTypes.AsconfAck:
                BinaryPrimitives.WriteUInt32BigEndian(value, 1000); // a TSN, or the ASCONF serial number
                n = 4;
                break;
            case SctpChunkTypes.Error:
                BinaryPrimitives.WriteUInt16BigEndian(value, 1); // cause: invalid stream identifier
                BinaryPrimitives.WriteUInt16BigEndian(value[2..], 8);
                n = 8;
                break;
            default:
                n = 0;
                break;
        }
        if (ValueBytes is int cut)
            n = Math.Min(n, cut);
        int written = PacketBuilder.SctpChunk(buffer, Type, Flags, value[..n]);
        if (ZeroLength)
            BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], 0);
        if (LengthField is ushort claimed)
            BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], claimed);
        return written;
    }

    public override string ToString()
    {
        string name = SctpChunkTypes.Name(Type);
        string t = (Flags & 1) != 0 && Type is SctpChunkTypes.Abort or SctpChunkTypes.ShutdownComplete ? " T" : "";
        string tag = Type is SctpChunkTypes.Init or SctpChunkTypes.InitAck
            ? string.Create(CultureInfo.InvariantCulture, $" tag 0x{InitTag:x8}") : "";
        string cut = ValueBytes is int v ? string.Create(CultureInfo.InvariantCulture, $" value cut to {v}") : "";
        string claimed = LengthField is ushort l ? string.Create(CultureInfo.InvariantCulture, $" len field {l}") : "";
        return $"[{name}{t}{tag}{(ZeroLength ? " len 0" : "")}{cut}{claimed}]";
    }
}

/// <summary>An SCTP packet: common header with <see cref="Vtag"/>, the chunks in order, CRC32c.</summary>
public sealed record SctpPacket(Side From, bool V6, ushort SrcPort, ushort DstPort, uint Vtag, IReadOnlyList<SctpChunk> Chunks) : PacketSpec(From, V6)
{
    /// <summary>Corrupt the CRC32c after building.</summary>
    public bool BadChecksum { get; init; }

    public override int Build(Span<byte> buffer)
    {
        Span<byte> chunks = stackalloc byte[MaxLength];
        int n = 0;
        foreach (SctpChunk c in Chunks)
            n += c.Write(chunks[n..]);
        int length = PacketBuilder.Sctp(buffer, V6, Src, Dst, SrcPort, DstPort, Vtag, chunks[..n]);
        if (BadChecksum)
            buffer[(V6 ? 40 : 20) + 8] ^= 0x5A;
        return length;
    }

    public override string Describe() =>
        string.Create(CultureInfo.InvariantCulture,
            $"{Arrow} {Family} sctp {SrcPort}>{DstPort} vtag 0x{Vtag:x8} {(Chunks.Count == 0 ? "no chunks" : string.Join(' ', Chunks))}{(BadChecksum ? " BAD-CRC" : "")}");
}

/// <summary>A UDP-Lite datagram (protocol 136); <see cref="Coverage"/> 0 = the whole datagram.</summary>
public sealed record UdpLitePacket(Side From, bool V6, ushort SrcPort, ushort DstPort, int PayloadLength, ushort Coverage = 0) : PacketSpec(From, V6)
{
    /// <summary>Corrupt the checksum after building.</summary>
    public bool BadChecksum { get; init; }

    /// <summary>Send checksum 0, which UDP-Lite does not allow.</summary>
    public bool ZeroChecksum { get; init; }

    /// <summary>
    /// Checksum with protocol 136 in the pseudo-header, as RFC 3828 and Linux's own UDP-Lite sockets
    /// do; otherwise with 17, as Linux conntrack verifies it.
    /// </summary>
    public bool RfcChecksum { get; init; }

    public override int Build(Span<byte> buffer)
    {
        int length = PacketBuilder.UdpLite(buffer, V6, Src, Dst, SrcPort, DstPort, PayloadLength, Coverage, payloadFill: 0x6C,
            pseudoHeaderProtocol: RfcChecksum ? IpProto.UdpLite : IpProto.Udp);
        int checksum = (V6 ? 40 : 20) + 6;
        if (ZeroChecksum)
            buffer.Slice(checksum, 2).Clear();
        if (BadChecksum)
            buffer[checksum + 1] ^= 0x5A;
        return length;
    }

    public override string Describe() =>
        string.Create(CultureInfo.InvariantCulture,
            $"{Arrow} {Family} udplite {SrcPort}>{DstPort} len {PayloadLength} cscov {Coverage}{(RfcChecksum ? " csum-proto 136" : " csum-proto 17")}{(BadChecksum ? " BAD-CSUM" : "")}{(ZeroChecksum ? " csum 0" : "")}");
}

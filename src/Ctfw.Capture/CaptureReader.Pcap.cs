namespace Ctfw.Capture;

// Classic pcap (draft-ietf-opsawg-pcap). Every field is in the byte order the magic reveals.
public sealed partial class CaptureReader
{
    private const int PcapHeaderLength = 24;
    private const int PcapRecordHeaderLength = 16;

    private int _pcapLinkType;
    private int _pcapSnapLength;     // the header's, as libpcap adjusts it: never 0, never over MaxRecordLength
    private long _pcapFractionToNs;  // 1000 for microsecond files, 1 for nanosecond files

    /*  File header
        0                   1                   2                   3
        0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
       +---------------------------------------------------------------+
     0 |                          Magic Number                         |
       +-------------------------------+-------------------------------+
     4 |          Major Version        |         Minor Version         |
       +-------------------------------+-------------------------------+
     8 |                   Reserved1 (was thiszone)                    |
    12 |                   Reserved2 (was sigfigs)                     |
    16 |                            SnapLen                            |
       +-------------------------------+-------------------------------+
    20 | FCS len and flags             |           LinkType            |
       +-------------------------------+-------------------------------+  */
    private Step ReadPcapHeader(uint magicLittleEndian)
    {
        switch (magicLittleEndian)
        {
            case 0xA1B2C3D4: (_bigEndian, _pcapFractionToNs) = (false, 1000); break;
            case 0xD4C3B2A1: (_bigEndian, _pcapFractionToNs) = (true, 1000); break;
            case 0xA1B23C4D: (_bigEndian, _pcapFractionToNs) = (false, 1); break;
            case 0x4D3CB2A1: (_bigEndian, _pcapFractionToNs) = (true, 1); break;
            default:
                return Fail(CaptureErrorKind.BadMagic, $"magic 0x{magicLittleEndian:X8} is neither pcap nor pcapng");
        }
        if (_buffer.Length < PcapHeaderLength)
            return Need(PcapHeaderLength, "pcap file header");

        ReadOnlySpan<byte> header = Peek(PcapHeaderLength);
        ushort major = U16(header, 4);
        if (major != 2)
            return Fail(CaptureErrorKind.UnsupportedVersion, $"pcap version {major}.{U16(header, 6)} (only 2.x exists)");

        _pcapLinkType = (int)(U32(header, 20) & 0xFFFF);
        _pcapSnapLength = EffectiveSnapLength(U32(header, 16));
        _format = Format.Pcap;
        Consume(PcapHeaderLength);
        return Step.Continue;
    }

    /*  Record header, followed by Captured Packet Length bytes of packet data (no padding)
       +---------------------------------------------------------------+
     0 |                      Timestamp (Seconds)                      |
     4 |            Timestamp (Microseconds or nanoseconds)            |
     8 |                    Captured Packet Length                     |
    12 |                    Original Packet Length                     |
       +---------------------------------------------------------------+  */
    private Step ReadPcapRecord(out CaptureRecord record)
    {
        record = default;
        if (_buffer.Length < PcapRecordHeaderLength)
            return Need(PcapRecordHeaderLength, "record header");

        // libpcap's sf-pcap.c: over MAXIMUM_SNAPLEN is damage ("invalid packet capture length");
        // over the file's snaplen is salvaged, the record cut to the snaplen and the rest skipped.
        uint capturedLength = U32(Peek(PcapRecordHeaderLength), 8);
        if (capturedLength > MaxRecordLength)
            return Fail(CaptureErrorKind.RecordTooLarge,
                $"record claims {capturedLength} captured bytes; libpcap reads at most {MaxRecordLength} (MAXIMUM_SNAPLEN)");

        int length = PcapRecordHeaderLength + (int)capturedLength;
        if (_buffer.Length < length)
            return Need(length, "record");

        ReadOnlySpan<byte> bytes = Peek(length);
        long timestamp = U32(bytes, 0) * 1_000_000_000L + U32(bytes, 4) * _pcapFractionToNs;
        int kept = Math.Min((int)capturedLength, _pcapSnapLength);
        record = new CaptureRecord(_index++, _offset, 0, _pcapLinkType, timestamp, U32(bytes, 12),
            bytes.Slice(PcapRecordHeaderLength, kept));
        Consume(length);
        return Step.Record;
    }
}

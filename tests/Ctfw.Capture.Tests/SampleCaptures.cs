using static Ctfw.Capture.Tests.CaptureReading;

namespace Ctfw.Capture.Tests;

/// <summary>
/// Small captures that use every feature, with the records a correct reader must return, worked
/// out by hand from the bytes written.
/// </summary>
internal static class SampleCaptures
{
    /// <summary>
    /// Two sections of opposite byte order; interfaces with different link types, resolutions
    /// (default µs, ns, ms, 2^-20 s) and an if_tsoffset; EPB, SPB, obsolete PB; and the blocks a
    /// reader must skip (NRB, ISB, DSB, custom).
    /// </summary>
    public static (PcapngBuilder File, Rec[] Records) RichPcapng()
    {
        byte[] f0 = Frame(60, 1), f1 = Frame(41, 2), f2 = Frame(64, 3), f3 = Frame(20, 4),
            f4 = Frame(40, 5), f5 = Frame(57, 6), f6 = Frame(5, 7);
        var b = new PcapngBuilder()
            .Section(bigEndian: false)
            .Interface(LinkTypes.Ethernet, snapLength: 64)
            .Interface(LinkTypes.Raw, tsresol: 9, tsoffset: 100)
            .Block(4, [1, 0, 4, 0, 10, 0, 0, 1, 0, 0, 0, 0])                       // NRB
            .Enhanced(0, 1_700_000_000_123_456, f0)
            .Enhanced(1, 5, f1, originalLength: 1500)
            .Simple(100, f2)                                                     // cut by interface 0's snaplen
            .Block(5, [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])                       // ISB
            .Block(0x00000BAD, [0x3F, 0x77, 0, 0, 42])                           // custom
            .Block(0x0000000A, [1, 0, 0, 0, 0, 0, 0, 0])                         // DSB
            .Obsolete(1, 7, f3, originalLength: 30)
            .Section(bigEndian: true)
            .Interface(LinkTypes.Nflog, tsresol: 0x80 | 20)
            .Interface(LinkTypes.Ipv6, tsresol: 3)
            .Enhanced(1, 1_700_000_000_250, f4)
            .Enhanced(0, (1_700_000_000UL << 20) + (1UL << 19), f5)
            .Simple(5, f6);                                                      // block padding is not data
        int[] at = b.Blocks.Where(x => x.IsPacket).Select(x => x.Start).ToArray();
        Rec[] records =
        [
            new(0, at[0], 0, LinkTypes.Ethernet, 1_700_000_000_123_456_000, 60, 60, f0),
            new(1, at[1], 1, LinkTypes.Raw, 100_000_000_005, 41, 1500, f1),
            new(2, at[2], 0, LinkTypes.Ethernet, 0, 64, 100, f2),
            new(3, at[3], 1, LinkTypes.Raw, 100_000_000_007, 20, 30, f3),
            new(4, at[4], 1, LinkTypes.Ipv6, 1_700_000_000_250_000_000, 40, 40, f4),
            new(5, at[5], 0, LinkTypes.Nflog, 1_700_000_000_500_000_000, 57, 57, f5),
            new(6, at[6], 0, LinkTypes.Nflog, 0, 5, 5, f6),
        ];
        return (b, records);
    }

    public static (PcapBuilder File, Rec[] Records) SmallPcap()
    {
        byte[] f0 = Frame(54, 1), f1 = Frame(3, 2), f2 = Frame(100, 3);
        var b = new PcapBuilder(bigEndian: true, nanosecond: true, linkType: LinkTypes.Raw)
            .Record(10, 1, f0)
            .Record(11, 2, f1, originalLength: 70)
            .Record(12, 3, f2);
        Rec[] records =
        [
            new(0, 24, 0, LinkTypes.Raw, 10_000_000_001, 54, 54, f0),
            new(1, 24 + 16 + 54, 0, LinkTypes.Raw, 11_000_000_002, 3, 70, f1),
            new(2, 24 + 16 + 54 + 16 + 3, 0, LinkTypes.Raw, 12_000_000_003, 100, 100, f2),
        ];
        return (b, records);
    }
}

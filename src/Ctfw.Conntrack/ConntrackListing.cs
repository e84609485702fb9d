using System.Globalization;
using System.Text;
using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>
/// One entry in the line format of conntrack-tools' `conntrack -L` (e.g.
/// `tcp      6 431999 ESTABLISHED src=… dst=… sport=… dport=… src=… … [ASSURED] mark=0 use=1`),
/// so that scripts written for conntrack-tools can read ctfw's table. Not for the packet path.
/// </summary>
public static class ConntrackListing
{
    public static string Format(in FlowInfo f)
    {
        var sb = new StringBuilder(160);
        byte proto = f.Original.Protocol;
        string name = proto switch
        {
            IpProto.Tcp => "tcp",
            IpProto.Udp => "udp",
            IpProto.UdpLite => "udplite",
            IpProto.Icmp => "icmp",
            IpProto.Icmpv6 => "icmpv6",
            IpProto.Gre => "gre",
            IpProto.Sctp => "sctp",
            _ => "unknown",
        };
        // The kernel reports whole seconds left, rounded down (nf_ct_expires / HZ).
        sb.Append(CultureInfo.InvariantCulture, $"{name,-8} {proto} {f.TimeoutMs / 1000} ");
        if (proto == IpProto.Tcp)
            sb.Append(f.TcpState.Name()).Append(' ');
        AppendTuple(sb, f.Original);
        if ((f.Status & CtStatus.SeenReply) == 0)
            sb.Append("[UNREPLIED] ");
        AppendTuple(sb, f.Reply);
        if ((f.Status & CtStatus.Assured) != 0)
            sb.Append("[ASSURED] ");
        // Not a kernel flag; conntrack-tools prints its other flags in brackets too, so parsers skip it.
        if (f.Rescued)
            sb.Append("[RESCUED] ");
        sb.Append("mark=0 ");
        if (f.Original.Zone != 0)
            sb.Append(CultureInfo.InvariantCulture, $"zone={f.Original.Zone} ");
        sb.Append("use=1");
        return sb.ToString();
    }

    private static void AppendTuple(StringBuilder sb, in ConnTuple t)
    {
        sb.Append("src=").Append(t.Src.Format(t.IsV6)).Append(" dst=").Append(t.Dst.Format(t.IsV6)).Append(' ');
        switch (t.Protocol)
        {
            case IpProto.Tcp or IpProto.Udp or IpProto.UdpLite or IpProto.Sctp:
                sb.Append(CultureInfo.InvariantCulture, $"sport={t.SrcId} dport={t.DstId} ");
                break;
            case IpProto.Icmp or IpProto.Icmpv6:
                sb.Append(CultureInfo.InvariantCulture, $"type={t.DstId >> 8} code={t.DstId & 0xFF} id={t.SrcId} ");
                break;
            case IpProto.Gre:
                sb.Append(CultureInfo.InvariantCulture, $"srckey=0x{t.SrcId:x} dstkey=0x{t.DstId:x} ");
                break;
        }
    }
}

using System.Globalization;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Lab.Network;

/// <summary>
/// The lab's one helper assignment, the same for every scenario and every tracker: FTP on TCP
/// destination port 21, TFTP on UDP destination port 69, IPv4 and IPv6, nothing else. The gateway's
/// kernel gets it as raw-table <c>CT --helper</c> rules for the lab's whole life (<see cref="KernelLab"/>
/// installs them); replays that classify recordings in-process give each packet the helper
/// <see cref="Select"/> names, as those rules would have. Scenarios that run FTP or TFTP without a
/// helper use other ports (2121, 6969).
/// </summary>
public static class LabHelpers
{
    /// <summary>One `CT --helper` rule: new connections of <paramref name="Protocol"/> to <paramref name="Port"/> get <paramref name="Helper"/>.</summary>
    public sealed record Assignment(CtHelper Helper, byte Protocol, ushort Port)
    {
        public string Name => CtHelpers.Name(Helper)!;

        public string ProtocolName => Protocol == IpProto.Tcp ? "tcp" : "udp";
    }

    public static IReadOnlyList<Assignment> All { get; } =
    [
        new(CtHelper.Ftp, IpProto.Tcp, 21),
        new(CtHelper.Tftp, IpProto.Udp, 69),
    ];

    /// <summary>
    /// The helper the gateway's raw PREROUTING rules give <paramref name="packet"/> (a complete IP
    /// packet), or <see cref="CtHelper.None"/>. As `-p tcp --dport 21` there, a fragment other than
    /// the first carries no port and matches nothing.
    /// </summary>
    public static CtHelper Select(ReadOnlySpan<byte> packet)
    {
        InvalidReason parsed = PacketParser.Parse(packet, out ParsedPacket p);
        if (parsed is InvalidReason.NonFirstFragment || p.L4Length < 4)
            return CtHelper.None;
        foreach (Assignment a in All)
        {
            if (p.Protocol == a.Protocol && p.DstPort == a.Port)
                return a.Helper;
        }
        return CtHelper.None;
    }

    /// <summary>The commands that install the assignment in a namespace's raw table: iptables and ip6tables, one rule per helper.</summary>
    public static IEnumerable<string[]> RawRules()
    {
        foreach (string tool in (string[])["iptables", "ip6tables"])
        {
            foreach (Assignment a in All)
            {
                yield return [tool, "-w", "-t", "raw", "-A", "PREROUTING", "-p", a.ProtocolName,
                    "--dport", a.Port.ToString(CultureInfo.InvariantCulture), "-j", "CT", "--helper", a.Name];
            }
        }
    }

    /// <summary>Installs <see cref="RawRules"/> in <paramref name="ns"/> (the gateway).</summary>
    public static void Install(string ns)
    {
        foreach (string[] rule in RawRules())
            Tool.RunIn(ns, rule);
    }
}

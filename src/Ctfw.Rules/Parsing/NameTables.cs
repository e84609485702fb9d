namespace Ctfw.Rules.Parsing;

/// <summary>The name tables of iptables' extensions, as libxt_*/libipt_*/libip6t_* define them.</summary>
internal static class NameTables
{
    internal readonly record struct IcmpName(string Name, byte Type, byte CodeMin, byte CodeMax);

    /// <summary>libxt_icmp.h <c>icmp_codes</c> (order matters: names are matched by prefix, ambiguity is an error).</summary>
    public static readonly IcmpName[] Icmp =
    [
        new("any", 0xFF, 0, 0xFF),
        new("echo-reply", 0, 0, 0xFF),
        new("pong", 0, 0, 0xFF),
        new("destination-unreachable", 3, 0, 0xFF),
        new("network-unreachable", 3, 0, 0),
        new("host-unreachable", 3, 1, 1),
        new("protocol-unreachable", 3, 2, 2),
        new("port-unreachable", 3, 3, 3),
        new("fragmentation-needed", 3, 4, 4),
        new("source-route-failed", 3, 5, 5),
        new("network-unknown", 3, 6, 6),
        new("host-unknown", 3, 7, 7),
        new("network-prohibited", 3, 9, 9),
        new("host-prohibited", 3, 10, 10),
        new("TOS-network-unreachable", 3, 11, 11),
        new("TOS-host-unreachable", 3, 12, 12),
        new("communication-prohibited", 3, 13, 13),
        new("host-precedence-violation", 3, 14, 14),
        new("precedence-cutoff", 3, 15, 15),
        new("source-quench", 4, 0, 0xFF),
        new("redirect", 5, 0, 0xFF),
        new("network-redirect", 5, 0, 0),
        new("host-redirect", 5, 1, 1),
        new("TOS-network-redirect", 5, 2, 2),
        new("TOS-host-redirect", 5, 3, 3),
        new("echo-request", 8, 0, 0xFF),
        new("ping", 8, 0, 0xFF),
        new("router-advertisement", 9, 0, 0xFF),
        new("router-solicitation", 10, 0, 0xFF),
        new("time-exceeded", 11, 0, 0xFF),
        new("ttl-exceeded", 11, 0, 0xFF),
        new("ttl-zero-during-transit", 11, 0, 0),
        new("ttl-zero-during-reassembly", 11, 1, 1),
        new("parameter-problem", 12, 0, 0xFF),
        new("ip-header-bad", 12, 0, 0),
        new("required-option-missing", 12, 1, 1),
        new("timestamp-request", 13, 0, 0xFF),
        new("timestamp-reply", 14, 0, 0xFF),
        new("address-mask-request", 17, 0, 0xFF),
        new("address-mask-reply", 18, 0, 0xFF),
    ];

    /// <summary>libip6t_icmp6.c <c>icmpv6_codes</c>.</summary>
    public static readonly IcmpName[] Icmpv6 =
    [
        new("destination-unreachable", 1, 0, 0xFF),
        new("no-route", 1, 0, 0),
        new("communication-prohibited", 1, 1, 1),
        new("beyond-scope", 1, 2, 2),
        new("address-unreachable", 1, 3, 3),
        new("port-unreachable", 1, 4, 4),
        new("failed-policy", 1, 5, 5),
        new("reject-route", 1, 6, 6),
        new("packet-too-big", 2, 0, 0xFF),
        new("time-exceeded", 3, 0, 0xFF),
        new("ttl-exceeded", 3, 0, 0xFF),
        new("ttl-zero-during-transit", 3, 0, 0),
        new("ttl-zero-during-reassembly", 3, 1, 1),
        new("parameter-problem", 4, 0, 0xFF),
        new("bad-header", 4, 0, 0),
        new("unknown-header-type", 4, 1, 1),
        new("unknown-option", 4, 2, 2),
        new("echo-request", 128, 0, 0xFF),
        new("ping", 128, 0, 0xFF),
        new("echo-reply", 129, 0, 0xFF),
        new("pong", 129, 0, 0xFF),
        new("mld-listener-query", 130, 0, 0xFF),
        new("mld-listener-report", 131, 0, 0xFF),
        new("mld-listener-done", 132, 0, 0xFF),
        new("mld-listener-reduction", 132, 0, 0xFF),
        new("router-solicitation", 133, 0, 0xFF),
        new("router-advertisement", 134, 0, 0xFF),
        new("neighbour-solicitation", 135, 0, 0xFF),
        new("neighbor-solicitation", 135, 0, 0xFF),
        new("neighbour-advertisement", 136, 0, 0xFF),
        new("neighbor-advertisement", 136, 0, 0xFF),
        new("redirect", 137, 0, 0xFF),
    ];

    /// <summary>xtables' <c>xtables_chain_protos</c> plus the /etc/protocols names iptables users write.</summary>
    public static readonly (string Name, byte Number)[] Protocols =
    [
        ("all", 0),
        ("icmp", 1),
        ("igmp", 2),
        ("tcp", 6),
        ("udp", 17),
        ("dccp", 33),
        ("gre", 47),
        ("esp", 50),
        ("ah", 51),
        ("icmpv6", 58),
        ("ipv6-icmp", 58),
        ("sctp", 132),
        ("udplite", 136),
        ("mh", 135),
        ("ipv6-mh", 135),
    ];

    /// <summary>
    /// libipt_REJECT / libip6t_REJECT <c>reject_table</c>: name, alias, kind. The alias "port-unreach" is in
    /// both; in a two-family file it means the port-unreachable of the packet's family.
    /// </summary>
    public static readonly (string Name, string Alias, RejectWith Kind)[] Reject =
    [
        ("icmp-net-unreachable", "net-unreach", RejectWith.IcmpNetUnreachable),
        ("icmp-host-unreachable", "host-unreach", RejectWith.IcmpHostUnreachable),
        ("icmp-proto-unreachable", "proto-unreach", RejectWith.IcmpProtoUnreachable),
        ("icmp-port-unreachable", "port-unreach", RejectWith.IcmpPortUnreachable),
        ("icmp-net-prohibited", "net-prohib", RejectWith.IcmpNetProhibited),
        ("icmp-host-prohibited", "host-prohib", RejectWith.IcmpHostProhibited),
        ("icmp-admin-prohibited", "admin-prohib", RejectWith.IcmpAdminProhibited),
        ("tcp-reset", "tcp-rst", RejectWith.TcpReset),
        ("icmp6-no-route", "no-route", RejectWith.Icmp6NoRoute),
        ("icmp6-adm-prohibited", "adm-prohibited", RejectWith.Icmp6AdmProhibited),
        ("icmp6-addr-unreachable", "addr-unreach", RejectWith.Icmp6AddrUnreachable),
        ("icmp6-port-unreachable", "port-unreach", RejectWith.Icmp6PortUnreachable),
        ("icmp6-policy-fail", "policy-fail", RejectWith.Icmp6PolicyFail),
        ("icmp6-reject-route", "reject-route", RejectWith.Icmp6RejectRoute),
    ];

    /// <summary>xtables' <c>xtopt_sysloglevel</c>.</summary>
    public static readonly (string Name, byte Level)[] LogLevels =
    [
        ("emerg", 0),
        ("alert", 1),
        ("crit", 2),
        ("error", 3),
        ("warning", 4),
        ("notice", 5),
        ("info", 6),
        ("debug", 7),
    ];

    /// <summary>libxt_tcp <c>tcp_flag_names</c>.</summary>
    public static readonly (string Name, byte Bits)[] TcpFlags =
    [
        ("FIN", 0x01),
        ("SYN", 0x02),
        ("RST", 0x04),
        ("PSH", 0x08),
        ("ACK", 0x10),
        ("URG", 0x20),
        ("ALL", 0x3F),
        ("NONE", 0x00),
    ];

    public const string SupportedMatches = "comment, conntrack, helper, icmp, icmp6, mark, multiport, state, tcp, udp";
    public const string SupportedTargets = "ACCEPT, DROP, LOG, REJECT, RETURN or a user-defined chain";
    public const string SupportedRawTargets = "ACCEPT, DROP, RETURN, CT --helper ftp|tftp or a user-defined chain";

    /// <summary>Real iptables matches ctfw does not implement: named so the error says "not supported" rather than "unknown".</summary>
    public static readonly HashSet<string> UnsupportedMatches = new(StringComparer.Ordinal)
    {
        "addrtype", "ah", "bpf", "cgroup", "cluster", "connbytes", "connlabel", "connlimit", "connmark", "cpu",
        "dccp", "devgroup", "dscp", "dst", "ecn", "esp", "eui64", "frag", "hashlimit", "hbh", "hl",
        "ipcomp", "iprange", "ipv6header", "ipvs", "length", "limit", "mac", "mh", "nfacct", "osf",
        "owner", "physdev", "pkttype", "policy", "quota", "rateest", "realm", "recent", "rpfilter", "rt", "sctp",
        "set", "socket", "statistic", "string", "tcpmss", "time", "tos", "ttl", "u32", "udplite",
    };

    /// <summary>Real iptables targets ctfw does not implement (nat/mangle/raw ones included): "unknown target", not "missing chain".</summary>
    public static readonly HashSet<string> UnsupportedTargets = new(StringComparer.Ordinal)
    {
        "AUDIT", "CHECKSUM", "CLASSIFY", "CLUSTERIP", "CONNMARK", "CONNSECMARK", "CT", "DNAT", "DNPT", "DSCP",
        "ECN", "HL", "HMARK", "IDLETIMER", "LED", "MARK", "MASQUERADE", "MIRROR", "NETMAP", "NFLOG", "NFQUEUE",
        "NOTRACK", "QUEUE", "RATEEST", "REDIRECT", "SAME", "SECMARK", "SET", "SNAT", "SNPT", "SYNPROXY", "TCPMSS",
        "TCPOPTSTRIP", "TEE", "TOS", "TPROXY", "TRACE", "TTL", "ULOG",
    };
}

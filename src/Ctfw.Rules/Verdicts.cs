namespace Ctfw.Rules;

/// <summary>
/// The hooks the tables' built-in chains sit on: the filter table's INPUT, FORWARD and OUTPUT, the
/// raw table's PREROUTING and OUTPUT (raw OUTPUT and filter OUTPUT are the same hook, in two tables).
/// </summary>
public enum Hook : byte
{
    Input = 0,
    Forward = 1,
    Output = 2,
    PreRouting = 3,
}

/// <summary>The iptables tables a ruleset can hold.</summary>
public enum RuleTable : byte
{
    /// <summary>`*filter`: INPUT, FORWARD, OUTPUT, after conntrack.</summary>
    Filter = 0,
    /// <summary>`*raw`: PREROUTING, OUTPUT, before conntrack; assigns conntrack helpers (`CT --helper`).</summary>
    Raw = 1,
}

/// <summary>What happens to the packet.</summary>
public enum Verdict : byte
{
    Accept = 0,
    Drop = 1,
    /// <summary>Drop, and answer with <see cref="RuleVerdict.RejectWith"/> (<see cref="RejectBuilder"/>).</summary>
    Reject = 2,
}

/// <summary>
/// `-j REJECT --reject-with …`, the kernel's ipt_REJECT/ip6t_REJECT kinds. <see cref="Default"/> is
/// a rule without --reject-with; <see cref="Ruleset.Evaluate(in PacketFacts, Span{int})"/> resolves it
/// to the port-unreachable of the packet's family, as iptables and ip6tables default to.
/// </summary>
public enum RejectWith : byte
{
    Default = 0,
    IcmpNetUnreachable,
    IcmpHostUnreachable,
    IcmpProtoUnreachable,
    IcmpPortUnreachable,
    IcmpNetProhibited,
    IcmpHostProhibited,
    IcmpAdminProhibited,
    TcpReset,
    Icmp6NoRoute,
    Icmp6AdmProhibited,
    Icmp6AddrUnreachable,
    Icmp6PortUnreachable,
    Icmp6PolicyFail,
    Icmp6RejectRoute,
}

/// <summary>The address families a rule applies to (`-4`, `-6`, or inferred from its addresses and options).</summary>
[Flags]
public enum RuleFamily : byte
{
    None = 0,
    IPv4 = 1,
    IPv6 = 2,
    Both = IPv4 | IPv6,
}

/// <summary>What a rule does when it matches.</summary>
public enum RuleTarget : byte
{
    /// <summary>No -j: the rule only counts (iptables' XT_CONTINUE).</summary>
    None = 0,
    Accept,
    Drop,
    Reject,
    /// <summary>Logs and continues with the next rule.</summary>
    Log,
    Return,
    /// <summary>-j USER: call a user chain; its end (or RETURN) resumes after this rule.</summary>
    Jump,
    /// <summary>-g USER: continue in a user chain; its end returns to this chain's caller.</summary>
    Goto,
    /// <summary>
    /// Raw table `CT --helper NAME`: the connection this packet creates gets the helper. Continues
    /// with the next rule (xt_CT returns XT_CONTINUE); the first CT a packet meets wins, as xt_CT
    /// ignores a packet that already carries a template.
    /// </summary>
    Ct,
}

public static class RejectWithNames
{
    /// <summary>The name iptables-save prints for the kind.</summary>
    public static string Name(this RejectWith r) => r switch
    {
        RejectWith.IcmpNetUnreachable => "icmp-net-unreachable",
        RejectWith.IcmpHostUnreachable => "icmp-host-unreachable",
        RejectWith.IcmpProtoUnreachable => "icmp-proto-unreachable",
        RejectWith.IcmpPortUnreachable => "icmp-port-unreachable",
        RejectWith.IcmpNetProhibited => "icmp-net-prohibited",
        RejectWith.IcmpHostProhibited => "icmp-host-prohibited",
        RejectWith.IcmpAdminProhibited => "icmp-admin-prohibited",
        RejectWith.TcpReset => "tcp-reset",
        RejectWith.Icmp6NoRoute => "icmp6-no-route",
        RejectWith.Icmp6AdmProhibited => "icmp6-adm-prohibited",
        RejectWith.Icmp6AddrUnreachable => "icmp6-addr-unreachable",
        RejectWith.Icmp6PortUnreachable => "icmp6-port-unreachable",
        RejectWith.Icmp6PolicyFail => "icmp6-policy-fail",
        RejectWith.Icmp6RejectRoute => "icmp6-reject-route",
        _ => "default",
    };

    /// <summary>The families a kind can answer: ICMP kinds one, tcp-reset and the default both.</summary>
    public static RuleFamily Family(this RejectWith r) => r switch
    {
        RejectWith.Default or RejectWith.TcpReset => RuleFamily.Both,
        >= RejectWith.Icmp6NoRoute => RuleFamily.IPv6,
        _ => RuleFamily.IPv4,
    };
}

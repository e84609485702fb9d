using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>What a <see cref="ConntrackListing"/> line shows besides the entry itself.</summary>
[Flags]
public enum ListingOptions
{
    None = 0,
    /// <summary>`packets=N bytes=N` after each direction's tuple (the kernel with nf_conntrack_acct=1), for flows that have them (<see cref="FlowInfo.HasAccounting"/>).</summary>
    Accounting = 1,
    /// <summary>`-o extended`: the layer-3 name and number first (`ipv4     2 `, `ipv6     10 `).</summary>
    Extended = 2,
}

/// <summary>The three conntrack events (`conntrack -E`), as ctnetlink's NFNLGRP_CONNTRACK_* groups.</summary>
public enum ConntrackEventKind : byte
{
    New = 1,
    Update = 2,
    Destroy = 3,
}

/// <summary>
/// Entries and events in the line formats of conntrack-tools (`conntrack -L`, `conntrack -E`), so
/// that scripts written for conntrack-tools can read ctfw's table, and the JSON lines of `-o json`.
/// Checked against conntrack v1.4.7 on Linux 6.18 (golden lines in ConntrackListingTests). Not for
/// the packet path.
/// </summary>
public static class ConntrackListing
{
    /// <summary>
    /// `conntrack -L` (`tcp      6 431999 ESTABLISHED src=… [ASSURED] mark=0 use=1`); a helped entry
    /// has `helper=ftp` before `use=1`, as conntrack prints it. An expected entry's master, which
    /// conntrack does not print, ends the line as ctfw's own extra (<see cref="AppendMaster"/>).
    /// </summary>
    public static string Format(in FlowInfo f, ListingOptions options = ListingOptions.None)
    {
        var sb = new StringBuilder(200);
        AppendEntry(sb, f, options, f.TimeoutMs / 1000, skipZeroTimeout: false, counters: (options & ListingOptions.Accounting) != 0 && f.HasAccounting);
        sb.Append("mark=0 ");
        if (f.Original.Zone != 0)
            sb.Append(CultureInfo.InvariantCulture, $"zone={f.Original.Zone} ");
        if (CtHelpers.Name(f.Helper) is { } helper)
            sb.Append("helper=").Append(helper).Append(' ');
        sb.Append("use=1");
        AppendMaster(sb, f);
        return sb.ToString();
    }

    /// <summary>
    /// ctfw's extra for an expected (RELATED) entry, at the end of its `-L`/`-E` line (where the
    /// `--half-closed` annotations go too): ` master-src=… master-dst=… master-sport=… master-dport=…`,
    /// the master's ORIGINAL tuple (the kernel's CTA_TUPLE_MASTER, which conntrack does not print).
    /// </summary>
    private static void AppendMaster(StringBuilder sb, in FlowInfo f)
    {
        if (f.Master is not { } m)
            return;
        sb.Append(' ');
        AppendTuple(sb, m, "master-");
        sb.Length--;
    }

    /// <summary>
    /// `conntrack -E` (`    [NEW] tcp      6 120 SYN_SENT src=…`). As the kernel's event messages: no
    /// mark and use; the timeout left out when below a second (an expired entry's DESTROY); the
    /// counters only in DESTROY, only with accounting on, and only when the flow has them. <paramref name="userspace"/> marks a
    /// DESTROY a control request caused (`conntrack -D`/`-F`), conntrack-tools' `[USERSPACE]`.
    /// </summary>
    public static string FormatEvent(ConntrackEventKind kind, in FlowInfo f, ListingOptions options, bool userspace)
    {
        var sb = new StringBuilder(200);
        sb.Append(kind switch
        {
            ConntrackEventKind.New => "    [NEW] ",
            ConntrackEventKind.Update => " [UPDATE] ",
            _ => "[DESTROY] ",
        });
        bool counters = kind == ConntrackEventKind.Destroy && (options & ListingOptions.Accounting) != 0 && f.HasAccounting;
        AppendEntry(sb, f, options, f.TimeoutMs / 1000, skipZeroTimeout: true, counters);
        if (f.Original.Zone != 0)
            sb.Append(CultureInfo.InvariantCulture, $"zone={f.Original.Zone} ");
        // The kernel's NEW/UPDATE messages carry CTA_HELP for a helped entry, its DESTROY does not.
        if (kind != ConntrackEventKind.Destroy && CtHelpers.Name(f.Helper) is { } helper)
            sb.Append("helper=").Append(helper).Append(' ');
        if (userspace)
            sb.Append("[USERSPACE] ");
        sb.Length--; // the last space
        AppendMaster(sb, f);
        return sb.ToString();
    }

    /// <summary>
    /// One `conntrack -S` line for a worker, as conntrack v1.4.7 prints a CPU's
    /// (`cpu=0   \tfound=0 invalid=0 … chaintoolong=0 `, trailing space included).
    /// </summary>
    public static string FormatCpuStats(in WorkerCounters c) => string.Create(CultureInfo.InvariantCulture,
        $"cpu={c.Worker,-4}\tfound={c.Found} invalid={c.Invalid} insert={c.Insert} insert_failed={c.InsertFailed} drop={c.Drop} early_drop={c.EarlyDrop} error={c.Error} search_restart={c.SearchRestart} clash_resolve={c.ClashResolve} chaintoolong=0 ");

    /// <summary>conntrack-tools' protocol name (`tcp`, `icmpv6`, …; `unknown` for others).</summary>
    public static string ProtocolName(byte proto) => proto switch
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

    private static void AppendEntry(StringBuilder sb, in FlowInfo f, ListingOptions options, long timeoutSeconds, bool skipZeroTimeout, bool counters)
    {
        byte proto = f.Original.Protocol;
        if ((options & ListingOptions.Extended) != 0)
            sb.Append(f.Original.IsV6 ? "ipv6     10 " : "ipv4     2 ");
        sb.Append(CultureInfo.InvariantCulture, $"{ProtocolName(proto),-8} {proto} ");
        // The kernel reports whole seconds left, rounded down (nf_ct_expires / HZ); events skip a zero.
        if (!skipZeroTimeout || timeoutSeconds != 0)
            sb.Append(CultureInfo.InvariantCulture, $"{timeoutSeconds} ");
        if (proto == IpProto.Tcp)
            sb.Append(f.TcpState.Name()).Append(' ');
        else if (proto == IpProto.Sctp)
            sb.Append(f.SctpState.Name()).Append(' ');
        AppendTuple(sb, f.Original);
        if (counters)
            sb.Append(CultureInfo.InvariantCulture, $"packets={f.PacketsOriginal} bytes={f.BytesOriginal} ");
        if ((f.Status & CtStatus.SeenReply) == 0)
            sb.Append("[UNREPLIED] ");
        AppendTuple(sb, f.Reply);
        if (counters)
            sb.Append(CultureInfo.InvariantCulture, $"packets={f.PacketsReply} bytes={f.BytesReply} ");
        if ((f.Status & CtStatus.Assured) != 0)
            sb.Append("[ASSURED] ");
        if ((f.Status & CtStatus.Offload) != 0)
            sb.Append("[OFFLOAD] ");
        // Not a kernel flag; conntrack-tools prints its other flags in brackets too, so parsers skip it.
        if (f.Rescued)
            sb.Append("[RESCUED] ");
    }

    /// <summary>
    /// `-o json`: one object per line (schema in docs/OPERATIONS.md). Every field of <see cref="FlowInfo"/>,
    /// each direction's `packets` and `bytes` only when the flow has them (<see cref="FlowInfo.HasAccounting"/>:
    /// accounting was on); with
    /// <paramref name="kind"/> an event's `event` and `userspace`; with <paramref name="nowMs"/> (listings)
    /// the ages, which events do not carry.
    /// </summary>
    public static string FormatJson(in FlowInfo f, ConntrackEventKind? kind = null, bool userspace = false, long? nowMs = null)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            if (kind is { } k)
                w.WriteString("event", k switch { ConntrackEventKind.New => "new", ConntrackEventKind.Update => "update", _ => "destroy" });
            byte proto = f.Original.Protocol;
            w.WriteString("family", f.Original.IsV6 ? "ipv6" : "ipv4");
            w.WriteString("protocol", ProtocolName(proto));
            w.WriteNumber("protonum", proto);
            w.WriteNumber("timeout", f.TimeoutMs / 1000);
            w.WriteNumber("timeout_ms", f.TimeoutMs);
            if (proto == IpProto.Tcp)
                w.WriteString("state", f.TcpState.Name());
            else if (proto == IpProto.Sctp)
                w.WriteString("state", f.SctpState.Name());
            w.WritePropertyName("original");
            WriteTuple(w, f.Original, f.HasAccounting, f.PacketsOriginal, f.BytesOriginal);
            w.WritePropertyName("reply");
            WriteTuple(w, f.Reply, f.HasAccounting, f.PacketsReply, f.BytesReply);
            w.WriteNumber("status", (uint)f.Status);
            w.WriteBoolean("seen_reply", (f.Status & CtStatus.SeenReply) != 0);
            w.WriteBoolean("assured", (f.Status & CtStatus.Assured) != 0);
            w.WriteBoolean("rescued", f.Rescued);
            w.WriteNumber("zone", f.Original.Zone);
            if (CtHelpers.Name(f.Helper) is { } helper)
                w.WriteString("helper", helper);
            if (f.Master is { } master)
            {
                w.WritePropertyName("master");
                WriteTuple(w, master, false, 0, 0);
            }
            if (proto == IpProto.Sctp)
            {
                w.WriteNumber("vtag_original", f.SctpVtagOriginal);
                w.WriteNumber("vtag_reply", f.SctpVtagReply);
            }
            if (kind == ConntrackEventKind.Destroy)
                w.WriteBoolean("userspace", userspace);
            if (nowMs is { } now)
            {
                w.WriteNumber("age_ms", now - f.CreatedMs);
                w.WriteNumber("state_age_ms", now - f.StateSinceMs);
                if (f.ZeroWindowSinceOriginal != long.MinValue)
                    w.WriteNumber("zero_window_original_ms", now - f.ZeroWindowSinceOriginal);
                if (f.ZeroWindowSinceReply != long.MinValue)
                    w.WriteNumber("zero_window_reply_ms", now - f.ZeroWindowSinceReply);
                if (proto == IpProto.Tcp)
                {
                    w.WriteBoolean("fin_original", f.FinSeenOriginal);
                    w.WriteBoolean("fin_reply", f.FinSeenReply);
                }
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void WriteTuple(Utf8JsonWriter w, in ConnTuple t, bool counters, long packets, long bytes)
    {
        w.WriteStartObject();
        w.WriteString("src", t.Src.Format(t.IsV6));
        w.WriteString("dst", t.Dst.Format(t.IsV6));
        switch (t.Protocol)
        {
            case IpProto.Tcp or IpProto.Udp or IpProto.UdpLite or IpProto.Sctp:
                w.WriteNumber("sport", t.SrcId);
                w.WriteNumber("dport", t.DstId);
                break;
            case IpProto.Icmp or IpProto.Icmpv6:
                w.WriteNumber("type", t.DstId >> 8);
                w.WriteNumber("code", t.DstId & 0xFF);
                w.WriteNumber("id", t.SrcId);
                break;
            case IpProto.Gre:
                w.WriteNumber("srckey", t.SrcId);
                w.WriteNumber("dstkey", t.DstId);
                break;
        }
        if (counters)
        {
            w.WriteNumber("packets", packets);
            w.WriteNumber("bytes", bytes);
        }
        w.WriteEndObject();
    }

    private static void AppendTuple(StringBuilder sb, in ConnTuple t, string prefix = "")
    {
        AppendAddresses(sb, t, prefix, prefix);
        AppendIds(sb, t, prefix);
    }

    /// <summary>`src=… dst=… ` with the key prefixes libnetfilter_conntrack's __snprintf_address takes (`mask-`, `master-`).</summary>
    private static void AppendAddresses(StringBuilder sb, in ConnTuple t, string srcPrefix, string dstPrefix) =>
        sb.Append(srcPrefix).Append("src=").Append(t.Src.Format(t.IsV6)).Append(' ').Append(dstPrefix).Append("dst=").Append(t.Dst.Format(t.IsV6)).Append(' ');

    private static void AppendIds(StringBuilder sb, in ConnTuple t, string prefix)
    {
        switch (t.Protocol)
        {
            case IpProto.Tcp or IpProto.Udp or IpProto.UdpLite or IpProto.Sctp:
                sb.Append(CultureInfo.InvariantCulture, $"{prefix}sport={t.SrcId} {prefix}dport={t.DstId} ");
                break;
            case IpProto.Icmp or IpProto.Icmpv6:
                sb.Append(CultureInfo.InvariantCulture, $"{prefix}type={t.DstId >> 8} {prefix}code={t.DstId & 0xFF} {prefix}id={t.SrcId} ");
                break;
            case IpProto.Gre:
                sb.Append(CultureInfo.InvariantCulture, $"{prefix}srckey=0x{t.SrcId:x} {prefix}dstkey=0x{t.DstId:x} ");
                break;
        }
    }

    /// <summary>
    /// `conntrack -L expect` (libnetfilter_conntrack's expect snprintf, default format, as the kernel
    /// dumps an FTP/TFTP expectation): whole seconds left, `proto=N`, the expected tuple (source port
    /// 0: any), the mask (addresses exact, `sport=0 dport=65535`), the master's ORIGINAL tuple,
    /// `class=0` and `helper=NAME`. The kernel's dump has no zone, and these expectations no flags.
    /// <code>300 proto=6 src=10.0.0.2 dst=10.0.0.1 sport=0 dport=50000 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.0.0.1 master-dst=10.0.0.2 sport=40000 dport=21 class=0 helper=ftp</code>
    /// </summary>
    public static string FormatExpectation(in ExpectationInfo x)
    {
        var sb = new StringBuilder(260);
        ConnTuple t = x.Tuple;
        sb.Append(CultureInfo.InvariantCulture, $"{x.TimeoutMs / 1000} proto={t.Protocol} ");
        AppendAddresses(sb, t, "", "");
        AppendIds(sb, t, "");
        ConnTuple mask = default;
        mask.IpVersion = t.IpVersion;
        mask.Protocol = t.Protocol;
        mask.Src = t.IsV6 ? new IpAddress(ulong.MaxValue, ulong.MaxValue) : IpAddress.FromV4(uint.MaxValue);
        mask.Dst = mask.Src;
        mask.SrcId = 0;
        mask.DstId = ushort.MaxValue;
        AppendAddresses(sb, mask, "mask-", "mask-");
        AppendIds(sb, mask, "");
        AppendAddresses(sb, x.Master, "master-", "master-");
        AppendIds(sb, x.Master, "");
        sb.Append("class=0 ");
        if (CtHelpers.Name(x.Helper) is { } helper)
            sb.Append("helper=").Append(helper);
        else
            sb.Length--;
        return sb.ToString();
    }

    /// <summary>`conntrack -L expect -o json`-style object (ctfw's own schema, docs/OPERATIONS.md).</summary>
    public static string FormatExpectationJson(in ExpectationInfo x)
    {
        var buffer = new ArrayBufferWriter<byte>(384);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            ConnTuple t = x.Tuple;
            w.WriteString("family", t.IsV6 ? "ipv6" : "ipv4");
            w.WriteString("protocol", ProtocolName(t.Protocol));
            w.WriteNumber("protonum", t.Protocol);
            w.WriteNumber("timeout", x.TimeoutMs / 1000);
            w.WriteNumber("timeout_ms", x.TimeoutMs);
            w.WritePropertyName("expected");
            WriteTuple(w, t, false, 0, 0);
            w.WritePropertyName("master");
            WriteTuple(w, x.Master, false, 0, 0);
            w.WriteNumber("class", 0);
            if (CtHelpers.Name(x.Helper) is { } helper)
                w.WriteString("helper", helper);
            w.WriteNumber("zone", t.Zone);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}

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
    /// <summary>`conntrack -L` (`tcp      6 431999 ESTABLISHED src=… [ASSURED] mark=0 use=1`).</summary>
    public static string Format(in FlowInfo f, ListingOptions options = ListingOptions.None)
    {
        var sb = new StringBuilder(200);
        AppendEntry(sb, f, options, f.TimeoutMs / 1000, skipZeroTimeout: false, counters: (options & ListingOptions.Accounting) != 0 && f.HasAccounting);
        sb.Append("mark=0 ");
        if (f.Original.Zone != 0)
            sb.Append(CultureInfo.InvariantCulture, $"zone={f.Original.Zone} ");
        sb.Append("use=1");
        return sb.ToString();
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
        if (userspace)
            sb.Append("[USERSPACE] ");
        sb.Length--; // the last space
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

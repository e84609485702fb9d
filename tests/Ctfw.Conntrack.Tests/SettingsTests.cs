namespace Ctfw.Conntrack.Tests;

/// <summary>The sysctl model: kernel defaults (kernel-conntrack.md §4.10, §7–§10) and the Set/Load/--set parsers.</summary>
public class SettingsTests
{
    [Theory]
    [InlineData("nf_conntrack_checksum", 1)]
    [InlineData("nf_conntrack_log_invalid", 0)]
    [InlineData("nf_conntrack_tcp_loose", 1)]
    [InlineData("nf_conntrack_tcp_be_liberal", 0)]
    [InlineData("nf_conntrack_tcp_ignore_invalid_rst", 0)]
    [InlineData("nf_conntrack_tcp_max_retrans", 3)]
    [InlineData("nf_conntrack_tcp_timeout_syn_sent", 120)]
    [InlineData("nf_conntrack_tcp_timeout_syn_recv", 60)]
    [InlineData("nf_conntrack_tcp_timeout_established", 432000)]
    [InlineData("nf_conntrack_tcp_timeout_fin_wait", 120)]
    [InlineData("nf_conntrack_tcp_timeout_close_wait", 60)]
    [InlineData("nf_conntrack_tcp_timeout_last_ack", 30)]
    [InlineData("nf_conntrack_tcp_timeout_time_wait", 120)]
    [InlineData("nf_conntrack_tcp_timeout_close", 10)]
    [InlineData("nf_conntrack_tcp_timeout_max_retrans", 300)]
    [InlineData("nf_conntrack_tcp_timeout_unacknowledged", 300)]
    [InlineData("nf_conntrack_udp_timeout", 30)]
    [InlineData("nf_conntrack_udp_timeout_stream", 120)]
    [InlineData("nf_conntrack_icmp_timeout", 30)]
    [InlineData("nf_conntrack_icmpv6_timeout", 30)]
    [InlineData("nf_conntrack_generic_timeout", 600)]
    [InlineData("nf_conntrack_gre_timeout", 30)]
    [InlineData("nf_conntrack_gre_timeout_stream", 180)]
    // Kernel: "= buckets (auto)"; 262144 is the auto value of a 64-bit machine with more than 4 GiB (§3.1).
    [InlineData("nf_conntrack_max", 262144)]
    public void Defaults_EachSysctl_EqualsKernelDefault(string name, int expected)
    {
        Assert.Equal(expected, new ConntrackSettings().Get(name));
    }

    [Fact]
    public void Defaults_TypedPropertiesAndTcpSlots_MatchTheSysctls()
    {
        var s = new ConntrackSettings();
        Assert.True(s.Checksum);
        Assert.True(s.TcpLoose);
        Assert.False(s.TcpBeLiberal);
        Assert.False(s.TcpIgnoreInvalidRst);
        Assert.Equal(120, s.TcpTimeout(TcpState.SynSent2));   // no sysctl, cttimeout only (§4.10)
        Assert.Equal(432000, s.TcpTimeout(TcpState.Established));
        Assert.Equal(300, s.TcpTimeout(TcpState.Retrans));
        Assert.Equal(300, s.TcpTimeout(TcpState.Unack));
    }

    [Fact]
    public void Dump_EveryModelledSysctl_RoundTripsThroughLoad()
    {
        var changed = new ConntrackSettings();
        foreach (string name in ConntrackSettings.KnownNames)
        {
            int v = changed.Get(name);
            Assert.Null(changed.Set(name, (name.Contains("timeout") || name.EndsWith("max") || name.EndsWith("retrans") ? v + 7 : 1 - Math.Min(v, 1)).ToString()));
        }
        string text = string.Join('\n', changed.Dump());
        var loaded = new ConntrackSettings();
        Assert.Null(loaded.Load(new StringReader(text), "dump"));
        Assert.Equal(ConntrackSettings.KnownNames.Count(), changed.Dump().Count());
        foreach (string name in ConntrackSettings.KnownNames)
            Assert.Equal(changed.Get(name), loaded.Get(name));
    }

    [Theory]
    [InlineData("net.netfilter.nf_conntrack_udp_timeout", " 45 ")]
    [InlineData("nf_conntrack_udp_timeout", "45")]
    [InlineData("  net.netfilter.nf_conntrack_udp_timeout  ", "45")]
    public void Set_KernelNameWithOrWithoutPrefix_Applied(string name, string value)
    {
        var s = new ConntrackSettings();
        Assert.Null(s.Set(name, value));
        Assert.Equal(45, s.UdpTimeout);
    }

    [Fact]
    public void SetAssignment_PrefixedAssignment_Applied()
    {
        var s = new ConntrackSettings();
        Assert.Null(s.SetAssignment("net.netfilter.nf_conntrack_tcp_be_liberal=1"));
        Assert.True(s.TcpBeLiberal);
        Assert.Null(s.SetAssignment("nf_conntrack_tcp_timeout_time_wait = 7"));
        Assert.Equal(7, s.TcpTimeout(TcpState.TimeWait));
    }

    [Theory]
    [InlineData("nf_conntrack_tcp_timeout_establish")]
    [InlineData("net.ipv4.ip_forward")]
    [InlineData("net.netfilter.nf_conntrack_bogus")]
    [InlineData("NF_CONNTRACK_MAX")]
    public void Set_UnknownName_ErrorNamesIt(string name)
    {
        var s = new ConntrackSettings();
        string? error = s.Set(name, "1");
        Assert.NotNull(error);
        string bare = name.Replace("net.netfilter.", "");
        Assert.Contains($"'{bare}'", error);
        Assert.Contains("unknown", error);
    }

    [Theory]
    [InlineData("nf_conntrack_udp_timeout", "abc")]
    [InlineData("nf_conntrack_udp_timeout", "-1")]
    [InlineData("nf_conntrack_udp_timeout", "1.5")]
    [InlineData("nf_conntrack_udp_timeout", "")]
    [InlineData("nf_conntrack_udp_timeout", "99999999999")]
    [InlineData("nf_conntrack_udp_timeout", "3000000")]      // beyond what milliseconds in an int hold
    [InlineData("nf_conntrack_tcp_loose", "2")]
    [InlineData("nf_conntrack_checksum", "yes")]
    [InlineData("nf_conntrack_max", "0x100")]
    public void Set_BadValue_RejectedWithMessageNamingValueAndSysctl_ValueUnchanged(string name, string value)
    {
        var s = new ConntrackSettings();
        int before = s.Get(name);
        string? error = s.Set(name, value);
        Assert.NotNull(error);
        Assert.Contains($"'{value.Trim()}'", error);
        Assert.Contains(name, error);
        Assert.Equal(before, s.Get(name));
    }

    [Theory]
    [InlineData("nf_conntrack_udp_timeout")]
    [InlineData("=5")]
    [InlineData("")]
    public void SetAssignment_NotNameEqualsValue_ErrorQuotesInput(string text)
    {
        string? error = new ConntrackSettings().SetAssignment(text);
        Assert.NotNull(error);
        Assert.Contains($"'{text}'", error);
        Assert.Contains("NAME=VALUE", error);
    }

    [Fact]
    public void Load_SysctlFileWithCommentsBlanksPrefixesAndIgnoredNames_Applied()
    {
        const string text = """
            # conntrack sysctls, as `sysctl -a | grep nf_conntrack` prints them

            net.netfilter.nf_conntrack_tcp_loose = 0
              nf_conntrack_udp_timeout_stream=90
            net.netfilter.nf_conntrack_buckets = 65536
            net.netfilter.nf_conntrack_count = 12
            nf_conntrack_acct=1
            """;
        var s = new ConntrackSettings();
        Assert.Null(s.Load(new StringReader(text), "/etc/sysctl.d/ct.conf"));
        Assert.False(s.TcpLoose);
        Assert.Equal(90, s.UdpTimeoutStream);
    }

    [Fact]
    public void Load_BadValue_ErrorNamesFileAndLine()
    {
        const string text = "# header\nnf_conntrack_udp_timeout=40\nnf_conntrack_tcp_loose=maybe\nnf_conntrack_icmp_timeout=5\n";
        var s = new ConntrackSettings();
        string? error = s.Load(new StringReader(text), "ct.conf");
        Assert.NotNull(error);
        Assert.StartsWith("ct.conf:3: ", error);
        Assert.Contains("'maybe'", error);
        Assert.Contains("nf_conntrack_tcp_loose", error);
        Assert.Equal(30, s.IcmpTimeout);                      // stopped at the bad line
    }

    [Fact]
    public void Load_UnknownName_ErrorNamesFileLineAndName()
    {
        var s = new ConntrackSettings();
        string? error = s.Load(new StringReader("\n\nnf_conntrack_udp_timeout=40\nnf_conntrack_frobnicate=1\n"), "x.conf");
        Assert.NotNull(error);
        Assert.StartsWith("x.conf:4: ", error);
        Assert.Contains("'nf_conntrack_frobnicate'", error);
    }

    [Fact]
    public void Load_LineWithoutEquals_ErrorNamesFileLineAndQuotesIt()
    {
        var s = new ConntrackSettings();
        string? error = s.Load(new StringReader("nf_conntrack_udp_timeout=40\nnf_conntrack_tcp_loose 0\n"), "y.conf");
        Assert.NotNull(error);
        Assert.StartsWith("y.conf:2: ", error);
        Assert.Contains("'nf_conntrack_tcp_loose 0'", error);
    }

    [Fact]
    public void Set_MaxZero_KernelUnlimited_AcceptedValueIsUsable()
    {
        // §3.1: nf_conntrack_max = 0 means "unlimited" in the kernel. A value Set accepts must give a
        // working engine (or Set must refuse it with a message); here Set accepts it and the engine
        // constructor then throws.
        var s = new ConntrackSettings();
        if (s.Set("nf_conntrack_max", "0") is string refused)
        {
            Assert.Contains("nf_conntrack_max", refused);
            return;
        }
        Exception? e = Record.Exception(() => new ConntrackEngine(s, 0));
        Assert.True(e is null, $"nf_conntrack_max=0 was accepted by Set, then the engine threw {e?.GetType().Name}: {e?.Message}");
    }
}

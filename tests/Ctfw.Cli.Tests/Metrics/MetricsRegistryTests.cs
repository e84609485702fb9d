using Ctfw.Cli.Metrics;

namespace Ctfw.Cli.Tests.Metrics;

public class MetricsRegistryTests
{
    private sealed class FakeSource : IMetricsSource
    {
        public List<KeyValuePair<string, long>> Values { get; } = [];
        public int Reads { get; private set; }

        public void Set(string name, long value)
        {
            int i = Values.FindIndex(v => v.Key == name);
            if (i >= 0)
                Values[i] = new(name, value);
            else
                Values.Add(new(name, value));
        }

        public IReadOnlyList<KeyValuePair<string, long>> Read()
        {
            Reads++;
            return Values.ToList();
        }
    }

    private static FakeSource Daemonish()
    {
        var source = new FakeSource();
        source.Set("uptime_ms", 12_500);
        source.Set("packets", 120);
        source.Set("state.NEW", 10);
        source.Set("state.ESTABLISHED", 100);
        source.Set("state.INVALID", 9);
        source.Set("state.DROPPED", 1);
        source.Set("verdict.accept", 110);
        source.Set("verdict.drop", 10);
        source.Set("invalid.tcp_bad_flags", 4);
        source.Set("invalid.tcp_out_of_window", 5);
        source.Set("ab.ESTABLISHED.ESTABLISHED", 90);
        source.Set("ab.NEW.INVALID", 2);
        source.Set("ab.compared", 92);
        source.Set("queue.0.packets", 70);
        source.Set("queue.1.packets", 50);
        source.Set("queue.1.enobufs", 3);
        source.Set("queue.1.queue_dropped", 6);
        source.Set("queue.1.user_dropped", 8);
        source.Set("queue.0.recv_calls", 33);
        source.Set("queue.0.cpu_user_us", 1_500_000);
        source.Set("table.entries", 42);
        source.Set("table.max", 65_536);
        source.Set("table.early_drops", 11);
        source.Set("table.insert_failed", 12);
        source.Set("rescue.fin", 5);
        source.Set("reset.sent", 4);
        source.Set("gc.gen0", 3);
        source.Set("gc.pause_us", 250);
        source.Set("process.cpu_sys_us", 2_000_000);
        source.Set("events.subscribers", 2);
        source.Set("events.dropped", 13);
        source.Set("events.lost", 14);
        source.Set("control.connections", 21);
        source.Set("control.active", 1);
        source.Set("control.busy", 15);
        source.Set("control.refused", 16);
        source.Set("control.denied", 17);
        source.Set("some.future_counter", 77);
        return source;
    }

    [Fact]
    public async Task Export_DaemonCounters_AppearUnderPrometheusNamesWithLabels()
    {
        var registry = new MetricsRegistry(Daemonish());
        (List<Sample> samples, _, _) = Exposition.Parse(await registry.ExportAsync());

        Assert.Equal(12.5, Exposition.Value(samples, "ctfw_uptime_seconds"));
        Assert.Equal(100, Exposition.Value(samples, "ctfw_packets_total", ("state", "established")));
        Assert.Equal(10, Exposition.Value(samples, "ctfw_packets_total", ("state", "new")));
        Assert.Equal(1, Exposition.Value(samples, "ctfw_packets_total", ("state", "dropped")));
        Assert.Equal(110, Exposition.Value(samples, "ctfw_verdicts_total", ("verdict", "accept")));
        Assert.Equal(5, Exposition.Value(samples, "ctfw_invalid_packets_total", ("reason", "tcp_out_of_window")));
        Assert.Equal(90, Exposition.Value(samples, "ctfw_ab_packets_total", ("kernel", "established"), ("ctfw", "established")));
        Assert.Equal(2, Exposition.Value(samples, "ctfw_ab_packets_total", ("kernel", "new"), ("ctfw", "invalid")));
        Assert.Equal(92, Exposition.Value(samples, "ctfw_ab_compared_total"));
        Assert.Equal(70, Exposition.Value(samples, "ctfw_queue_packets_total", ("queue", "0")));
        Assert.Equal(50, Exposition.Value(samples, "ctfw_queue_packets_total", ("queue", "1")));
        Assert.Equal(3, Exposition.Value(samples, "ctfw_queue_enobufs_total", ("queue", "1")));
        Assert.Equal(6, Exposition.Value(samples, "ctfw_queue_dropped_total", ("queue", "1"), ("cause", "queue_full")));
        Assert.Equal(8, Exposition.Value(samples, "ctfw_queue_dropped_total", ("queue", "1"), ("cause", "socket_full")));
        Assert.Equal(33, Exposition.Value(samples, "ctfw_queue_receive_syscalls_total", ("queue", "0")));
        Assert.Equal(1.5, Exposition.Value(samples, "ctfw_queue_cpu_seconds_total", ("queue", "0"), ("mode", "user")));
        Assert.Equal(42, Exposition.Value(samples, "ctfw_conntrack_entries"));
        Assert.Equal(65_536, Exposition.Value(samples, "ctfw_conntrack_max"));
        Assert.Equal(11, Exposition.Value(samples, "ctfw_conntrack_early_drops_total"));
        Assert.Equal(12, Exposition.Value(samples, "ctfw_conntrack_insert_failed_total"));
        Assert.Equal(5, Exposition.Value(samples, "ctfw_rescued_total", ("kind", "fin")));
        Assert.Equal(4, Exposition.Value(samples, "ctfw_expiry_resets_sent_total"));
        Assert.Equal(3, Exposition.Value(samples, "ctfw_gc_collections_total", ("generation", "0")));
        Assert.Equal(0.00025, Exposition.Value(samples, "ctfw_gc_pause_seconds_total"), 9);
        Assert.Equal(2, Exposition.Value(samples, "ctfw_process_cpu_seconds_total", ("mode", "system")));
        Assert.Equal(2, Exposition.Value(samples, "ctfw_event_subscribers"));
        Assert.Equal(13, Exposition.Value(samples, "ctfw_events_dropped_total"));
        Assert.Equal(14, Exposition.Value(samples, "ctfw_events_lost_total"));
        Assert.Equal(21, Exposition.Value(samples, "ctfw_control_connections_total"));
        Assert.Equal(1, Exposition.Value(samples, "ctfw_control_connections_active"));
        Assert.Equal(15, Exposition.Value(samples, "ctfw_control_refusals_total", ("reason", "busy")));
        Assert.Equal(16, Exposition.Value(samples, "ctfw_control_refusals_total", ("reason", "refused")));
        Assert.Equal(17, Exposition.Value(samples, "ctfw_control_refusals_total", ("reason", "denied")));
        Assert.DoesNotContain(samples, s => s.Name.Contains("future", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Export_EveryFamily_HasHelpAndTypeMatchingItsKind()
    {
        var registry = new MetricsRegistry(Daemonish());
        (List<Sample> samples, Dictionary<string, string> types, Dictionary<string, string> help) = Exposition.Parse(await registry.ExportAsync());

        foreach (MetricFamily family in MetricFamilies.All)
        {
            Assert.True(types.TryGetValue(family.Name, out string? type), $"no TYPE for {family.Name}");
            Assert.Equal(family.Kind == MetricKind.Counter ? "counter" : "gauge", type);
            Assert.False(string.IsNullOrWhiteSpace(help[family.Name]), $"empty HELP for {family.Name}");
        }
        Assert.All(samples, s => Assert.Contains(s.Name, types.Keys));
    }

    [Fact]
    public void EveryMappedFamily_IsRegistered()
    {
        // A stats name whose family is not in All has no collector: the scrape would fail on it
        // (the offload families were missing until issue 16).
        Assert.All(MetricFamilies.Mapped.Distinct(), f => Assert.Contains(f, MetricFamilies.All));
    }

    [Fact]
    public async Task Export_OffloadAndSyncCounters_Exported()
    {
        FakeSource source = Daemonish();
        source.Set("offload.flows", 3);
        source.Set("offload.packets", 1234);
        source.Set("sync.external", 5);
        source.Set("sync.sent.messages", 40);
        source.Set("sync.received.messages", 7);
        source.Set("sync.from_strangers", 2);
        var registry = new MetricsRegistry(source);
        (List<Sample> samples, _, _) = Exposition.Parse(await registry.ExportAsync());
        Assert.Equal(3, Exposition.Value(samples, "ctfw_offload_flows"));
        Assert.Equal(1234, Exposition.Value(samples, "ctfw_offload_packets_total"));
        Assert.Equal(5, Exposition.Value(samples, "ctfw_sync_external_entries"));
        Assert.Equal(40, Exposition.Value(samples, "ctfw_sync_messages_total", ("direction", "sent")));
        Assert.Equal(7, Exposition.Value(samples, "ctfw_sync_messages_total", ("direction", "received")));
        Assert.Equal(2, Exposition.Value(samples, "ctfw_sync_dropped_total", ("reason", "stranger")));
    }

    [Fact]
    public void Families_FollowPrometheusNaming()
    {
        var names = new HashSet<string>();
        foreach (MetricFamily family in MetricFamilies.All)
        {
            Assert.Matches("^ctfw_[a-z][a-z0-9_]*$", family.Name);
            Assert.True(names.Add(family.Name), $"{family.Name} twice");
            Assert.Equal(family.Kind == MetricKind.Counter, family.Name.EndsWith("_total", StringComparison.Ordinal));
            Assert.All(family.Labels, l => Assert.Matches("^[a-z][a-z_]*$", l));
        }
    }

    [Fact]
    public async Task Export_SecondScrape_ReadsTheSourceAgainAndCountersFollowIt()
    {
        FakeSource source = Daemonish();
        var registry = new MetricsRegistry(source);
        (List<Sample> first, _, _) = Exposition.Parse(await registry.ExportAsync());
        source.Set("state.ESTABLISHED", 250);
        source.Set("table.entries", 7);
        (List<Sample> second, _, _) = Exposition.Parse(await registry.ExportAsync());

        Assert.Equal(2, source.Reads);
        Assert.Equal(100, Exposition.Value(first, "ctfw_packets_total", ("state", "established")));
        // Set to the source's value, not added to: a counter is never counted twice.
        Assert.Equal(250, Exposition.Value(second, "ctfw_packets_total", ("state", "established")));
        Assert.Equal(7, Exposition.Value(second, "ctfw_conntrack_entries"));
    }

    [Theory]
    [InlineData("state.ESTABLISHED", "ctfw_packets_total")]
    [InlineData("queue.12.verdict_sendmsg", "ctfw_queue_verdict_syscalls_total")]
    [InlineData("queue.3.lost_verdicts", "ctfw_queue_lost_verdicts_total")]
    [InlineData("ab.UNTRACKED.DROPPED", "ctfw_ab_packets_total")]
    [InlineData("gc.gen2", "ctfw_gc_collections_total")]
    [InlineData("rules.reload_failures", "ctfw_rules_reloads_total")]
    public void TryMap_KnownStatsName_GoesToItsFamily(string stat, string family)
    {
        Assert.True(MetricFamilies.TryMap(stat, out MetricTarget target));
        Assert.Equal(family, target.Family.Name);
        Assert.Equal(target.Family.Labels.Length, target.LabelValues.Length);
    }

    [Theory]
    [InlineData("halfclosed.flows")]
    [InlineData("queue.x.packets")]
    [InlineData("queue.1.nonsense")]
    [InlineData("ab.log")]
    [InlineData("ab.established.new")]
    [InlineData("gc.genx")]
    [InlineData("state.")]
    public void TryMap_UnknownOrMalformedName_IsNotExported(string stat)
    {
        Assert.False(MetricFamilies.TryMap(stat, out _));
    }
}

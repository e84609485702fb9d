using Ctfw.Cli.Daemon;

namespace Ctfw.Cli.Tests;

/// <summary>Rates over the last 1, 10 and 60 s from a ring of once-a-second samples.</summary>
public sealed class CounterRatesTests
{
    [Fact]
    public void TryRate_OneSample_NoRate()
    {
        var rates = new CounterRates(["packets"]);
        Assert.False(rates.TryRate(0, 1, out _));
        rates.Sample(1000, [5]);
        Assert.False(rates.TryRate(0, 1, out _));
        var into = new List<KeyValuePair<string, long>>();
        rates.Rates(into);
        Assert.Empty(into);
    }

    [Fact]
    public void TryRate_SteadyThenBurst_EachWindowItsOwnShare()
    {
        var rates = new CounterRates(["packets", "verdict.drop"]);
        long packets = 0, drops = 0;
        // 70 s at 100 packets/s, 1 drop/s; then one second at 10 100 packets/s.
        for (int s = 0; s <= 70; s++)
        {
            rates.Sample(s * 1000L, [packets, drops]);
            packets += 100;
            drops += 1;
        }
        packets += 10_000;
        rates.Sample(71_000, [packets, drops]);

        Assert.True(rates.TryRate(0, 1, out long p1));
        Assert.True(rates.TryRate(0, 10, out long p10));
        Assert.True(rates.TryRate(0, 60, out long p60));
        Assert.Equal((10_100L, 1_100L, 267L), (p1, p10, p60)); // (10 100 + 9·100)/10, (10 100 + 59·100)/60 rounded
        Assert.True(rates.TryRate(1, 60, out long d60));
        Assert.Equal(1, d60);

        var into = new List<KeyValuePair<string, long>>();
        rates.Rates(into);
        Assert.Equal(
        [
            new("rate.1s.packets", 10_100), new("rate.1s.verdict.drop", 1),
            new("rate.10s.packets", 1_100), new("rate.10s.verdict.drop", 1),
            new("rate.60s.packets", 267), new("rate.60s.verdict.drop", 1),
        ], into);
    }

    [Fact]
    public void TryRate_ShorterHistoryThanWindow_OverWhatThereIs()
    {
        var rates = new CounterRates(["packets"]);
        rates.Sample(0, [0]);
        rates.Sample(1000, [50]);
        rates.Sample(2000, [150]);
        Assert.True(rates.TryRate(0, 60, out long p60));
        Assert.Equal(75, p60); // 150 over the 2 s there are
        Assert.True(rates.TryRate(0, 1, out long p1));
        Assert.Equal(100, p1);
    }

    [Fact]
    public void TryRate_IrregularTimer_ScaledByTheRealInterval()
    {
        var rates = new CounterRates(["packets"]);
        rates.Sample(10_000, [0]);
        rates.Sample(11_500, [300]); // the timer fired late: 1.5 s
        Assert.True(rates.TryRate(0, 1, out long p1));
        Assert.Equal(200, p1);
    }

    [Fact]
    public void TryRate_TrafficStops_BackToZero_CounterZeroedReadsZero()
    {
        var rates = new CounterRates(["packets"]);
        rates.Sample(0, [0]);
        rates.Sample(1000, [1000]);
        rates.Sample(2000, [1000]);
        Assert.True(rates.TryRate(0, 1, out long idle));
        Assert.Equal(0, idle);
        rates.Sample(3000, [0]); // went down (zeroed): not a negative rate
        Assert.True(rates.TryRate(0, 1, out long zeroed));
        Assert.Equal(0, zeroed);
    }

    [Fact]
    public void Sample_RingWrapsAround_KeepsTheLastMinute()
    {
        var rates = new CounterRates(["packets"]);
        for (int s = 0; s < 500; s++)
            rates.Sample(s * 1000L, [s < 400 ? s * 1000L : 400_000 + (s - 400) * 10L]);
        Assert.True(rates.TryRate(0, 60, out long p60));
        Assert.Equal(10, p60); // only the last 60 s (10/s), none of the 1000/s before
        Assert.True(rates.TryRate(0, 600, out long all));
        Assert.Equal(10, all); // a window beyond the ring: over the 60 s it holds
    }

    [Fact]
    public void Sample_SameTimeTwice_Ignored_WrongLengthThrows()
    {
        var rates = new CounterRates(["packets"]);
        rates.Sample(1000, [0]);
        rates.Sample(2000, [100]);
        rates.Sample(2000, [5000]);
        Assert.True(rates.TryRate(0, 1, out long p1));
        Assert.Equal(100, p1);
        Assert.Throws<ArgumentException>(() => rates.Sample(3000, [1, 2]));
    }
}

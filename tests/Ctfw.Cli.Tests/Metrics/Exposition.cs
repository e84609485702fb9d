using System.Globalization;

namespace Ctfw.Cli.Tests.Metrics;

/// <summary>A sample of the Prometheus text format parsed back: family name, labels, value.</summary>
internal sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>
/// Parses the text exposition format (0.0.4) strictly enough to catch a malformed line: HELP and
/// TYPE comments, then <c>name{label="value",…} number</c> samples.
/// </summary>
internal static class Exposition
{
    public static (List<Sample> Samples, Dictionary<string, string> Types, Dictionary<string, string> Help) Parse(string text)
    {
        List<Sample> samples = [];
        Dictionary<string, string> types = [];
        Dictionary<string, string> help = [];
        foreach (string line in text.Split('\n'))
        {
            if (line.Length == 0)
                continue;
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                string[] parts = line[7..].Split(' ', 2);
                help[parts[0]] = parts.Length > 1 ? parts[1] : "";
                continue;
            }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                string[] parts = line[7..].Split(' ');
                Assert.Equal(2, parts.Length);
                types[parts[0]] = parts[1];
                continue;
            }
            Assert.False(line.StartsWith('#'), $"unexpected comment: {line}");
            int brace = line.IndexOf('{', StringComparison.Ordinal);
            int space = line.LastIndexOf(' ');
            Assert.True(space > 0, $"no value: {line}");
            string name;
            Dictionary<string, string> labels = [];
            if (brace >= 0 && brace < space)
            {
                name = line[..brace];
                int close = line.LastIndexOf('}');
                Assert.True(close > brace, $"unclosed labels: {line}");
                string body = line[(brace + 1)..close];
                int i = 0;
                while (i < body.Length)
                {
                    int eq = body.IndexOf("=\"", i, StringComparison.Ordinal);
                    Assert.True(eq > i, $"bad label: {line}");
                    string key = body[i..eq];
                    int end = body.IndexOf('"', eq + 2);
                    Assert.True(end > 0, $"unterminated label value: {line}");
                    labels[key] = body[(eq + 2)..end];
                    i = end + 1;
                    if (i < body.Length)
                    {
                        Assert.Equal(',', body[i]);
                        i++;
                    }
                }
            }
            else
            {
                name = line[..space];
            }
            Assert.True(double.TryParse(line[(space + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out double value), $"bad value: {line}");
            samples.Add(new Sample(name, labels, value));
        }
        return (samples, types, help);
    }

    public static double Value(List<Sample> samples, string name, params (string Key, string Value)[] labels)
    {
        Sample[] found = samples.Where(s => s.Name == name && s.Labels.Count == labels.Length
            && labels.All(l => s.Labels.TryGetValue(l.Key, out string? v) && v == l.Value)).ToArray();
        Assert.True(found.Length == 1, $"{found.Length} samples of {name}{{{string.Join(',', labels.Select(l => $"{l.Key}=\"{l.Value}\""))}}}");
        return found[0].Value;
    }
}

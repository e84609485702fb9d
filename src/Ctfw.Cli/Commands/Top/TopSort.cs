namespace Ctfw.Cli.Commands.Top;

/// <summary>What `ctfw top` sorts by; <c>s</c> cycles through them in this order.</summary>
internal enum TopSort
{
    Bytes,
    Packets,
    Age,
    Ttl,
    State,
    Protocol,
    Source,
    Destination,
}

internal static class TopSorts
{
    public static string Name(this TopSort sort) => sort switch
    {
        TopSort.Bytes => "bytes",
        TopSort.Packets => "packets",
        TopSort.Age => "age",
        TopSort.Ttl => "ttl",
        TopSort.State => "state",
        TopSort.Protocol => "proto",
        TopSort.Source => "src",
        TopSort.Destination => "dst",
        _ => sort.ToString(),
    };

    public static bool TryParse(string text, out TopSort sort)
    {
        foreach (TopSort s in Enum.GetValues<TopSort>())
        {
            if (string.Equals(text, s.Name(), StringComparison.OrdinalIgnoreCase))
            {
                sort = s;
                return true;
            }
        }
        sort = default;
        return false;
    }

    public static TopSort Next(this TopSort sort) => (TopSort)(((int)sort + 1) % Enum.GetValues<TopSort>().Length);

    /// <summary>The natural direction: biggest/oldest/most urgent first for numbers, A→Z for names.</summary>
    public static bool DescendingByDefault(this TopSort sort) => sort is TopSort.Bytes or TopSort.Packets or TopSort.Age;
}

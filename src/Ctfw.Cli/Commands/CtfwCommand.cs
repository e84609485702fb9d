using System.CommandLine;
using System.Text;

namespace Ctfw.Cli.Commands;

/// <summary>
/// A ctfw command: System.CommandLine's <see cref="Command"/> plus what its help shows besides the
/// options — the usage line, a description, option groups and the exit statuses it can return.
/// The help is written from these (see <see cref="HelpText"/>), so an option added with
/// <see cref="Add(Option, string?)"/> is in the help without touching any text.
/// </summary>
internal sealed class CtfwCommand : Command
{
    private readonly Dictionary<Option, string> _groups = new(ReferenceEqualityComparer.Instance);

    /// <param name="name">the command word</param>
    /// <param name="summary">one line for `ctfw --help`'s command list</param>
    /// <param name="usage">what follows `Usage: ctfw NAME `, e.g. "--rules FILE [OPTIONS]"</param>
    public CtfwCommand(string name, string summary, string usage)
        : base(name, summary)
    {
        Usage = usage;
    }

    /// <summary>What follows `Usage: ctfw NAME` in the help.</summary>
    public string Usage { get; }

    /// <summary>Paragraphs between the usage line and the options (blank lines kept as written).</summary>
    public string Details { get; init; } = "";

    /// <summary>Text after the options and before the exit statuses.</summary>
    public string Notes { get; init; } = "";

    /// <summary>Every exit status the command can return, with what it means, in the order shown.</summary>
    public IReadOnlyList<(int Code, string Meaning)> ExitCodes { get; init; } = [];

    /// <summary>Adds an option shown under <paramref name="group"/> in the help (default "Options").</summary>
    public void Add(Option option, string? group)
    {
        Add(option);
        if (group != null)
            _groups[option] = group;
    }

    public string GroupOf(Option option) => _groups.TryGetValue(option, out string? g) ? g : "Options";

    /// <summary>The help as `ctfw NAME --help` and `ctfw help NAME` print it.</summary>
    public string Help() => HelpText.Render(this);
}

/// <summary>Lays out a <see cref="CtfwCommand"/>'s help: wrapped at <see cref="Width"/>, option names in one column.</summary>
internal static class HelpText
{
    public const int Width = 100;
    private const int MaxColumn = 26;

    public static string Render(CtfwCommand command)
    {
        var sb = new StringBuilder();
        sb.Append("Usage: ctfw ").Append(command.Name);
        if (command.Usage.Length > 0)
            sb.Append(' ').Append(command.Usage);
        sb.Append("\n\n");
        if (command.Details.Length > 0)
            sb.Append(command.Details.TrimEnd()).Append("\n\n");

        List<(string Group, List<(string Head, string Text)> Rows)> groups = [];
        foreach (Option option in command.Options)
        {
            if (option.Hidden)
                continue;
            string group = command.GroupOf(option);
            int index = groups.FindIndex(g => g.Group == group);
            if (index < 0)
            {
                groups.Add((group, []));
                index = groups.Count - 1;
            }
            groups[index].Rows.Add((Head(option), option.Description ?? ""));
        }
        // --help is the root's (recursive), not in this command's list: shown with the options.
        int options = groups.FindIndex(g => g.Group == "Options");
        if (options < 0)
        {
            groups.Add(("Options", []));
            options = groups.Count - 1;
        }
        groups[options].Rows.Add(("  -h, --help", "show this help"));
        int column = Column(groups.SelectMany(g => g.Rows));
        foreach ((string group, List<(string Head, string Text)> rows) in groups)
        {
            sb.Append(group).Append(":\n");
            Rows(sb, rows, column);
            sb.Append('\n');
        }
        if (command.Notes.Length > 0)
            sb.Append(command.Notes.TrimEnd()).Append("\n\n");
        if (command.ExitCodes.Count > 0)
        {
            sb.Append("Exit status:\n");
            Rows(sb, [.. command.ExitCodes.Select(e => ($"  {e.Code}", e.Meaning))], column: 7);
        }
        return sb.ToString().TrimEnd() + "\n";
    }

    /// <summary>`  -s, --src, --orig-src ADDR`: short aliases, long aliases, the name, then the value's name.</summary>
    public static string Head(Option option)
    {
        List<string> names = [.. option.Aliases.Where(a => !a.StartsWith("--", StringComparison.Ordinal))];
        names.AddRange(option.Aliases.Where(a => a.StartsWith("--", StringComparison.Ordinal)));
        names.Add(option.Name);
        string head = "  " + string.Join(", ", names);
        if (option.HelpName is { Length: > 0 } value)
            head += " " + value;
        return head;
    }

    /// <summary>Two columns: heads padded to one column, texts wrapped; a head too long for it stands on its own line.</summary>
    public static void Rows(StringBuilder sb, IReadOnlyList<(string Head, string Text)> rows, int column = 0)
    {
        if (column == 0)
            column = Column(rows);
        foreach ((string head, string text) in rows)
        {
            List<string> lines = Wrap(text, Width - column);
            sb.Append(head);
            if (head.Length + 1 > column)
                sb.Append('\n').Append(' ', column);
            else
                sb.Append(' ', column - head.Length);
            for (int i = 0; i < lines.Count; i++)
            {
                if (i > 0)
                    sb.Append(' ', column);
                sb.Append(lines[i]).Append('\n');
            }
            if (lines.Count == 0)
                sb.Append('\n');
        }
    }

    /// <summary>The description column: two spaces after the longest head that fits under <see cref="MaxColumn"/>.</summary>
    private static int Column(IEnumerable<(string Head, string Text)> rows)
    {
        int column = 8;
        foreach ((string head, _) in rows)
        {
            if (head.Length + 2 <= MaxColumn)
                column = Math.Max(column, head.Length + 2);
        }
        return column;
    }

    /// <summary>Words to lines of at most <paramref name="width"/>; '\n' in the text is a forced break.</summary>
    public static List<string> Wrap(string text, int width)
    {
        List<string> lines = [];
        foreach (string paragraph in text.Split('\n'))
        {
            var line = new StringBuilder();
            foreach (string word in paragraph.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (line.Length > 0 && line.Length + 1 + word.Length > width)
                {
                    lines.Add(line.ToString());
                    line.Clear();
                }
                if (line.Length > 0)
                    line.Append(' ');
                line.Append(word);
            }
            lines.Add(line.ToString());
        }
        return lines;
    }
}

using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Ctfw.Cli.Commands;

/// <summary>Parses one option value; false leaves the error message to the caller.</summary>
internal delegate bool ValueParser<T>(string text, out T value);

/// <summary>
/// Option builders for the commands. Values are checked while parsing, so every bad value is one
/// line (`--queue 70000: expected 0..65535`) and exit status 2 before a command does anything.
/// </summary>
internal static class Opt
{
    /// <summary>A flag (no value).</summary>
    public static Option<bool> Flag(string name, string description, params string[] aliases) =>
        new(name, aliases) { Description = description, Arity = ArgumentArity.Zero };

    /// <summary>A free-text value (a path, a name): only an empty one is refused.</summary>
    public static Option<string> Text(string name, string valueName, string description, params string[] aliases)
    {
        var option = new Option<string>(name, aliases) { Description = description, HelpName = valueName };
        option.CustomParser = result =>
        {
            string text = Last(result);
            if (text.Length == 0)
                result.AddError($"{Used(result, name)} needs a non-empty {valueName}");
            return text;
        };
        return option;
    }

    /// <summary>A repeatable free-text value (`--set A=1 --set B=2`), in the order given.</summary>
    public static Option<string[]> Repeated(string name, string valueName, string description) =>
        new(name) { Description = description, HelpName = valueName, Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false };

    /// <summary>A value checked by <paramref name="parse"/>; a refusal reads `NAME VALUE: expected EXPECTED`.</summary>
    public static Option<T> Value<T>(string name, string valueName, string description, ValueParser<T> parse, string expected, params string[] aliases) =>
        Value(name, valueName, description, parse, (used, text) => $"{used} {text}: expected {expected}", aliases);

    /// <summary>A value checked by <paramref name="parse"/>; <paramref name="error"/> words a refusal from the name used and the text.</summary>
    public static Option<T> Value<T>(string name, string valueName, string description, ValueParser<T> parse, Func<string, string, string> error, params string[] aliases)
    {
        var option = new Option<T>(name, aliases) { Description = description, HelpName = valueName };
        option.CustomParser = result =>
        {
            string text = Last(result);
            if (parse(text, out T value))
                return value;
            result.AddError(error(Used(result, name), text));
            return default!;
        };
        return option;
    }

    /// <summary>A whole number in <paramref name="min"/>..<paramref name="max"/>; `NAME VALUE: expected MIN..MAX UNIT`.</summary>
    public static Option<int> Int(string name, string valueName, string description, int min, int max, string unit = "", params string[] aliases) =>
        Value(name, valueName, description, (string text, out int v) => TryInt(text, min, max, out v),
            string.Create(CultureInfo.InvariantCulture, $"{min}..{max}{(unit.Length > 0 ? " " + unit : "")}"), aliases);

    /// <summary>One of <paramref name="choices"/> (case-sensitive, as written in the help).</summary>
    public static Option<string> Choice(string name, string description, params string[] choices)
    {
        string expected = choices.Length == 2 ? $"{choices[0]} or {choices[1]}" : string.Join(", ", choices[..^1]) + " or " + choices[^1];
        ValueParser<string> parse = (string text, out string value) =>
        {
            value = text;
            return choices.Contains(text);
        };
        return Value(name, string.Join('|', choices), description, parse, expected).Completing(choices);
    }

    /// <summary>The values shell completion offers for the option (`ctfw completion bash`).</summary>
    public static Option<T> Completing<T>(this Option<T> option, params string[] values)
    {
        option.CompletionSources.Add(values);
        return option;
    }

    /// <summary>Whether the option is on the command line (a flag's or a default's implicit result is not).</summary>
    public static bool Given(this ParseResult result, Option option) => result.GetResult(option) is { Implicit: false };

    public static bool TryInt(string text, int min, int max, out int value) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value >= min && value <= max;

    /// <summary>The value of a single-valued option: the last one given (repeats are refused by the arity check).</summary>
    private static string Last(ArgumentResult result) => result.Tokens.Count == 0 ? "" : result.Tokens[^1].Value;

    /// <summary>The option's name as the user typed it (an alias, or the name).</summary>
    internal static string Used(SymbolResult result, string fallback) =>
        (result as OptionResult ?? result.Parent as OptionResult)?.IdentifierToken?.Value ?? fallback;
}

namespace Ctfw.Cli;

internal static class Program
{
    public static int Main(string[] args) => CommandLine.Invoke(CommandLine.Root(), args);

    /// <summary>
    /// Loads a ruleset for a command: errors as <c>file:line:col: message</c> and one closing line
    /// ("…, nothing <paramref name="nothing"/>"), warnings marked; null when it did not load.
    /// </summary>
    public static Ctfw.Rules.Ruleset? LoadRules(string path, string nothing)
    {
        if (!Ctfw.Rules.Ruleset.TryLoadFile(path, out Ctfw.Rules.Ruleset? rules, out IReadOnlyList<Ctfw.Rules.RuleError> errors) || rules is null)
        {
            foreach (Ctfw.Rules.RuleError error in errors)
                Console.Error.WriteLine(error.ToString());
            Console.Error.WriteLine($"ctfw: {path}: {errors.Count} error{(errors.Count == 1 ? "" : "s")}, nothing {nothing}");
            return null;
        }
        foreach (Ctfw.Rules.RuleError warning in rules.Warnings)
            Console.Error.WriteLine($"{warning} (warning)");
        return rules;
    }

    /// <summary>A usage error: one line on stderr, exit status 2.</summary>
    public static int Fail(string message)
    {
        Console.Error.WriteLine($"ctfw: {message}");
        return CommandLine.UsageExit;
    }
}

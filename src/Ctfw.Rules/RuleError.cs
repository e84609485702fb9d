namespace Ctfw.Rules;

/// <summary>
/// One problem found while loading a ruleset, located as compilers do: 1-based line and column
/// (in characters) of the token at fault. <see cref="ToString"/> gives "file:line:col: message".
/// </summary>
public sealed record RuleError(string File, int Line, int Column, string Message)
{
    public override string ToString() => $"{File}:{Line}:{Column}: {Message}";
}

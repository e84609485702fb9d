namespace Ctfw.Cli;

/// <summary>A small, strict argument reader: every problem is one clear line and exit code 2.</summary>
internal sealed class CommandLine
{
    private readonly string[] _args;
    private int _pos;

    public CommandLine(string[] args, int start)
    {
        _args = args;
        _pos = start;
    }

    public string? Error { get; private set; }

    public bool TryNext(out string arg)
    {
        if (_pos < _args.Length)
        {
            arg = _args[_pos++];
            return true;
        }
        arg = "";
        return false;
    }

    /// <summary>The next argument without consuming it (for options with an optional value).</summary>
    public bool TryPeek(out string arg)
    {
        arg = _pos < _args.Length ? _args[_pos] : "";
        return _pos < _args.Length;
    }

    /// <summary>Value of an option given as `--name value` or `--name=value`.</summary>
    public bool TryValue(string arg, string name, out string value)
    {
        value = "";
        if (arg == name)
        {
            if (_pos >= _args.Length)
            {
                Error = $"option {name} needs a value";
                return false;
            }
            value = _args[_pos++];
            return true;
        }
        if (arg.StartsWith(name + "=", StringComparison.Ordinal))
        {
            value = arg[(name.Length + 1)..];
            return true;
        }
        return false;
    }

    public void Fail(string message) => Error ??= message;
}

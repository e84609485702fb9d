using System.Text;

namespace Ctfw.Rules.Parsing;

/// <summary>One word of a rule line and the 1-based column it starts at.</summary>
internal readonly record struct Token(string Text, int Column, bool Quoted);

/// <summary>
/// Splits a line into words the way iptables-restore's <c>add_param_to_argv</c> does: blanks separate
/// words; a double quote opens a quoted stretch in which blanks are literal and a backslash escapes
/// the next character; the closing quote ends the word (so <c>""</c> is an empty word). Outside quotes
/// a backslash is an ordinary character. This is the inverse of iptables-save's
/// <c>xtables_save_string</c>, which quotes any value with characters outside [A-Za-z0-9_-] and
/// escapes <c>" \ '</c> inside.
/// </summary>
internal static class Tokenizer
{
    public static bool TryTokenize(string line, List<Token> tokens, out int errorColumn)
    {
        tokens.Clear();
        var word = new StringBuilder();
        int start = -1;
        int quoteColumn = 0;
        bool inQuote = false, escaped = false, quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (inQuote)
            {
                if (escaped)
                {
                    word.Append(c);
                    escaped = false;
                }
                else if (c == '\\')
                {
                    escaped = true;
                }
                else if (c == '"')
                {
                    inQuote = false;
                    tokens.Add(new Token(word.ToString(), start + 1, true));
                    word.Clear();
                    start = -1;
                    quoted = false;
                }
                else
                {
                    word.Append(c);
                }
                continue;
            }
            if (c == '"')
            {
                if (start < 0)
                    start = i;
                inQuote = quoted = true;
                quoteColumn = i + 1;
                continue;
            }
            if (c is ' ' or '\t' or '\r')
            {
                if (start >= 0)
                {
                    tokens.Add(new Token(word.ToString(), start + 1, quoted));
                    word.Clear();
                    start = -1;
                    quoted = false;
                }
                continue;
            }
            if (start < 0)
                start = i;
            word.Append(c);
        }
        if (inQuote)
        {
            errorColumn = quoteColumn;
            return false;
        }
        if (start >= 0)
            tokens.Add(new Token(word.ToString(), start + 1, quoted));
        errorColumn = 0;
        return true;
    }

    /// <summary>iptables-save's <c>xtables_save_string</c>: the word as it would be written back.</summary>
    public static string Quote(string value)
    {
        bool plain = value.Length > 0;
        foreach (char c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
            {
                plain = false;
                break;
            }
        }
        if (plain)
            return value;
        var sb = new StringBuilder(value.Length + 2);
        sb.Append('"');
        foreach (char c in value)
        {
            if (c is '"' or '\\' or '\'')
                sb.Append('\\');
            sb.Append(c);
        }
        return sb.Append('"').ToString();
    }
}

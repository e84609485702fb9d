using System.Globalization;

namespace Ctfw.Kernel.Tests.Recording;

/// <summary>One line of a <c>&lt;scenario&gt;.tsv</c> file.</summary>
public sealed record KernelRow(int Index, KernelVerdict Verdict)
{
    public string ToTsv() =>
        string.Create(CultureInfo.InvariantCulture, $"{Index}\t{Verdict.CtState}\t{Verdict.Direction}\t{Verdict.TcpState}\t{Verdict.Reason}");

    public static KernelRow Parse(string line)
    {
        string[] c = line.Split('\t');
        if (c.Length != 5 || !int.TryParse(c[0], NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            throw new FormatException($"not a kernel tsv row (index, ctstate, direction, TCP or SCTP state, reason): '{line}'");
        if (!CtStates.All.Contains(c[1]) || c[2] is not (CtDirections.Original or CtDirections.Reply or CtDirections.None)
            || !(TcpStates.All.Contains(c[3]) || SctpStates.All.Contains(c[3])))
        {
            throw new FormatException($"unknown ctstate, direction or TCP/SCTP state in '{line}'");
        }
        return new KernelRow(index, new KernelVerdict(c[1], c[2], c[3], c[4]));
    }
}

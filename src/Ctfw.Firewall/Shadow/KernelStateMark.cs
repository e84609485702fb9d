using System.Globalization;
using Ctfw.Conntrack;

namespace Ctfw.Firewall.Shadow;

/// <summary>
/// How shadow mode (<c>ctfw run --ab kernel</c>) carries the kernel's classification of a packet to
/// ctfw: mangle-table rules that run after kernel conntrack and before the filter table's NFQUEUE
/// rule write the packet's <c>--ctstate</c> and <c>--ctdir</c> into four bits of the packet mark
/// (skb->mark), which NFQUEUE hands over with the packet (NFQA_MARK).
/// <code>
///   bits  shift+0..2  ctstate code: 0 = not marked (the rules did not run), 1 NEW, 2 ESTABLISHED,
///                     3 RELATED, 4 INVALID, 5 UNTRACKED
///         shift+3     1 = REPLY direction (only with NEW / ESTABLISHED / RELATED)
/// </code>
/// The default shift, 24, uses mask 0x0f000000; operators whose own mark bits overlap move the field
/// with <c>--ab-mark-shift</c>. The rules leave every other mark bit as it was.
/// </summary>
public readonly record struct KernelStateMark(int Shift)
{
    public const int DefaultShift = 24;

    private const uint StateBits = 0x7;
    private const uint ReplyBit = 0x8;

    /// <summary>The four bits this layout owns.</summary>
    public uint Mask => 0xFu << Shift;

    public static bool IsValidShift(int shift) => shift is >= 0 and <= 28;

    /// <summary>
    /// Decodes <paramref name="mark"/>. False when the state field is 0 or not a known code (the
    /// packet was queued without passing the marking rules).
    /// </summary>
    public bool TryDecode(uint mark, out CtState state, out CtDirection direction)
    {
        uint field = (mark >> Shift) & 0xF;
        direction = CtDirection.None;
        switch (field & StateBits)
        {
            case 1: state = CtState.New; break;
            case 2: state = CtState.Established; break;
            case 3: state = CtState.Related; break;
            case 4: state = CtState.Invalid; return true;
            case 5: state = CtState.Untracked; return true;
            default:
                state = CtState.Invalid;
                return false;
        }
        direction = (field & ReplyBit) != 0 ? CtDirection.Reply : CtDirection.Original;
        return true;
    }

    /// <summary>The mark value (within <see cref="Mask"/>) that encodes a state and direction.</summary>
    public uint Encode(CtState state, CtDirection direction)
    {
        uint code = state switch
        {
            CtState.New => 1u,
            CtState.Established => 2u,
            CtState.Related => 3u,
            CtState.Invalid => 4u,
            CtState.Untracked => 5u,
            _ => throw new ArgumentOutOfRangeException(nameof(state), state, "not a ctstate the kernel reports"),
        };
        if (direction == CtDirection.Reply && code <= 3)
            code |= ReplyBit;
        return code << Shift;
    }

    /// <summary>
    /// The rule bodies (after <c>-A CHAIN</c>) that encode the kernel's verdict, in order: one
    /// <c>--set-xmark</c> per ctstate (each clears the whole field, direction bit included, so a mark
    /// left by an earlier hook never leaks through), then the direction bit for REPLY packets.
    /// </summary>
    public IReadOnlyList<string[]> RuleBodies()
    {
        string mask = Hex(Mask);
        List<string[]> rules = [];
        foreach (CtState state in (CtState[])[CtState.New, CtState.Established, CtState.Related, CtState.Invalid, CtState.Untracked])
        {
            rules.Add(["-m", "conntrack", "--ctstate", CtNames.Name(state), "-j", "MARK", "--set-xmark", $"{Hex(Encode(state, CtDirection.Original))}/{mask}"]);
        }
        string reply = Hex(ReplyBit << Shift);
        rules.Add(["-m", "conntrack", "--ctdir", "REPLY", "-j", "MARK", "--set-xmark", $"{reply}/{reply}"]);
        return rules;
    }

    private static string Hex(uint value) => "0x" + value.ToString("x8", CultureInfo.InvariantCulture);
}

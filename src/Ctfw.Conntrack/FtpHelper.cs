using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>What a helper decided about one packet.</summary>
internal enum HelperVerdict : byte
{
    /// <summary>Nothing to expect; the packet passes.</summary>
    Accept,
    /// <summary>An expectation is to be added (<see cref="FtpCommand"/> says of what).</summary>
    Expect,
    /// <summary>A command cut short (the kernel's "partial"): the kernel drops the packet.</summary>
    Drop,
}

/// <summary>An address and port an FTP command or reply announced.</summary>
internal struct FtpCommand
{
    public IpAddress Address;
    public ushort Port;
}

/// <summary>
/// The FTP helper's reading of one control-connection segment (nf_conntrack_ftp.c, 6.x): no I/O,
/// no allocation. The kernel looks only at the start of a segment, and only at a segment that
/// begins right after one that ended in '\n' in the same direction (it remembers two such
/// sequence numbers per direction: seq_aft_nl). So a command split across segments is read only
/// when its first part is the whole segment's start: a first part that is a prefix of a pattern,
/// or that breaks off before the numbers end, is "partial" and the packet is dropped; the rest of a
/// split command never starts a segment after '\n', so it is not read. Commands after the first
/// line of a segment are not read either.
/// <para>Client to server: <c>PORT h1,h2,h3,h4,p1,p2\r</c> and <c>EPRT |af|addr|port|</c>;
/// server to client: <c>227 </c> (the first digit on: six numbers) and <c>229 </c> (<c>(|||port|)</c>).
/// Patterns are matched without regard to case.</para>
/// </summary>
internal static class FtpHelper
{
    /// <summary>ftp_exp_policy: one expectation per control connection, 5 minutes.</summary>
    public const int MaxExpected = 1;
    public const int TimeoutSeconds = 300;
    /// <summary>NUM_SEQ_TO_REMEMBER.</summary>
    private const int SeqToRemember = 2;

    private enum Getnum : byte { Rfc959, Eprt, Rfc1123, EpsvResponse }

    /// <summary>
    /// help() on a segment of an ESTABLISHED control connection, entry locked. <paramref name="dir"/>
    /// 0 = client to server. <paramref name="sender"/> is the sending side's address (the address the
    /// kernel presets, as EPSV names none). Updates the '\n' sequence state.
    /// </summary>
    public static HelperVerdict Segment(ref HelperSlot h, int dir, uint seq, ReadOnlySpan<byte> data, bool v6, IpAddress sender, out FtpCommand cmd)
    {
        cmd = default;
        if (data.IsEmpty)
            return HelperVerdict.Accept;
        bool endsInNl = data[^1] == (byte)'\n';
        uint seqAfter = seq + (uint)data.Length;
        HelperVerdict verdict = HelperVerdict.Accept;
        if (FindNlSeq(h, dir, seq))
        {
            cmd.Address = sender;
            int found = dir == 0
                ? First(FindPattern(data, "PORT"u8, (byte)' ', (byte)'\r', Getnum.Rfc959, v6, ref cmd),
                        data, "EPRT"u8, (byte)' ', (byte)'\r', Getnum.Eprt, v6, ref cmd)
                : First(FindPattern(data, "227 "u8, 0, 0, Getnum.Rfc1123, v6, ref cmd),
                        data, "229 "u8, (byte)'(', (byte)')', Getnum.EpsvResponse, v6, ref cmd);
            if (found < 0)
                return HelperVerdict.Drop; // the kernel returns before it updates the '\n' state
            if (found > 0)
                verdict = HelperVerdict.Expect;
        }
        if (endsInNl)
            UpdateNlSeq(ref h, dir, seqAfter);
        return verdict;
    }

    private static int First(int found, ReadOnlySpan<byte> data, ReadOnlySpan<byte> pattern, byte skip, byte term, Getnum getnum, bool v6, ref FtpCommand cmd) =>
        found != 0 ? found : FindPattern(data, pattern, skip, term, getnum, v6, ref cmd);

    private static bool FindNlSeq(in HelperSlot h, int dir, uint seq)
    {
        int n = dir == 0 ? h.NlCount0 : h.NlCount1;
        uint a = dir == 0 ? h.Nl0A : h.Nl1A, b = dir == 0 ? h.Nl0B : h.Nl1B;
        return (n > 0 && a == seq) || (n > 1 && b == seq);
    }

    /// <summary>update_nl_seq: remember <paramref name="nlSeq"/>; with both places taken, replace the older if it is older.</summary>
    private static void UpdateNlSeq(ref HelperSlot h, int dir, uint nlSeq)
    {
        ref byte n = ref dir == 0 ? ref h.NlCount0 : ref h.NlCount1;
        ref uint a = ref dir == 0 ? ref h.Nl0A : ref h.Nl1A;
        ref uint b = ref dir == 0 ? ref h.Nl0B : ref h.Nl1B;
        if ((n > 0 && a == nlSeq) || (n > 1 && b == nlSeq))
            return;
        if (n < SeqToRemember)
        {
            if (n == 0)
                a = nlSeq;
            else
                b = nlSeq;
            n++;
            return;
        }
        // The older place (before(): wrapping comparison), replaced only by a later sequence number.
        ref uint oldest = ref (int)(a - b) < 0 ? ref a : ref b;
        if ((int)(nlSeq - oldest) > 0)
            oldest = nlSeq;
    }

    /// <summary>find_pattern: 1 match, 0 none, −1 partial.</summary>
    private static int FindPattern(ReadOnlySpan<byte> data, ReadOnlySpan<byte> pattern, byte skip, byte term, Getnum getnum, bool v6, ref FtpCommand cmd)
    {
        int dlen = data.Length, plen = pattern.Length;
        if (dlen == 0)
            return 0;
        if (dlen <= plen)
            return EqualsIgnoreCase(data, pattern[..dlen]) ? -1 : 0;
        if (!EqualsIgnoreCase(data[..plen], pattern))
            return 0;
        int i = plen;
        if (skip != 0)
        {
            for (; data[i] != skip; i++)
            {
                if (i == dlen - 1)
                    return -1;
            }
            i++;
        }
        ReadOnlySpan<byte> rest = data[i..];
        int numlen = getnum switch
        {
            Getnum.Rfc959 => TryRfc959(rest, term, ref cmd),
            Getnum.Rfc1123 => TryRfc1123(rest, ref cmd),
            Getnum.Eprt => TryEprt(rest, v6, ref cmd),
            _ => TryEpsvResponse(rest, ref cmd),
        };
        return numlen == 0 ? -1 : 1;
    }

    /// <summary>strncasecmp over equal lengths; patterns hold no NUL, so a NUL in the data mismatches as there.</summary>
    private static bool EqualsIgnoreCase(ReadOnlySpan<byte> data, ReadOnlySpan<byte> pattern)
    {
        for (int i = 0; i < pattern.Length; i++)
        {
            if (Lower(data[i]) != Lower(pattern[i]))
                return false;
        }
        return true;
    }

    private static byte Lower(byte c) => c is >= (byte)'A' and <= (byte)'Z' ? (byte)(c | 0x20) : c;

    private static bool IsDigit(byte c) => c is >= (byte)'0' and <= (byte)'9';

    /// <summary>
    /// try_number: <paramref name="count"/> decimal numbers separated by <paramref name="sep"/>, ended by
    /// <paramref name="term"/> (any character when 0). Returns the length read, or 0. The numbers are
    /// not range-checked (u32 arithmetic), as in released kernels.
    /// </summary>
    private static int TryNumber(ReadOnlySpan<byte> data, Span<uint> numbers, byte sep, byte term)
    {
        numbers.Clear();
        int i = 0;
        for (int len = 0; len < data.Length && i < numbers.Length; len++)
        {
            byte c = data[len];
            if (IsDigit(c))
                numbers[i] = unchecked((numbers[i] * 10) + (uint)(c - '0'));
            else if (c == sep)
                i++;
            else
                return (c == term || term == 0) && i == numbers.Length - 1 ? len : 0;
        }
        return 0;
    }

    private static int TryRfc959(ReadOnlySpan<byte> data, byte term, ref FtpCommand cmd)
    {
        Span<uint> n = stackalloc uint[6];
        int length = TryNumber(data, n, (byte)',', term);
        if (length == 0)
            return 0;
        uint ip = unchecked((n[0] << 24) | (n[1] << 16) | (n[2] << 8) | n[3]);
        // The kernel writes the IPv4 address over the first four bytes of the preset address: for an
        // IPv6 control connection the result then differs from the sender's address and is not used.
        cmd.Address = new IpAddress(((ulong)ip << 32) | (cmd.Address.Hi & 0xFFFF_FFFFUL), cmd.Address.Lo);
        cmd.Port = unchecked((ushort)((n[4] << 8) | n[5]));
        return length;
    }

    /// <summary>try_rfc1123: the 227 reply's numbers start at its first digit (RFC 1123 4.1.2.6).</summary>
    private static int TryRfc1123(ReadOnlySpan<byte> data, ref FtpCommand cmd)
    {
        int i = 0;
        while (i < data.Length && !IsDigit(data[i]))
            i++;
        return i == data.Length ? 0 : TryRfc959(data[i..], 0, ref cmd);
    }

    /// <summary>get_port: a non-zero number up to <paramref name="delim"/>; returns the index after it, or 0.</summary>
    private static int GetPort(ReadOnlySpan<byte> data, int start, byte delim, ref FtpCommand cmd)
    {
        ushort port = 0;
        for (int i = start; i < data.Length; i++)
        {
            byte c = data[i];
            if (c == delim)
            {
                if (port == 0)
                    return 0;
                cmd.Port = port;
                return i + 1;
            }
            if (!IsDigit(c))
                return 0;
            port = unchecked((ushort)((port * 10) + (c - '0')));
        }
        return 0;
    }

    private static bool BadDelimiter(byte d) => IsDigit(d) || d < 33 || d > 126;

    /// <summary>try_eprt: <c>|1|a.b.c.d|port|</c> on IPv4, <c>|2|v6addr|port|</c> on IPv6 (the other family is refused).</summary>
    private static int TryEprt(ReadOnlySpan<byte> data, bool v6, ref FtpCommand cmd)
    {
        if (data.Length <= 3)
            return 0;
        byte delim = data[0];
        if (BadDelimiter(delim) || data[2] != delim)
            return 0;
        if (data[1] != (v6 ? (byte)'2' : (byte)'1'))
            return 0;
        int length;
        if (!v6)
        {
            Span<uint> n = stackalloc uint[4];
            length = TryNumber(data[3..], n, (byte)'.', delim);
            if (length != 0)
                cmd.Address = IpAddress.FromV4(unchecked((n[0] << 24) | (n[1] << 16) | (n[2] << 8) | n[3]));
        }
        else
        {
            length = Ipv6Text.TryParse(data[3..], delim, out IpAddress a);
            if (length != 0)
                cmd.Address = a;
        }
        return length == 0 ? 0 : GetPort(data, 3 + length + 1, delim, ref cmd);
    }

    /// <summary>try_epsv_response: <c>|||port|</c> (any printable non-digit delimiter, three times).</summary>
    private static int TryEpsvResponse(ReadOnlySpan<byte> data, ref FtpCommand cmd)
    {
        if (data.Length <= 3)
            return 0;
        byte delim = data[0];
        if (BadDelimiter(delim) || data[1] != delim || data[2] != delim)
            return 0;
        return GetPort(data, 3, delim, ref cmd);
    }
}

/// <summary>
/// IPv6 text as the kernel's in6_pton reads it up to a delimiter: hex groups of at most four digits,
/// one "::", an IPv4 dotted quad as the last 32 bits. No allocation.
/// </summary>
internal static class Ipv6Text
{
    /// <summary>Returns the length of the address text (the index of <paramref name="delim"/>), or 0 when it is not an address ended by <paramref name="delim"/>.</summary>
    public static int TryParse(ReadOnlySpan<byte> s, byte delim, out IpAddress address)
    {
        address = default;
        Span<ushort> groups = stackalloc ushort[8];
        int n = 0, gap = -1, i = 0;
        if (s.Length >= 2 && s[0] == ':' && s[1] == ':')
        {
            gap = 0;
            i = 2;
        }
        else if (s.Length >= 1 && s[0] == ':')
        {
            return 0;
        }
        while (i < s.Length && s[i] != delim)
        {
            int start = i;
            int value = 0;
            while (i < s.Length && i - start < 5 && HexValue(s[i]) is int v and >= 0)
            {
                value = (value << 4) | v;
                i++;
            }
            if (i < s.Length && s[i] == '.')
            {
                // Dotted IPv4 for the last two groups.
                if (n > 6 || !TryDotted(s, start, delim, out uint v4, out i))
                    return 0;
                groups[n++] = (ushort)(v4 >> 16);
                groups[n++] = (ushort)v4;
                break;
            }
            int digits = i - start;
            if (digits == 0 || digits > 4 || n == 8)
                return 0;
            groups[n++] = (ushort)value;
            if (i >= s.Length)
                return 0;
            if (s[i] == delim)
                break;
            if (s[i] != ':')
                return 0;
            i++;
            if (i < s.Length && s[i] == ':')
            {
                if (gap >= 0)
                    return 0;
                gap = n;
                i++;
            }
            else if (i < s.Length && s[i] == delim)
            {
                return 0; // a trailing single ':'
            }
        }
        if (i >= s.Length || s[i] != delim)
            return 0;
        if (gap < 0 ? n != 8 : n > 7)
            return 0;
        Span<ushort> full = stackalloc ushort[8];
        full.Clear();
        if (gap < 0)
        {
            groups.CopyTo(full);
        }
        else
        {
            groups[..gap].CopyTo(full);
            int tail = n - gap;
            groups.Slice(gap, tail).CopyTo(full[(8 - tail)..]);
        }
        ulong hi = 0, lo = 0;
        for (int g = 0; g < 4; g++)
        {
            hi = (hi << 16) | full[g];
            lo = (lo << 16) | full[g + 4];
        }
        address = new IpAddress(hi, lo);
        return i;
    }

    private static bool TryDotted(ReadOnlySpan<byte> s, int start, byte delim, out uint value, out int end)
    {
        value = 0;
        end = start;
        int parts = 0;
        uint part = 0;
        int digits = 0;
        int i = start;
        for (; i < s.Length && s[i] != delim; i++)
        {
            byte c = s[i];
            if (c is >= (byte)'0' and <= (byte)'9')
            {
                part = (part * 10) + (uint)(c - '0');
                if (++digits > 3 || part > 255)
                    return false;
            }
            else if (c == '.' && digits > 0 && parts < 3)
            {
                value = (value << 8) | part;
                parts++;
                part = 0;
                digits = 0;
            }
            else
            {
                return false;
            }
        }
        if (parts != 3 || digits == 0)
            return false;
        value = (value << 8) | part;
        end = i;
        return true;
    }

    private static int HexValue(byte c) => c switch
    {
        >= (byte)'0' and <= (byte)'9' => c - '0',
        >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
        _ => -1,
    };
}

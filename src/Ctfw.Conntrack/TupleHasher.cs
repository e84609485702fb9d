using System.Numerics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace Ctfw.Conntrack;

/// <summary>
/// Keyed hash of a tuple: SipHash-1-3 (Aumasson &amp; Bernstein, https://www.aumasson.jp/siphash/)
/// over the tuple's five 64-bit words, with a key drawn from the OS RNG once per table. The kernel
/// uses siphash with a random key too (§3.2); a keyed PRF is what keeps remote senders from
/// choosing tuples that collide (hash flooding).
/// </summary>
internal sealed class TupleHasher
{
    private readonly ulong _k0;
    private readonly ulong _k1;

    public TupleHasher(ulong? seed = null)
    {
        if (seed is ulong s)
        {
            _k0 = s ^ 0x736f6d6570736575UL;
            _k1 = (s * 0x9E3779B97F4A7C15UL) ^ 0x646f72616e646f6dUL;
        }
        else
        {
            Span<byte> key = stackalloc byte[16];
            RandomNumberGenerator.Fill(key);
            _k0 = BitConverter.ToUInt64(key);
            _k1 = BitConverter.ToUInt64(key[8..]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Hash(in ConnTuple t)
    {
        ref ulong w = ref Unsafe.As<ConnTuple, ulong>(ref Unsafe.AsRef(in t));
        ulong v0 = _k0 ^ 0x736f6d6570736575UL;
        ulong v1 = _k1 ^ 0x646f72616e646f6dUL;
        ulong v2 = _k0 ^ 0x6c7967656e657261UL;
        ulong v3 = _k1 ^ 0x7465646279746573UL;
        Compress(ref v0, ref v1, ref v2, ref v3, w);
        Compress(ref v0, ref v1, ref v2, ref v3, Unsafe.Add(ref w, 1));
        Compress(ref v0, ref v1, ref v2, ref v3, Unsafe.Add(ref w, 2));
        Compress(ref v0, ref v1, ref v2, ref v3, Unsafe.Add(ref w, 3));
        Compress(ref v0, ref v1, ref v2, ref v3, Unsafe.Add(ref w, 4));
        Compress(ref v0, ref v1, ref v2, ref v3, 40UL << 56);
        v2 ^= 0xff;
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        return v0 ^ v1 ^ v2 ^ v3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Compress(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3, ulong m)
    {
        v3 ^= m;
        Round(ref v0, ref v1, ref v2, ref v3);
        v0 ^= m;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Round(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3)
    {
        v0 += v1; v1 = BitOperations.RotateLeft(v1, 13); v1 ^= v0; v0 = BitOperations.RotateLeft(v0, 32);
        v2 += v3; v3 = BitOperations.RotateLeft(v3, 16); v3 ^= v2;
        v0 += v3; v3 = BitOperations.RotateLeft(v3, 21); v3 ^= v0;
        v2 += v1; v1 = BitOperations.RotateLeft(v1, 17); v1 ^= v2; v2 = BitOperations.RotateLeft(v2, 32);
    }
}

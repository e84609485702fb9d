using System.Buffers.Binary;
using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>What <see cref="ConntrackEngine.WriteState"/> wrote.</summary>
public readonly record struct StateWriteResult(long Entries, long Tombstones, long Bytes);

// State that survives the process: the table and the tombstones to a stream and back (format in StateFile.cs).
public sealed partial class ConntrackEngine
{
    /// <summary>
    /// Writes every live entry and live tombstone to <paramref name="output"/> (format: <see cref="StateFile"/>)
    /// while workers keep classifying. Timeouts are stored relative to <paramref name="nowMs"/> (engine
    /// clock) with <paramref name="wallClockUnixMs"/> (UTC) as the write time.
    /// </summary>
    /// <remarks>
    /// <para><b>Consistency.</b> Each entry is copied under its own lock (the one a worker holds for a
    /// tracker step), so one entry's fields — the two directions' windows, state, status, deadline and
    /// ages — come from between two packets, never from the middle of one; a lock-free read, as listings
    /// do, could pair one packet's td_end with another's td_maxwin and make the restored entry judge the
    /// next segment differently. The set is a moving cut, like <c>conntrack -L</c>: entries created or
    /// killed during the walk may or may not be in it.</para>
    /// <para><b>Cost to workers.</b> No global stop: the walk takes one entry lock at a time for a copy
    /// of ~200 bytes. It holds the reader epoch slot only while it collects and copies one block
    /// (about <see cref="StateFile.RecordsPerBlock"/> entries), and leaves it before writing the block, so
    /// stream I/O never delays reclamation. Memory: one block buffer, never a copy of the table.</para>
    /// </remarks>
    public StateWriteResult WriteState(Stream output, long nowMs, long wallClockUnixMs)
    {
        ArgumentNullException.ThrowIfNull(output);
        var block = new byte[StateFile.BlockHeaderSize + (StateFile.RecordsPerBlock * 2 * StateFile.EntrySize)];
        var header = new byte[StateFile.HeaderSize];
        StateFile.WriteHeader(header, wallClockUnixMs, nowMs, Settings.Max);
        output.Write(header);
        long bytes = StateFile.HeaderSize;

        // Entries, a block at a time.
        var picked = new List<int>(StateFile.RecordsPerBlock * 2);
        int maxRecords = (block.Length - StateFile.BlockHeaderSize) / StateFile.EntrySize;
        long entries = 0;
        int bucket = 0;
        int buckets = Table.BucketCount;
        while (bucket < buckets)
        {
            int n = 0;
            lock (_readerLock)
            {
                Table.Epochs.Enter(_readerSlot);
                try
                {
                    picked.Clear();
                    while (bucket < buckets && picked.Count < StateFile.RecordsPerBlock)
                        Table.CollectLive(bucket++, nowMs, picked);
                    foreach (int idx in picked)
                    {
                        if (n == maxRecords)
                        {
                            // A pathological chain: write the full block inside the epoch rather than grow.
                            bytes += FlushBlock(output, block, StateFile.KindEntries, n, StateFile.EntrySize);
                            entries += n;
                            n = 0;
                        }
                        if (CopyEntry(idx, nowMs, block.AsSpan(StateFile.BlockHeaderSize + (n * StateFile.EntrySize), StateFile.EntrySize)))
                            n++;
                    }
                }
                finally
                {
                    Table.Epochs.Exit(_readerSlot);
                }
            }
            if (n > 0)
            {
                bytes += FlushBlock(output, block, StateFile.KindEntries, n, StateFile.EntrySize);
                entries += n;
            }
        }

        // Tombstones: a seqlock copy per slot, in stored order from the (racily read) head.
        long tombstones = 0;
        TombstoneStore? store = Table.Tombstones;
        if (store != null)
        {
            int perBlock = Math.Min(StateFile.RecordsPerBlock, (block.Length - StateFile.BlockHeaderSize) / StateFile.TombstoneSize);
            int n = 0;
            int head = store.HeadHint;
            for (int i = 0; i < store.Capacity; i++)
            {
                int slot = (head + i) % store.Capacity;
                if (!store.TryCopyLive(slot, out Tombstone t) || nowMs - t.ExpiredAtMs > store.WindowMs || t.ExpiredAtMs - nowMs > 0)
                    continue;
                StateFile.WriteTombstone(block.AsSpan(StateFile.BlockHeaderSize + (n * StateFile.TombstoneSize)), t, nowMs);
                if (++n == perBlock)
                {
                    bytes += FlushBlock(output, block, StateFile.KindTombstones, n, StateFile.TombstoneSize);
                    tombstones += n;
                    n = 0;
                }
            }
            if (n > 0)
            {
                bytes += FlushBlock(output, block, StateFile.KindTombstones, n, StateFile.TombstoneSize);
                tombstones += n;
            }
        }

        Span<byte> end = stackalloc byte[StateFile.BlockHeaderSize + StateFile.EndPayloadSize];
        BinaryPrimitives.WriteUInt64LittleEndian(end[StateFile.BlockHeaderSize..], (ulong)entries);
        BinaryPrimitives.WriteUInt64LittleEndian(end[(StateFile.BlockHeaderSize + 8)..], (ulong)tombstones);
        StateFile.SealBlock(end, StateFile.KindEnd, 0, StateFile.EndPayloadSize);
        output.Write(end);
        bytes += end.Length;
        return new StateWriteResult(entries, tombstones, bytes);
    }

    /// <summary>Encodes entry <paramref name="idx"/> from a copy taken under its lock; false if it died or expired meanwhile.</summary>
    private bool CopyEntry(int idx, long now, Span<byte> record)
    {
        ref ConnEntry e = ref Table.Entries[idx];
        Table.Lock(idx);
        // Under the lock: no tracker step is half done. Status is still ORed lock-free by killers, so
        // Dying may be set right after this read: the entry is then written though already dead, as a
        // listing would show it; the restore gives it its remaining timeout (a moving cut).
        uint status = Volatile.Read(ref e.Status);
        ConnEntry copy = e;
        FlowAge age = Table.Ages[idx];
        HelperSlot[]? helpers = Volatile.Read(ref Table.Helpers);
        HelperSlot helper = helpers != null ? helpers[idx] : default;
        Table.Unlock(idx);
        if ((status & (uint)CtStatus.Dying) != 0 || copy.Deadline - now <= 0)
            return false;
        StateFile.WriteEntry(record, copy, age, helper, now);
        return true;
    }

    private static int FlushBlock(Stream output, byte[] block, uint kind, int count, int recordSize)
    {
        int payload = count * recordSize;
        StateFile.SealBlock(block, kind, count, payload);
        output.Write(block, 0, StateFile.BlockHeaderSize + payload);
        return StateFile.BlockHeaderSize + payload;
    }

    /// <summary>
    /// Restores a state file written by <see cref="WriteState"/> into this engine, which must be fresh
    /// (no entries) and not yet in use: call it before workers classify and before the first
    /// <see cref="Maintain"/>. The whole file is checked first (checksums, lengths, counts, every
    /// record's fields); only a whole file is applied. Entries whose remaining timeout has run out
    /// during the downtime (wall clock now − wall clock at the write) are skipped; the others are
    /// inserted as confirmed with what is left (armed by the next <see cref="Maintain"/>, as every
    /// insert), until nf_conntrack_max (no early drop). Never throws for what the stream holds or
    /// how reading it fails: the result says what happened.
    /// </summary>
    /// <returns>True when the file was whole and applied (<see cref="StateRestoreStatus.Restored"/>).</returns>
    public bool RestoreState(Stream input, long nowMs, long wallClockUnixMs, out StateRestoreResult result) =>
        RestoreState(input, nowMs, wallClockUnixMs, relearnTcpWindows: false, out result);

    /// <inheritdoc cref="RestoreState(Stream, long, long, out StateRestoreResult)"/>
    /// <param name="relearnTcpWindows">
    /// True when packets may have passed while nobody tracked them — a restart: the jumps were
    /// removed at stop, or the queue was bypassed after a kill -9, and a checkpoint is up to an
    /// interval old. The stored sequence windows are then stale (the next ACK acknowledges data the
    /// entry never saw and would be INVALID, stalling the connection), so TCP entries keep their
    /// state, scales and portable flags but forget their windows: the next segment of each direction
    /// takes its window from the packet, as for a connection picked up mid-stream (spec §13.4, what
    /// the kernel does with entries created over ctnetlink). False keeps the windows exactly: a
    /// hand-over during which no packet went unseen.
    /// </param>
    public bool RestoreState(Stream input, long nowMs, long wallClockUnixMs, bool relearnTcpWindows, out StateRestoreResult result)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (Table.Count != 0)
        {
            result = new StateRestoreResult(StateRestoreStatus.EngineNotEmpty, $"the table holds {Table.Count} entries; restore into a fresh engine");
            return false;
        }
        MemoryStream? copy = null;
        int restoredSoFar = 0;
        try
        {
            Stream s = input;
            if (!input.CanSeek)
            {
                // Two passes need a second look: buffer a stream that cannot seek (a pipe).
                copy = new MemoryStream();
                input.CopyTo(copy);
                copy.Position = 0;
                s = copy;
            }
            long start = s.Position;
            var reader = new StateReader(s);
            StateRestoreResult check = reader.Check(out long writtenAt);
            if (check.Status != StateRestoreStatus.Restored)
            {
                result = check;
                return false;
            }
            s.Position = start + StateFile.HeaderSize;
            long downtime = Math.Max(0, wallClockUnixMs - writtenAt);
            result = Apply(reader, nowMs, downtime, relearnTcpWindows, ref restoredSoFar);
            return true;
        }
        catch (Exception ex) when (ex is IOException or NotSupportedException or ObjectDisposedException or UnauthorizedAccessException)
        {
            // Only a stream that fails between the check and the apply gets here with entries in: undo them.
            if (restoredSoFar > 0)
                Flush(nowMs);
            result = new StateRestoreResult(StateRestoreStatus.ReadError, $"reading the state file failed: {ex.Message}");
            return false;
        }
        finally
        {
            copy?.Dispose();
        }
    }

    /// <summary>Counts of one restore, block by block.</summary>
    private struct ApplyCounts
    {
        public int Restored, Expired, OverLimit, Duplicates, TombRestored, TombSkipped;

        public readonly StateRestoreResult Result(long downtime) => new(StateRestoreStatus.Restored,
            $"restored {Restored} entries ({Expired} expired while down, {OverLimit} over nf_conntrack_max, {Duplicates} duplicates), {TombRestored} tombstones ({TombSkipped} skipped)")
        {
            Restored = Restored,
            Expired = Expired,
            OverLimit = OverLimit,
            Duplicates = Duplicates,
            TombstonesRestored = TombRestored,
            TombstonesSkipped = TombSkipped,
            DowntimeMs = downtime,
        };
    }

    private StateRestoreResult Apply(StateReader reader, long now, long downtime, bool relearn, ref int restored)
    {
        var counts = new ApplyCounts();
        while (reader.Next(out uint kind, out int count, out ReadOnlySpan<byte> payload))
        {
            ApplyBlock(kind, count, payload, reader.EntrySize, now, downtime, relearn, ref counts);
            restored = counts.Restored;
        }
        return counts.Result(downtime);
    }

    private void ApplyBlock(uint kind, int count, ReadOnlySpan<byte> payload, int entrySize, long now, long downtime, bool relearn, ref ApplyCounts c)
    {
        TombstoneStore? store = Table.Tombstones;
        for (int i = 0; i < count; i++)
        {
            if (kind == StateFile.KindEntries)
            {
                ReadOnlySpan<byte> r = payload.Slice(i * entrySize, entrySize);
                long left = BinaryPrimitives.ReadInt64LittleEndian(r[40..]) - downtime;
                if (left <= 0)
                    c.Expired++;
                else if (Table.Count >= Table.Max)
                    c.OverLimit++;
                else if (InsertRestored(r, now, left, downtime, relearn))
                    c.Restored++;
                else
                    c.Duplicates++;
            }
            else
            {
                ReadOnlySpan<byte> r = payload.Slice(i * StateFile.TombstoneSize, StateFile.TombstoneSize);
                long expiredAt = now - (BinaryPrimitives.ReadInt64LittleEndian(r[40..]) + downtime);
                if (store == null || now - expiredAt > store.WindowMs)
                {
                    c.TombSkipped++;
                    continue;
                }
                ConnTuple t = StateFile.ReadTuple(r);
                // The housekeeper's own call: a restore runs before the housekeeper does.
                store.Add(t, Table.Hash(t), StateFile.ReadTcp(r[48..]), expiredAt, now);
                c.TombRestored++;
            }
        }
    }

    /// <summary>
    /// <see cref="RestoreState"/> in one pass, for a stream that is read once (the takeover's
    /// connection): the header and each block are checked — checksum, sizes, every record's fields —
    /// as they arrive and applied at once, with no copy of the stream in memory. If anything is wrong
    /// later (a damaged block, a cut stream, end counts that do not match) every entry applied so far
    /// is removed again, so as with <see cref="RestoreState"/> only a whole state is ever kept.
    /// Tombstones (a few thousand at most) are held back until the end block has checked out.
    /// </summary>
    public bool RestoreStateStreaming(Stream input, long nowMs, long wallClockUnixMs, out StateRestoreResult result)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (Table.Count != 0)
        {
            result = new StateRestoreResult(StateRestoreStatus.EngineNotEmpty, $"the table holds {Table.Count} entries; restore into a fresh engine");
            return false;
        }
        var counts = new ApplyCounts();
        var pendingTombstones = new List<(int Count, byte[] Payload)>();
        try
        {
            var reader = new StateReader(input);
            StateRestoreResult? bad = reader.ReadHeader(out long writtenAt);
            long downtime = Math.Max(0, wallClockUnixMs - writtenAt);
            long entries = 0, tombstones = 0, block = 0;
            while (bad == null)
            {
                bad = reader.ReadChecked(out uint kind, out int count, out ReadOnlySpan<byte> payload, block, entries, tombstones, out bool end);
                if (bad != null || end)
                    break;
                if (kind == StateFile.KindEntries)
                {
                    ApplyBlock(kind, count, payload, reader.EntrySize, nowMs, downtime, relearn: false, ref counts);
                    entries += count;
                }
                else
                {
                    // Tombstones cannot be taken back one by one: kept aside until the whole state checked out.
                    pendingTombstones.Add((count, payload.ToArray()));
                    tombstones += count;
                }
                block++;
            }
            if (bad != null)
            {
                if (Table.Count > 0)
                    Flush(nowMs);
                result = bad.Value;
                return false;
            }
            foreach ((int count, byte[] payload) in pendingTombstones)
                ApplyBlock(StateFile.KindTombstones, count, payload, reader.EntrySize, nowMs, downtime, relearn: false, ref counts);
            result = counts.Result(downtime);
            return true;
        }
        catch (Exception ex) when (ex is IOException or NotSupportedException or ObjectDisposedException or UnauthorizedAccessException or InvalidDataException)
        {
            if (Table.Count > 0)
                Flush(nowMs);
            result = new StateRestoreResult(StateRestoreStatus.ReadError, $"reading the state failed: {ex.Message}");
            return false;
        }
    }

    private bool InsertRestored(ReadOnlySpan<byte> r, long now, long left, long downtime, bool relearn)
    {
        ConnTuple t = StateFile.ReadTuple(r);
        bool helped = r.Length >= StateFile.EntrySize && (r[136] != 0 || r[137] != 0 || r[144 + 37] != 0);
        // Before Allocate, which then resets the new entry's helper slot. Not under the reader lock: a
        // restore runs into a fresh engine before workers do, and EnableHelpers locks it itself.
        if (helped && Volatile.Read(ref Table.Helpers) == null)
            EnableHelpers();
        int idx = Table.Allocate(Table.Hash(t), now); // below max (checked), so no early drop
        if (idx < 0)
            return false;
        if (helped)
        {
            ref HelperSlot h = ref Table.Helpers![idx];
            h.Helper = (CtHelper)r[136];
            h.MasterHelper = (CtHelper)r[137];
            if (r[144 + 37] != 0)
                h.MasterOrig = StateFile.ReadTuple(r[144..]);
        }
        ref ConnEntry e = ref Table.Entries[idx];
        // Private to this thread until TryInsert links it (its CAS publishes everything below).
        e.Orig = t;
        e.Status = BinaryPrimitives.ReadUInt32LittleEndian(r[48..]) & ~PrivateStatus.Helped;
        if (helped && (Table.Helpers![idx].Helper != CtHelper.None || Table.Helpers[idx].MasterHelper != CtHelper.None))
            e.Status |= PrivateStatus.Helped;
        e.Deadline = now + left;
        e.Tcp = default;
        if (t.Protocol == IpProto.Tcp)
        {
            e.Tcp = StateFile.ReadTcp(r[56..]);
            if (relearn)
                ForgetWindows(ref e.Tcp);
        }
        else if (t.Protocol == IpProto.Sctp)
            e.Sctp = StateFile.ReadSctp(r[56..]);
        else
            e.StreamTs = now + BinaryPrimitives.ReadInt64LittleEndian(r[56..]) - downtime;
        e.NextOrig = 0;
        e.NextReply = 0;
        e.TimerNext = -1;
        e.TimerPrev = -1;
        if (Table.Acct is { } acct) // read once: set off this path, never cleared (ConnTable.EnableAccounting)
            acct[idx] = default; // counters start here: neither the kernel's nor the state file's are carried over
        ref FlowAge age = ref Table.Ages[idx];
        age.StateSinceMs = now - BinaryPrimitives.ReadInt64LittleEndian(r[112..]) - downtime;
        age.CreatedMs = age.StateSinceMs; // the file has no creation time: the state change is the oldest it knows
        age.ZeroWindowSince0 = now - BinaryPrimitives.ReadInt64LittleEndian(r[120..]) - downtime;
        age.ZeroWindowSince1 = now - BinaryPrimitives.ReadInt64LittleEndian(r[128..]) - downtime;
        if (Table.TryInsert(idx, now))
            return true;
        Table.Free(idx);
        return false;
    }

    /// <summary>
    /// Both directions' windows to zero (td_maxwin 0: the next segment re-initialises them), the
    /// flags whose value behind them is gone cleared (MAXACK_SET, DATA_UNACKNOWLEDGED, the challenge
    /// ACK expectation), last-packet memory and retransmission count reset; state, scales and the
    /// portable flags (WINDOW_SCALE, SACK_PERM, CLOSE_INIT, BE_LIBERAL) kept.
    /// </summary>
    internal static void ForgetWindows(ref TcpConn tcp)
    {
        tcp.Seen0 = default;
        tcp.Seen1 = default;
        tcp.Flags0 &= KernelConnection.PortableTcpFlags;
        tcp.Flags1 &= KernelConnection.PortableTcpFlags;
        tcp.LastSeq = tcp.LastAck = tcp.LastEnd = 0;
        tcp.LastWin = 0;
        tcp.LastDir = 0;
        tcp.LastWscale = 0;
        tcp.LastFlags = 0;
        tcp.Retrans = 0;
        tcp.LastIndex = TcpTracker.IdxNone;
    }

    /// <summary>Reads the blocks of a state file; <see cref="Check"/> validates the whole file, <see cref="Next"/> replays it.</summary>
    private sealed class StateReader(Stream stream)
    {
        private readonly byte[] _blockHeader = new byte[StateFile.BlockHeaderSize];
        private byte[] _payload = new byte[StateFile.RecordsPerBlock * StateFile.EntrySize];

        /// <summary>The entry record size of the file's version (<see cref="StateFile.EntrySizeV1"/> for version 1), known after the header.</summary>
        public int EntrySize { get; private set; } = StateFile.EntrySize;

        public StateRestoreResult Check(out long writtenAt)
        {
            if (ReadHeader(out writtenAt) is { } badHeader)
                return badHeader;
            long entries = 0, tombstones = 0, block = 0;
            while (true)
            {
                StateRestoreResult? bad = ReadChecked(out uint kind, out int count, out _, block, entries, tombstones, out bool end);
                if (bad != null)
                    return bad.Value;
                if (end)
                    return new StateRestoreResult(StateRestoreStatus.Restored, "ok");
                if (kind == StateFile.KindEntries)
                    entries += count;
                else
                    tombstones += count;
                block++;
            }
        }

        /// <summary>
        /// The next block with every record checked; at the end block (<paramref name="end"/>) its counts
        /// are compared with <paramref name="entries"/> and <paramref name="tombstones"/> and nothing may follow.
        /// </summary>
        public StateRestoreResult? ReadChecked(out uint kind, out int count, out ReadOnlySpan<byte> payload, long block, long entries, long tombstones, out bool end)
        {
            end = false;
            StateRestoreResult? bad = ReadBlock(out kind, out count, out payload, block);
            if (bad != null)
                return bad;
            if (kind == StateFile.KindEnd)
            {
                end = true;
                ulong e = BinaryPrimitives.ReadUInt64LittleEndian(payload);
                ulong t = BinaryPrimitives.ReadUInt64LittleEndian(payload[8..]);
                if (e != (ulong)entries || t != (ulong)tombstones)
                    return Fail(StateRestoreStatus.Damaged, $"the end block counts {e} entries and {t} tombstones, the blocks hold {entries} and {tombstones}");
                if (stream.ReadByte() >= 0)
                    return Fail(StateRestoreStatus.Damaged, "bytes after the end block");
                return null;
            }
            int size = kind == StateFile.KindEntries ? EntrySize : StateFile.TombstoneSize;
            for (int i = 0; i < count; i++)
            {
                ReadOnlySpan<byte> r = payload.Slice(i * size, size);
                string? why = kind == StateFile.KindEntries ? StateFile.CheckEntry(r) : StateFile.CheckTombstone(r);
                if (why != null)
                    return Fail(StateRestoreStatus.Damaged, $"block {block}, record {i}: {why}");
            }
            return null;
        }

        /// <summary>Reads and checks the header; null when it is good (then <paramref name="writtenAt"/> is the write time).</summary>
        public StateRestoreResult? ReadHeader(out long writtenAt)
        {
            writtenAt = 0;
            Span<byte> h = stackalloc byte[StateFile.HeaderSize];
            int got = stream.ReadAtLeast(h, StateFile.HeaderSize, throwOnEndOfStream: false);
            if (got == 0)
                return Fail(StateRestoreStatus.Truncated, "the state file is empty");
            int m = Math.Min(got, StateFile.Magic.Length);
            if (!h[..m].SequenceEqual(StateFile.Magic[..m]))
                return Fail(StateRestoreStatus.ForeignFormat, "not a ctfw state file (bad magic)");
            if (got < StateFile.HeaderSize)
                return Fail(StateRestoreStatus.Truncated, $"the header ends after {got} of {StateFile.HeaderSize} bytes");
            ushort version = BinaryPrimitives.ReadUInt16LittleEndian(h[8..]);
            if (version > StateFile.Version)
                return Fail(StateRestoreStatus.NewerVersion, $"format version {version} is newer than this ctfw reads ({StateFile.Version})");
            if (BinaryPrimitives.ReadUInt32LittleEndian(h[60..]) != Crc32C.Compute(0, h[..60]))
                return Fail(StateRestoreStatus.Damaged, "header checksum mismatch");
            // Version 1 is version 2 without the helper fields at the end of each entry record.
            int entrySize = version == 1 ? StateFile.EntrySizeV1 : StateFile.EntrySize;
            if (version < 1
                || BinaryPrimitives.ReadUInt16LittleEndian(h[10..]) != StateFile.HeaderSize
                || BinaryPrimitives.ReadUInt16LittleEndian(h[12..]) != entrySize
                || BinaryPrimitives.ReadUInt16LittleEndian(h[14..]) != StateFile.TombstoneSize)
                return Fail(StateRestoreStatus.Damaged, $"unsupported header (version {version}, sizes)");
            EntrySize = entrySize;
            writtenAt = BinaryPrimitives.ReadInt64LittleEndian(h[16..]);
            return null;
        }

        /// <summary>The next block of a file <see cref="Check"/> accepted (the stream rewound to the first block).</summary>
        public bool Next(out uint kind, out int count, out ReadOnlySpan<byte> payload)
        {
            StateRestoreResult? bad = ReadBlock(out kind, out count, out payload, 0);
            if (bad != null)
                throw new IOException($"the state file changed after it was checked: {bad.Value.Message}");
            return kind != StateFile.KindEnd;
        }

        private StateRestoreResult? ReadBlock(out uint kind, out int count, out ReadOnlySpan<byte> payload, long block)
        {
            kind = 0;
            count = 0;
            payload = default;
            int got = stream.ReadAtLeast(_blockHeader, StateFile.BlockHeaderSize, throwOnEndOfStream: false);
            if (got < StateFile.BlockHeaderSize)
                return Fail(StateRestoreStatus.Truncated, got == 0 ? $"the file ends before its end block (after {block} blocks)" : $"block {block}: header cut short");
            kind = BinaryPrimitives.ReadUInt32LittleEndian(_blockHeader);
            uint n = BinaryPrimitives.ReadUInt32LittleEndian(_blockHeader.AsSpan(4));
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(_blockHeader.AsSpan(8));
            uint expected = kind switch
            {
                StateFile.KindEntries => n * (ulong)EntrySize <= StateFile.MaxPayload ? n * (uint)EntrySize : uint.MaxValue,
                StateFile.KindTombstones => n * (ulong)StateFile.TombstoneSize <= StateFile.MaxPayload ? n * StateFile.TombstoneSize : uint.MaxValue,
                StateFile.KindEnd => n == 0 ? StateFile.EndPayloadSize : uint.MaxValue,
                _ => uint.MaxValue,
            };
            if (length != expected || length > StateFile.MaxPayload)
                return Fail(StateRestoreStatus.Damaged, $"block {block}: kind {kind}, {n} records and {length} bytes do not fit");
            if (_payload.Length < length)
                _payload = new byte[length];
            got = stream.ReadAtLeast(_payload.AsSpan(0, (int)length), (int)length, throwOnEndOfStream: false);
            if (got < length)
                return Fail(StateRestoreStatus.Truncated, $"block {block}: payload ends after {got} of {length} bytes");
            payload = _payload.AsSpan(0, (int)length);
            uint crc = Crc32C.Compute(Crc32C.Compute(0, _blockHeader.AsSpan(0, 12)), payload);
            if (crc != BinaryPrimitives.ReadUInt32LittleEndian(_blockHeader.AsSpan(12)))
                return Fail(StateRestoreStatus.Damaged, $"block {block}: checksum mismatch");
            count = (int)n;
            return null;
        }

        private static StateRestoreResult Fail(StateRestoreStatus status, string message) => new(status, message);
    }
}

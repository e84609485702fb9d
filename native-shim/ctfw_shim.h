/*
 * ctfw_shim: the few syscalls .NET cannot batch by itself, for the NFQUEUE hot path.
 *
 *   ctfw_recv_batch  one recvmmsg(2): up to N netlink datagrams into caller-owned (pinned) buffers
 *   ctfw_send        one sendmsg(2) of a caller-built buffer (e.g. many concatenated verdicts) to
 *                    the kernel (netlink port 0)
 *   ctfw_shim_abi    the layout this library was compiled with, so managed code can refuse a stale
 *                    or foreign build before the first packet
 *
 * ABI rules (the managed mirror is src/Ctfw.Linux/Interop/Interop.Shim*.cs):
 *   - fixed-width types only; pointers cross as uint64_t inside structs;
 *   - every enum value is explicit; libc flag values never cross (the shim maps its own flags);
 *   - every struct that crosses has _Static_assert'ed size and offsets (ctfw_shim.c);
 *   - errors cross as a positive errno in *error (0 = none), never through the return value alone;
 *   - bump CTFW_SHIM_ABI_VERSION whenever any of the above changes.
 */
#ifndef CTFW_SHIM_H
#define CTFW_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CTFW_SHIM_ABI_VERSION 1u

/* Upper bound for one ctfw_recv_batch call (the shim keeps its mmsghdr/iovec arrays on the stack). */
#define CTFW_RECV_MAX_BATCH 256u

/* How ctfw_recv_batch waits (its `mode` argument). */
enum ctfw_recv_mode {
    /* Never block: return what is queued now, or -1 with EAGAIN. (MSG_DONTWAIT) */
    CTFW_RECV_NONBLOCKING = 0,
    /* Block until one datagram arrives (or SO_RCVTIMEO expires: EAGAIN), then take only what is
       already queued. (MSG_WAITFORONE) */
    CTFW_RECV_WAIT_FOR_ONE = 1,
};

/* Bits of ctfw_rx_slot.flags. */
enum ctfw_rx_flags {
    /* The datagram was longer than the slot: only `capacity` bytes were stored. (MSG_TRUNC) */
    CTFW_RX_TRUNCATED = 1,
};

/* One receive buffer. The caller fills buffer/capacity; the shim fills the rest. */
typedef struct ctfw_rx_slot {
    uint64_t buffer;      /* address of caller-owned memory that stays put during the call */
    uint32_t capacity;    /* bytes available at buffer */
    uint32_t length;      /* out: bytes stored (never more than capacity) */
    uint32_t flags;       /* out: enum ctfw_rx_flags */
    uint32_t source_port; /* out: sender's netlink port id; 0 = the kernel */
} ctfw_rx_slot;

/* What ctfw_shim_abi reports. */
typedef struct ctfw_shim_abi_info {
    uint32_t abi_version;
    uint32_t rx_slot_size;
    uint32_t abi_info_size;
    uint32_t max_batch;
    /* libc/kernel structs as this build used them (checked against the headers by the tests). */
    uint32_t mmsghdr_size;
    uint32_t mmsghdr_msg_len_offset;
    uint32_t msghdr_size;
    uint32_t msghdr_msg_flags_offset;
    uint32_t iovec_size;
    uint32_t sockaddr_nl_size;
} ctfw_shim_abi_info;

/*
 * Receives up to `count` datagrams (count <= CTFW_RECV_MAX_BATCH) into `slots` with one recvmmsg.
 * Returns the number received (>= 1), or -1 with *error set (EAGAIN: nothing arrived; EINTR;
 * ENOBUFS: the kernel dropped messages for this socket since the last call; anything else is fatal).
 */
int32_t ctfw_recv_batch(int32_t fd, ctfw_rx_slot *slots, uint32_t count, int32_t mode, int32_t *error);

/*
 * Sends `length` bytes at `buffer` as one datagram to the kernel (netlink port 0) with sendmsg.
 * Returns the bytes sent, or -1 with *error set. EINTR is retried inside.
 */
int32_t ctfw_send(int32_t fd, const uint8_t *buffer, uint32_t length, int32_t *error);

/* Fills *info (if not NULL) and returns CTFW_SHIM_ABI_VERSION. */
uint32_t ctfw_shim_abi(ctfw_shim_abi_info *info);

#ifdef __cplusplus
}
#endif

#endif

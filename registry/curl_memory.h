// Internal to the curl transport: the memory functions libcurl allocates with.
//
// Why: libcurl 7.88 mallocs its upload buffer (CURLOPT_UPLOAD_BUFFERSIZE,
// 2 MiB here) and its receive buffer (CURLOPT_BUFFERSIZE + 1) for every
// transfer and frees both when the transfer ends (multi.c multi_done). glibc
// serves blocks that large with fresh mmaps or trims them off its heap again,
// so every PATCH and every ranged GET faulted its buffers in anew: in perf of
// `copy`, page faults under the read callback's memcpy were ~5% of the
// samples, and under a hypervisor a fresh page costs far more than the copy.
// These functions keep a few freed large blocks of each size and hand them
// out again, so a run faults libcurl's buffers in once.
//
// Thread guarantee: every function is safe for concurrent use.
#pragma once

#include <cstddef>

namespace mc::registry::internal {

// Installs the functions below as libcurl's allocator (curl_global_init_mem).
// Call before any other libcurl function; later calls do nothing, and so
// does the first if libcurl was already initialised (it then keeps the C
// library's functions: slower, not wrong).
void InitCurl();

// Blocks of at least kRecycleMin bytes are kept on free (up to kMaxPerSize of
// one size and kMaxKeptBytes in all) and reused by the next malloc of the
// same size; smaller ones go straight to the C library.
inline constexpr size_t kRecycleMin = 64 << 10;
inline constexpr size_t kMaxPerSize = 4;
inline constexpr size_t kMaxKeptBytes = 24 << 20;

void* CurlMalloc(size_t size);
void CurlFree(void* p);
void* CurlRealloc(void* p, size_t size);
void* CurlCalloc(size_t n, size_t size);
char* CurlStrdup(const char* s);

struct CurlMemoryStats {
  size_t reused = 0;      // mallocs served from kept blocks
  size_t kept_bytes = 0;  // bytes kept right now
};
CurlMemoryStats GetCurlMemoryStats();

}  // namespace mc::registry::internal

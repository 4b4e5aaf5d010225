// libcurl's allocator (curl_memory.h).
//
// Every block carries a 16-byte header with its usable size, so free() knows
// whether to keep it and realloc() how much to move. Kept blocks are looked
// up by exact size: libcurl asks for the same two sizes on every transfer.
#include "registry/curl_memory.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

namespace mc::registry::internal {
namespace {

constexpr size_t kHeader = 16;  // keeps the user pointer 16-byte aligned
static_assert(kHeader >= sizeof(size_t) && kHeader % alignof(std::max_align_t) == 0);

struct Kept {
  size_t size;
  void* base;
};

struct Cache {
  std::mutex mu;
  std::vector<Kept> blocks;  // guarded by mu
  size_t kept_bytes = 0;     // guarded by mu
  size_t reused = 0;         // guarded by mu
};

Cache& TheCache() {
  static Cache* cache = new Cache();  // never destroyed: libcurl may free at exit
  return *cache;
}

void* Base(void* p) { return static_cast<std::byte*>(p) - kHeader; }
size_t SizeOf(void* p) {
  size_t n;
  std::memcpy(&n, Base(p), sizeof(n));
  return n;
}
void* User(void* base, size_t size) {
  std::memcpy(base, &size, sizeof(size));
  return static_cast<std::byte*>(base) + kHeader;
}

void* TakeKept(size_t size) {
  Cache& c = TheCache();
  std::lock_guard lock(c.mu);
  for (size_t i = 0; i < c.blocks.size(); ++i) {
    if (c.blocks[i].size != size) continue;
    void* base = c.blocks[i].base;
    c.blocks[i] = c.blocks.back();
    c.blocks.pop_back();
    c.kept_bytes -= size;
    c.reused++;
    return base;
  }
  return nullptr;
}

bool Keep(void* base, size_t size) {
  Cache& c = TheCache();
  std::lock_guard lock(c.mu);
  if (c.kept_bytes + size > kMaxKeptBytes) return false;
  size_t same = 0;
  for (const Kept& k : c.blocks) same += k.size == size;
  if (same >= kMaxPerSize) return false;
  c.blocks.push_back(Kept{size, base});
  c.kept_bytes += size;
  return true;
}

}  // namespace

void* CurlMalloc(size_t size) {
  if (size > std::numeric_limits<size_t>::max() - kHeader) return nullptr;
  void* base = size >= kRecycleMin ? TakeKept(size) : nullptr;
  if (!base) base = std::malloc(size + kHeader);
  return base ? User(base, size) : nullptr;
}

void CurlFree(void* p) {
  if (!p) return;
  size_t size = SizeOf(p);
  if (size >= kRecycleMin && Keep(Base(p), size)) return;
  std::free(Base(p));
}

void* CurlRealloc(void* p, size_t size) {
  if (!p) return CurlMalloc(size);
  size_t old = SizeOf(p);
  if (old < kRecycleMin && size < kRecycleMin) {  // the common case: a growing header buffer
    void* base = std::realloc(Base(p), size + kHeader);
    return base ? User(base, size) : nullptr;
  }
  void* q = CurlMalloc(size);
  if (!q) return nullptr;  // p stays valid, as with realloc
  std::memcpy(q, p, std::min(old, size));
  CurlFree(p);
  return q;
}

void* CurlCalloc(size_t n, size_t size) {
  if (size != 0 && n > (std::numeric_limits<size_t>::max() - kHeader) / size) return nullptr;
  void* base = std::calloc(1, n * size + kHeader);
  return base ? User(base, n * size) : nullptr;
}

char* CurlStrdup(const char* s) {
  size_t n = std::strlen(s) + 1;
  void* p = CurlMalloc(n);
  if (p) std::memcpy(p, s, n);
  return static_cast<char*>(p);
}

CurlMemoryStats GetCurlMemoryStats() {
  Cache& c = TheCache();
  std::lock_guard lock(c.mu);
  return {c.reused, c.kept_bytes};
}

void InitCurl() {
  static const CURLcode once = curl_global_init_mem(CURL_GLOBAL_DEFAULT, CurlMalloc, CurlFree,
                                                    CurlRealloc, CurlStrdup, CurlCalloc);
  (void)once;
}

}  // namespace mc::registry::internal

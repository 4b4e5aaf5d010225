// Pooled byte buffers: the unit every stage of the data plane hands on.
//
// Why a pool: a multi-GiB stream cut into 1–32 MiB pieces used to get a fresh
// zero-filled std::vector per piece — the kernel faults every page in and
// clears it, then we memset it again, then copy into it. perf showed that
// memset, memmove and page faults were most of `copy`'s cycles. A pool
// allocates its buffers once per run (never zero-filled), hands them out,
// and takes them back when the last stage is done with them, so peak memory
// is the pool's size however large the model is, and a page is faulted in
// once per run instead of once per piece.
//
// A Buffer is move-only and returns itself to its pool when destroyed; the
// pool's storage outlives every buffer it handed out (shared ownership), so
// a buffer may be released on any thread, after the pool object is gone.
//
// Thread guarantee: BufferPool is safe for concurrent use; a Buffer is used
// by one thread at a time (hand it over by moving it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "oci/error.h"

namespace mc::oci {

namespace detail {
struct PoolCore;
}

class Buffer {
 public:
  Buffer() = default;
  // A buffer of its own (not pooled), for odd sizes and tests. Not zero-filled.
  static Buffer Heap(size_t capacity);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  explicit operator bool() const { return data_ != nullptr; }
  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ == capacity_; }
  // The filled part [0, size).
  std::span<std::byte> span() { return {data_, size_}; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }
  // The unfilled part [size, capacity): write into it, then Commit(n).
  std::span<std::byte> free_space() { return {data_ + size_, capacity_ - size_}; }
  void Commit(size_t n) { size_ += n; }
  // Sets the filled size (≤ capacity); the bytes are left as they are.
  void Resize(size_t n) { size_ = n; }
  void Clear() { size_ = 0; }
  // Copies as much of `data` as fits; returns the count copied.
  size_t Append(std::span<const std::byte> data);
  // Gives the storage back now (to the pool, or frees it).
  void Release();

 private:
  friend class BufferPool;
  Buffer(std::shared_ptr<detail::PoolCore> pool, std::byte* data, size_t capacity)
      : pool_(std::move(pool)), data_(data), capacity_(capacity) {}

  std::shared_ptr<detail::PoolCore> pool_;  // null: heap buffer owned by this object
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// `count` buffers of `buffer_size` bytes. Buffers are allocated on first use
// (a run that needs three never allocates eight) and kept until the pool and
// every buffer it handed out are gone.
class BufferPool {
 public:
  BufferPool(size_t buffer_size, size_t count);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Blocks until a buffer is free. kCancelled once Shutdown() was called.
  Result<Buffer> Acquire();
  // A free buffer, or an empty Buffer when all are out (never blocks).
  Buffer TryAcquire();
  // Wakes every Acquire() with kCancelled, now and later (first error or
  // cancellation anywhere in the pipeline reaches the stages blocked here).
  void Shutdown();

  size_t buffer_size() const { return buffer_size_; }
  size_t count() const { return count_; }
  // Buffers handed out right now, and the most ever out at once.
  size_t in_use() const;
  size_t high_water() const;
  // Buffers allocated so far (≤ count): what the pool costs in memory.
  size_t allocated() const;

 private:
  size_t buffer_size_;
  size_t count_;
  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace mc::oci

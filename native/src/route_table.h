// The process-wide route table of the router (no Node-API in here): hosts, path
// prefixes, wildcards, endpoint pools and their balancing, shared by every thread.
//
// Concurrency (why readers never wait for a long write):
// - Routes live in kShards shards chosen by host hash; each shard has a
//   reader-writer lock. Readers (select, selectInstance, hashHeader) hold one
//   shard's read lock for one hash probe and one pool scan. Writers hold a
//   shard's write lock only for one route's change (add/remove a member, swap a
//   Maglev table that was built before taking the lock); pruning scans without
//   the lock (there is one writer at a time, serialised by writer_) and locks a
//   shard only to remove what it found. So a reader waits at most for one short
//   single-route change, never for a burst, a prune or a table rebuild.
// - One read takes no lock: PrefetchRoute loads a bucket head only to prefetch the route it
//   names. Bucket heads are therefore written atomically, and outgrown bucket arrays are
//   kept until the table goes (Shard::retired).
// - A route whose last endpoint goes stays linked, empty (count 0), for the table's empty-pool
//   timeout (gorouter's empty_pool_timeout): readers answer kNoEndpoints for it and read
//   none of its members; the prune pass unlinks and frees it once the timeout has passed.
// - Endpoint records live in a slab of fixed chunks that never move. The hot
//   counters (generation | in-flight, failed-until) are atomics read and written
//   without locks from any thread; a record's strings are guarded by one of
//   kStripes small mutexes (endpoint()/dump() only, never select()).
// - Measured cost (perf on a 2-core VM, 1k routes): the read lock + unlock is ~5% (~10 ns)
//   of a ~200 ns select from JavaScript; a writer holds a shard for one route change (well
//   under 1 µs; Maglev tables are built before the lock is taken). With 256 shards two
//   readers rarely share a lock's cache line. bench/RESULTS.md has the 2-reader-threads-
//   under-churn figures.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "arena.h"

namespace kiln::rt {

constexpr int kNoRoute = -1;
constexpr int kNoEndpoints = -2;
constexpr int kUnknownInstance = -3;
constexpr int kAllFull = -4;
constexpr int kNeedHashKey = -5;
// The route has a route service and the caller did not say the request came back from it:
// no endpoint is picked (router/handlers/route-service.ts sends the request to the service).
constexpr int kRouteService = -6;

enum class Lb : uint8_t { RoundRobin = 0, LeastConnection = 1, Hash = 2 };

enum RegisterResult : int { kAdded = 0, kUpdated = 1, kIgnoredStale = 2 };

// A handle is gen * 2^26 + slot: a safe integer (< 2^53) naming one life of a slot.
constexpr int kSlotBits = 26;
constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;
constexpr uint32_t kGenMask = (uint32_t{1} << 27) - 1;

/** A refcounted immutable string shared by every record that uses it (writer-owned counts). */
struct Interned {
  uint32_t refs;
  uint32_t len;
  char s[1];
  std::string_view view() const { return {s, len}; }
};

/** One backend instance, shared by every route it registered. */
struct Slot {
  // gen << 32 | in-flight requests; a handle is valid while its gen matches.
  std::atomic<uint64_t> genInflight{uint64_t{1} << 32};
  std::atomic<double> failedUntil{0};
  // Fields below change only under the writer lock AND this slot's stripe lock.
  Interned* host = nullptr;
  Interned* app = nullptr;
  Interned* index = nullptr;
  // az \0 serverCertDomainSan \0 protocol \0 tagsJson: alike across an app's instances.
  Interned* extras = nullptr;
  char* key = nullptr;  // private_instance_id, else host:port; immutable while the slot lives
  uint64_t updatedAtNs = 0;
  uint32_t keyLen = 0;
  uint32_t refs = 0;  // memberships (writer only)
  uint32_t staleSec = 0;
  uint16_t port = 0;
  uint16_t tlsPort = 0;
  uint8_t keyIsId = 0;
  uint32_t nextFree = 0;
};

// Packed to 12 bytes so two fit inline in a Route whose allocation stays in a 112-byte chunk.
#pragma pack(push, 4)
struct Member {
  double lastSeenMs;
  uint32_t slot;
};
#pragma pack(pop)
static_assert(sizeof(Member) == 12);

struct HashCfg {
  Interned* header;
  double balance;
  uint32_t m;
  std::unique_ptr<uint16_t[]> table;  // m entries: index into the route's members
};

/**
 * One registered host[/path] with its pool, allocated with its key bytes right after it
 * (85 bytes + key: a route whose host and path take up to 27 bytes is one 112-byte arena cell). While the pool is empty
 * (count 0) members[0].lastSeenMs holds when it became empty (EmptySince): the slot is free
 * then, and a field of its own would push a typical route into the next cell.
 */
struct Route {
  Route* nextHost;  // bucket chain (heads of a host's path list only)
  Route* nextPath;  // same host, next shorter path
  HashCfg* hash;    // only when lb == Hash
  // route_service_url of the pool (gorouter's pool.RouteServiceUrl, last register wins), or
  // null: read by Pick with the route, so the common route pays one compare.
  Interned* routeService;
  Member* members;  // points at inl when cap <= 2
  Member inl[2];
  mutable std::atomic<uint32_t> rr;  // round-robin cursor, advanced by readers
  uint32_t hostHash;
  uint32_t maxConns;
  uint16_t count, cap;
  uint16_t hostLen, pathLen;
  Lb lb;
  char key[1];  // host bytes then path bytes ("" or "/a/b")
  std::string_view host() const { return {key, hostLen}; }
  std::string_view path() const { return {key + hostLen, pathLen}; }
};

struct Shard {
  std::shared_mutex lock;
  std::vector<Route*> buckets;  // heads, chained by nextHost
  // Outgrown bucket arrays, freed with the table (PrefetchRoute may still read one; together
  // they are smaller than `buckets`).
  std::vector<std::vector<Route*>> retired;
  uint32_t hosts = 0;
};

struct EndpointInput {
  std::string_view host, app, instanceId, index, extras, key;
  uint32_t port, tlsPort, staleSec;
  uint64_t updatedAtNs;
};

struct PoolInput {
  Lb lb;
  std::string_view hashHeader;
  double balance;
  uint32_t maxConns;
  std::string_view routeService;  // "" = none
};

/** A copied view of one endpoint for endpoint()/dump(). */
struct EndpointCopy {
  uint64_t handle;
  std::string host, app, instanceId, index, extras;
  uint32_t port, staleSec;
  uint32_t inFlight;
  double failedUntil;
  uint64_t updatedAtNs;
};

struct RouteCopy {
  std::string route;
  Lb lb;
  std::string hashHeader;
  double balance;
  uint32_t maxConns;
  std::string routeService;
  std::vector<std::pair<EndpointCopy, double>> endpoints;  // with lastSeenMs
};

/**
 * A linear-probing set of 4- or 8-byte entries (0 = empty) whose keys live in the entries'
 * targets: 8-16 bytes per element where std::unordered_map spends ~56. Writer-only.
 */
template <typename E, typename KeyOf>
class FlatSet {
 public:
  explicit FlatSet(KeyOf keyOf) : keyOf_(keyOf), t_(16, E{}) {}
  E Find(std::string_view key, uint32_t h) const {
    for (size_t i = h & (t_.size() - 1);; i = (i + 1) & (t_.size() - 1)) {
      if (t_[i] == E{}) return E{};
      if (keyOf_(t_[i]) == key) return t_[i];
    }
  }
  void Insert(E e, uint32_t h) {
    if ((n_ + 1) * 2 > t_.size()) Grow();
    Place(e, h);
    n_++;
  }
  void Erase(std::string_view key, uint32_t h, uint32_t (*hashOf)(std::string_view)) {
    const size_t mask = t_.size() - 1;
    size_t i = h & mask;
    while (!(t_[i] == E{}) && keyOf_(t_[i]) != key) i = (i + 1) & mask;
    if (t_[i] == E{}) return;
    // Backward-shift deletion keeps every probe chain unbroken without tombstones.
    for (size_t j = (i + 1) & mask; !(t_[j] == E{}); j = (j + 1) & mask) {
      size_t home = hashOf(keyOf_(t_[j])) & mask;
      if (((j - home) & mask) >= ((j - i) & mask)) {
        t_[i] = t_[j];
        i = j;
      }
    }
    t_[i] = E{};
    n_--;
  }
  void SetHash(uint32_t (*hashOf)(std::string_view)) { hashOf_ = hashOf; }
  size_t Size() const { return n_; }

 private:
  void Place(E e, uint32_t h) {
    size_t i = h & (t_.size() - 1);
    while (!(t_[i] == E{})) i = (i + 1) & (t_.size() - 1);
    t_[i] = e;
  }
  void Grow() {
    std::vector<E> old(t_.size() * 2, E{});
    old.swap(t_);
    for (E e : old) {
      if (!(e == E{})) Place(e, hashOf_(keyOf_(e)));
    }
  }
  KeyOf keyOf_;
  std::vector<E> t_;
  size_t n_ = 0;
  uint32_t (*hashOf_)(std::string_view) = nullptr;
};

uint32_t KeyHash(std::string_view s);

class Table {
 public:
  static constexpr int kShards = 256;
  static constexpr int kStripes = 256;
  static constexpr uint32_t kChunkBits = 14;  // 16k slots: a 2 MB huge-page region
  static constexpr uint32_t kMaxChunks = uint32_t{1} << (kSlotBits - kChunkBits);

  // emptyPoolTimeoutMs: how long a route whose last endpoint went stays, empty, answering
  // kNoEndpoints (0: removed at once).
  Table(uint32_t id, double emptyPoolTimeoutMs);
  ~Table();
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  uint32_t id() const { return id_; }
  bool closed() const { return closed_.load(std::memory_order_acquire); }

  // Writers (any thread; serialised). host/path are already normalised (lowercase, no port/query).
  int Register(std::string_view host, std::string_view path, const EndpointInput& ep, const PoolInput& opt,
               double nowMs);
  bool Unregister(std::string_view host, std::string_view path, std::string_view key, uint64_t updatedAtNs,
                  double nowMs);
  uint32_t Prune(double nowMs);
  void Close();

  // Readers (any thread). host/path are raw request values. A route with a route service
  // answers kRouteService unless routeServiceDone (its signed callback was checked).
  double Select(std::string_view host, std::string_view path, std::string_view sticky, std::string_view hashKey,
                double nowMs, bool routeServiceDone = false);
  double SelectInstance(std::string_view host, std::string_view path, std::string_view app,
                        std::string_view index, double nowMs, bool routeServiceDone = false);
  bool HashHeader(std::string_view host, std::string_view path, std::string* out);
  // The route service URL of the route a request matches; false when none (or no route).
  bool RouteService(std::string_view host, std::string_view path, std::string* out);
  void Release(double handle);
  void MarkFailed(double handle, double untilMs);
  int64_t InFlight(double handle);
  bool Endpoint(double handle, EndpointCopy* out);
  void Stats(uint64_t* routes, uint64_t* endpoints) const {
    *routes = routes_.load(std::memory_order_relaxed);
    *endpoints = endpoints_.load(std::memory_order_relaxed);
  }
  std::vector<RouteCopy> Dump();
  // Cache warming for one request (nothing else changes; any value is safe to pass):
  // Prefetch starts loading what Select(rawHost, …) touches first, the shard's lock and the
  // host's bucket, and returns a token (0: none); PrefetchRoute(token), called a little
  // later, reads that bucket and starts loading the route it names. The request head is
  // built around the two calls, so Select's three dependent cache misses (bucket, route,
  // lock) overlap that work instead of following one another (1000 hosts requested at
  // random: each was a miss).
  uint64_t Prefetch(std::string_view rawHost) const;
  void PrefetchRoute(uint64_t token) const;

 private:
  Slot* SlotAt(uint32_t slot) const {
    Slot* chunk = chunks_[slot >> kChunkBits].load(std::memory_order_acquire);
    return chunk == nullptr ? nullptr : chunk + (slot & ((1u << kChunkBits) - 1));
  }
  Slot* SlotOfHandle(double handle, uint32_t* gen) const;
  std::mutex& Stripe(uint32_t slot) { return stripes_[slot % kStripes]; }

  Route* FindRoute(Shard& sh, uint32_t hash, std::string_view host, std::string_view path) const;
  const Route* MatchHost(const Shard& sh, uint32_t hash, std::string_view host, std::string_view path) const;
  template <typename Fn>
  auto WithMatch(std::string_view rawHost, std::string_view rawPath, Fn&& fn) -> decltype(fn(nullptr));
  double Pick(const Route* r, std::string_view sticky, std::string_view hashKey, double nowMs,
              bool routeServiceDone);
  double Take(uint32_t slotIdx);

  Interned* Intern(std::string_view s);
  void Unintern(Interned* s);
  uint32_t AcquireSlot(const EndpointInput& ep);
  void ReleaseSlotRef(uint32_t slotIdx);
  void RemoveMemberAt(Shard& sh, Route* r, uint32_t i);
  void UnlinkRoute(Shard& sh, Route* r);
  void RebuildHash(Route* r, std::unique_ptr<uint16_t[]>* out, uint32_t* m) const;
  void FreeRoute(Route* r);
  // A route whose last endpoint just went: true when it stays linked, empty, from nowMs for
  // the empty-pool timeout (an app restarting answers 503, not 404); false when it must go.
  bool KeepEmpty(Route* r, double nowMs);

  const uint32_t id_;
  const double emptyPoolTimeoutMs_;
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> routes_{0};
  std::atomic<uint64_t> endpoints_{0};
  std::mutex writer_;
  Shard shards_[kShards];
  // Where each shard's buckets are, kept apart from the shards (2 KB, mostly cached) so that
  // Prefetch finds a bucket without waiting for the shard's own line: the array's address |
  // log2(its size) << kHintShift, stored (release) under the shard's exclusive lock. Arrays a
  // shard outgrew stay allocated (Shard::retired), so a stale hint reads valid memory.
  static constexpr int kHintShift = 58;
  std::atomic<uint64_t> hints_[kShards];
  void Hint(uint32_t shard);
  Route* const* HintedBucket(uint32_t hash) const;
  std::mutex stripes_[kStripes];
  Arena arena_;  // routes, member arrays, keys, interned strings (writer)
  std::unique_ptr<std::atomic<Slot*>[]> chunks_;
  uint32_t slotCount_ = 0;  // slots handed out so far (writer)
  uint32_t freeHead_ = 0;   // 1 + free slot index, 0 = none (writer)
  struct SlotKey {
    const Table* t;
    std::string_view operator()(uint32_t e) const {
      const Slot* s = t->SlotAt(e - 1);
      return {s->key, s->keyLen};
    }
  };
  struct InternedKey {
    std::string_view operator()(const Interned* p) const { return p->view(); }
  };
  FlatSet<uint32_t, SlotKey> byKey_{SlotKey{this}};            // endpoint key -> 1 + slot (writer)
  FlatSet<Interned*, InternedKey> interned_{InternedKey{}};  // (writer)
};

uint32_t HashBytes(std::string_view s, uint32_t seed);

}  // namespace kiln::rt

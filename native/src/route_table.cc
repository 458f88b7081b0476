// The route table's logic: matching (host, wildcard, path prefix), pools, balancing
// (round-robin, least-connection, Maglev hash with bounded load), pruning. See
// route_table.h for how threads share it; native/fallback/ mirrors every rule here.
#include "route_table.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

namespace kiln::rt {

namespace {

// Seeds of the Maglev permutation and of request keys; native/fallback/hash.ts uses the same.
constexpr uint32_t kSeedOffset = 0x9e3779b9u;
constexpr uint32_t kSeedSkip = 0x85ebca6bu;
constexpr uint32_t kSeedKey = 0xc2b2ae35u;
constexpr uint32_t kMaglevSmall = 4093;  // prime; pools of up to 400 endpoints
constexpr uint32_t kMaglevLarge = 65521;  // prime < 2^16 so u16 entries always fit
constexpr double kDefaultStaleSec = 120;
constexpr size_t kHostMax = 512;

inline char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline bool IsFull(uint64_t word, uint32_t maxConns) {
  return maxConns != 0 && static_cast<uint32_t>(word) >= maxConns;
}

// Normalises a request host into buf: ASCII lowercase, ":port" dropped ("[v6]:port" cut after "]").
// Returns 0 when the result would be kHostMax bytes or longer (no registered host is).
size_t NormaliseHost(std::string_view raw, char* buf) {
  size_t end = raw.size();
  if (!raw.empty() && raw[0] == '[') {
    size_t close = raw.find(']');
    if (close != std::string_view::npos) end = close + 1;
  } else {
    size_t colon = raw.find(':');
    if (colon != std::string_view::npos) end = colon;
  }
  if (end >= kHostMax) return 0;
  for (size_t i = 0; i < end; i++) buf[i] = Lower(raw[i]);
  return end;
}

// Request path without its query or fragment.
std::string_view CutQuery(std::string_view p) {
  for (size_t i = 0; i < p.size(); i++) {
    if (p[i] == '?' || p[i] == '#') return p.substr(0, i);
  }
  return p;
}

// The registered path (lowercase, no trailing '/') is a prefix of the request path on a '/' boundary.
bool PathMatches(std::string_view reg, std::string_view req) {
  if (reg.empty()) return true;
  if (req.size() < reg.size()) return false;
  for (size_t i = 0; i < reg.size(); i++) {
    if (Lower(req[i]) != reg[i]) return false;
  }
  return req.size() == reg.size() || req[reg.size()] == '/';
}

uint32_t RandomU32() {
  thread_local std::minstd_rand gen{std::random_device{}()};
  return static_cast<uint32_t>(gen());
}

// Bucket/shard hash of a host: 8 bytes at a time (only this file uses it; the fallback's Map
// hashes on its own). FNV byte by byte was 8% of select() in perf.
uint32_t HostHash(std::string_view s) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 29;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 32;
  return static_cast<uint32_t>(h);
}

}  // namespace

uint32_t HashBytes(std::string_view s, uint32_t seed) {
  uint32_t h = 2166136261u ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

Table::Table(uint32_t id, double emptyPoolTimeoutMs)
    : id_(id),
      emptyPoolTimeoutMs_(emptyPoolTimeoutMs > 0 ? emptyPoolTimeoutMs : 0),
      chunks_(new std::atomic<Slot*>[kMaxChunks]) {
  byKey_.SetHash(KeyHash);
  interned_.SetHash(KeyHash);
  for (uint32_t i = 0; i < kMaxChunks; i++) chunks_[i].store(nullptr, std::memory_order_relaxed);
  for (auto& sh : shards_) sh.buckets.assign(16, nullptr);
  for (uint32_t i = 0; i < kShards; i++) Hint(i);
}

void Table::Hint(uint32_t shard) {
  const Shard& sh = shards_[shard];
  const auto base = reinterpret_cast<uintptr_t>(sh.buckets.data());
  const uint64_t bits = static_cast<uint64_t>(std::countr_zero(sh.buckets.size()));
  // An address above the shift (no x86-64 or arm64 user address is) just turns warming off.
  hints_[shard].store(base >> kHintShift == 0 ? base | bits << kHintShift : 0, std::memory_order_release);
}

Table::~Table() {
  Close();
  for (uint32_t i = 0; i < kMaxChunks; i++) {
    Slot* chunk = chunks_[i].load(std::memory_order_relaxed);
    if (chunk == nullptr) continue;
    for (size_t j = 0; j < (size_t{1} << kChunkBits); j++) chunk[j].~Slot();
    Arena::FreeHugeRegion(chunk, sizeof(Slot) << kChunkBits);
  }
}

// ---- strings and endpoint records (writer side) ----

uint32_t KeyHash(std::string_view s) { return HostHash(s); }

Interned* Table::Intern(std::string_view s) {
  const uint32_t h = KeyHash(s);
  if (Interned* hit = interned_.Find(s, h); hit != nullptr) {
    hit->refs++;
    return hit;
  }
  auto* p = static_cast<Interned*>(arena_.Alloc(sizeof(Interned) + s.size()));
  p->refs = 1;
  p->len = static_cast<uint32_t>(s.size());
  std::memcpy(p->s, s.data(), s.size());
  p->s[s.size()] = '\0';
  interned_.Insert(p, h);
  return p;
}

void Table::Unintern(Interned* s) {
  if (s == nullptr || --s->refs != 0) return;
  interned_.Erase(s->view(), KeyHash(s->view()), KeyHash);
  arena_.Free(s, sizeof(Interned) + s->len);
}

uint32_t Table::AcquireSlot(const EndpointInput& ep) {
  uint32_t idx;
  if (freeHead_ != 0) {
    idx = freeHead_ - 1;
    freeHead_ = SlotAt(idx)->nextFree;
  } else {
    idx = slotCount_++;
    uint32_t c = idx >> kChunkBits;
    if (chunks_[c].load(std::memory_order_relaxed) == nullptr) {
      void* mem = Arena::HugeRegion(sizeof(Slot) << kChunkBits);
      if (mem == nullptr) std::abort();
      auto* chunk = static_cast<Slot*>(mem);
      for (size_t j = 0; j < (size_t{1} << kChunkBits); j++) new (&chunk[j]) Slot();
      chunks_[c].store(chunk, std::memory_order_release);
    }
  }
  Slot* s = SlotAt(idx);
  char* key = static_cast<char*>(arena_.Alloc(ep.key.size() + 1));
  std::memcpy(key, ep.key.data(), ep.key.size());
  key[ep.key.size()] = '\0';
  {
    std::lock_guard<std::mutex> g(Stripe(idx));
    s->host = Intern(ep.host);
    s->app = Intern(ep.app);
    s->index = Intern(ep.index);
    s->extras = Intern(ep.extras);
    s->key = key;
    s->keyLen = static_cast<uint32_t>(ep.key.size());
    s->keyIsId = ep.instanceId.empty() ? 0 : 1;
    s->port = static_cast<uint16_t>(ep.port);
    s->tlsPort = static_cast<uint16_t>(ep.tlsPort);
    s->staleSec = ep.staleSec;
    s->updatedAtNs = ep.updatedAtNs;
    s->failedUntil.store(0, std::memory_order_relaxed);
  }
  s->refs = 0;
  s->nextFree = 0;
  byKey_.Insert(idx + 1, KeyHash(ep.key));
  endpoints_.fetch_add(1, std::memory_order_relaxed);
  return idx;
}

// Bumps a slot's generation: old handles go stale and the in-flight count restarts at 0.
static void BumpGeneration(Slot* s) {
  uint64_t w = s->genInflight.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t gen = ((w >> 32) + 1) & kGenMask;
    if (gen == 0) gen = 1;
    if (s->genInflight.compare_exchange_weak(w, gen << 32, std::memory_order_acq_rel)) return;
  }
}

void Table::ReleaseSlotRef(uint32_t idx) {
  Slot* s = SlotAt(idx);
  if (--s->refs != 0) return;
  byKey_.Erase(std::string_view(s->key, s->keyLen), KeyHash(std::string_view(s->key, s->keyLen)), KeyHash);
  {
    std::lock_guard<std::mutex> g(Stripe(idx));
    BumpGeneration(s);
    Unintern(s->host);
    Unintern(s->app);
    Unintern(s->index);
    Unintern(s->extras);
    s->host = s->app = s->index = s->extras = nullptr;
    arena_.Free(s->key, s->keyLen + 1);
    s->key = nullptr;
    s->keyLen = 0;
  }
  s->nextFree = freeHead_;
  freeHead_ = idx + 1;
  endpoints_.fetch_sub(1, std::memory_order_relaxed);
}

// ---- routes (writer side) ----

Route* Table::FindRoute(Shard& sh, uint32_t hash, std::string_view host, std::string_view path) const {
  Route* r = sh.buckets[(hash >> 8) & (sh.buckets.size() - 1)];
  while (r != nullptr && !(r->hostHash == hash && r->host() == host)) r = r->nextHost;
  while (r != nullptr && r->path() != path) r = r->nextPath;
  return r;
}

static Route* NewRoute(Arena& arena, std::string_view host, std::string_view path, uint32_t hash) {
  size_t bytes = sizeof(Route) + host.size() + path.size();
  void* mem = arena.Alloc(bytes);
  auto* r = new (mem) Route();
  r->nextHost = r->nextPath = nullptr;
  r->hash = nullptr;
  r->routeService = nullptr;
  r->members = r->inl;
  r->rr.store(RandomU32(), std::memory_order_relaxed);
  r->hostHash = hash;
  r->maxConns = 0;
  r->count = 0;
  r->cap = 2;
  r->hostLen = static_cast<uint16_t>(host.size());
  r->pathLen = static_cast<uint16_t>(path.size());
  r->lb = Lb::RoundRobin;
  std::memcpy(r->key, host.data(), host.size());
  std::memcpy(r->key + host.size(), path.data(), path.size());
  return r;
}

void Table::FreeRoute(Route* r) {
  if (r->hash != nullptr) {
    Unintern(r->hash->header);
    delete r->hash;
  }
  if (r->routeService != nullptr) Unintern(r->routeService);
  if (r->members != r->inl) arena_.Free(r->members, sizeof(Member) * r->cap);
  const size_t bytes = sizeof(Route) + r->hostLen + r->pathLen;
  r->~Route();
  arena_.Free(r, bytes);
}

// Stores a bucket head (or a nextHost link: a slot pointer names either). PrefetchRoute reads
// bucket heads without the shard's lock, so writes to them are atomic.
static void Put(Route** at, Route* v) { std::atomic_ref<Route*>(*at).store(v, std::memory_order_relaxed); }

// Links a new route into its shard (exclusive lock held): a host's routes are ordered by
// path length, longest first, so the first prefix that matches is the longest. Returns
// whether the shard's buckets moved.
static bool LinkRoute(Shard& sh, Route* r) {
  Route** slot = &sh.buckets[(r->hostHash >> 8) & (sh.buckets.size() - 1)];
  while (*slot != nullptr && !((*slot)->hostHash == r->hostHash && (*slot)->host() == r->host())) {
    slot = &(*slot)->nextHost;
  }
  Route* head = *slot;
  if (head == nullptr) {
    Route** bucket = &sh.buckets[(r->hostHash >> 8) & (sh.buckets.size() - 1)];
    r->nextHost = *bucket;
    Put(bucket, r);
    sh.hosts++;
    if (sh.hosts > sh.buckets.size()) {
      std::vector<Route*> grown(sh.buckets.size() * 2, nullptr);
      for (Route* b : sh.buckets) {
        while (b != nullptr) {
          Route* next = b->nextHost;
          Route*& dst = grown[(b->hostHash >> 8) & (grown.size() - 1)];
          b->nextHost = dst;
          dst = b;
          b = next;
        }
      }
      sh.buckets.swap(grown);
      sh.retired.push_back(std::move(grown));
      return true;
    }
    return false;
  }
  if (r->pathLen > head->pathLen) {
    r->nextHost = head->nextHost;
    r->nextPath = head;
    head->nextHost = nullptr;
    Put(slot, r);
    return false;
  }
  Route* p = head;
  while (p->nextPath != nullptr && p->nextPath->pathLen >= r->pathLen) p = p->nextPath;
  r->nextPath = p->nextPath;
  p->nextPath = r;
  return false;
}

void Table::UnlinkRoute(Shard& sh, Route* r) {
  Route** slot = &sh.buckets[(r->hostHash >> 8) & (sh.buckets.size() - 1)];
  while (*slot != nullptr && !((*slot)->hostHash == r->hostHash && (*slot)->host() == r->host())) {
    slot = &(*slot)->nextHost;
  }
  Route* head = *slot;
  if (head == r) {
    if (r->nextPath != nullptr) {
      r->nextPath->nextHost = r->nextHost;
      Put(slot, r->nextPath);
    } else {
      Put(slot, r->nextHost);
      sh.hosts--;
    }
    return;
  }
  for (Route* p = head; p != nullptr; p = p->nextPath) {
    if (p->nextPath == r) {
      p->nextPath = r->nextPath;
      return;
    }
  }
}

// Maglev lookup table over the route's members in their order (Eisenbud et al. 2016, §3.4).
void Table::RebuildHash(Route* r, std::unique_ptr<uint16_t[]>* out, uint32_t* mOut) const {
  const uint32_t n = r->count;
  const uint32_t m = n <= 400 ? kMaglevSmall : kMaglevLarge;
  std::unique_ptr<uint16_t[]> table(new uint16_t[m]);
  *mOut = m;
  if (n == 0) {
    std::fill(table.get(), table.get() + m, 0);
    *out = std::move(table);
    return;
  }
  std::vector<uint32_t> offset(n), skip(n), next(n, 0);
  for (uint32_t i = 0; i < n; i++) {
    const Slot* s = SlotAt(r->members[i].slot);
    std::string_view key(s->key, s->keyLen);
    offset[i] = HashBytes(key, kSeedOffset) % m;
    skip[i] = HashBytes(key, kSeedSkip) % (m - 1) + 1;
  }
  std::fill(table.get(), table.get() + m, UINT16_MAX);
  uint32_t filled = 0;
  for (;;) {
    for (uint32_t i = 0; i < n; i++) {
      uint32_t c = static_cast<uint32_t>((offset[i] + uint64_t{next[i]} * skip[i]) % m);
      while (table[c] != UINT16_MAX) {
        next[i]++;
        c = static_cast<uint32_t>((offset[i] + uint64_t{next[i]} * skip[i]) % m);
      }
      table[c] = static_cast<uint16_t>(i);
      next[i]++;
      if (++filled == m) {
        *out = std::move(table);
        return;
      }
    }
  }
}

// When an empty route's pool became empty (see Route); only meaningful while r->count == 0.
static double EmptySince(const Route* r) { return r->members[0].lastSeenMs; }

bool Table::KeepEmpty(Route* r, double nowMs) {
  if (emptyPoolTimeoutMs_ == 0) return false;
  r->members[0].lastSeenMs = nowMs;  // EmptySince
  return true;
}

void Table::RemoveMemberAt(Shard& /*sh*/, Route* r, uint32_t i) {
  // Order is kept: the Maglev permutation and round-robin both depend on it.
  std::memmove(&r->members[i], &r->members[i + 1], sizeof(Member) * (r->count - i - 1));
  r->count--;
}

int Table::Register(std::string_view host, std::string_view path, const EndpointInput& ep,
                    const PoolInput& opt, double nowMs) {
  std::lock_guard<std::mutex> w(writer_);
  if (closed()) return -100;
  const uint32_t hash = HostHash(host);
  Shard& sh = shards_[hash % kShards];
  Route* r = FindRoute(sh, hash, host, path);

  int memberIdx = -1;
  Slot* s = nullptr;
  uint32_t slotIdx = 0;
  if (const uint32_t found = byKey_.Find(ep.key, KeyHash(ep.key)); found != 0) {
    slotIdx = found - 1;
    s = SlotAt(slotIdx);
    if (r != nullptr) {
      for (uint32_t i = 0; i < r->count; i++) {
        if (r->members[i].slot == slotIdx) {
          memberIdx = static_cast<int>(i);
          break;
        }
      }
    }
  }
  bool older = s != nullptr && ep.updatedAtNs != 0 && ep.updatedAtNs < s->updatedAtNs;
  if (older && memberIdx >= 0) return kIgnoredStale;

  if (s == nullptr) {
    slotIdx = AcquireSlot(ep);
    s = SlotAt(slotIdx);
  } else if (!older) {
    const bool changed = s->host->view() != ep.host || s->port != ep.port || s->app->view() != ep.app ||
                         s->index->view() != ep.index || s->extras->view() != ep.extras ||
                         s->tlsPort != ep.tlsPort;
    std::lock_guard<std::mutex> g(Stripe(slotIdx));
    if (changed) {
      // Like gorouter replacing the Endpoint (and its stats): a new generation.
      Interned* old[4] = {s->host, s->app, s->index, s->extras};
      s->host = Intern(ep.host);
      s->app = Intern(ep.app);
      s->index = Intern(ep.index);
      s->extras = Intern(ep.extras);
      for (Interned* o : old) Unintern(o);
      s->port = static_cast<uint16_t>(ep.port);
      s->tlsPort = static_cast<uint16_t>(ep.tlsPort);
      s->failedUntil.store(0, std::memory_order_relaxed);
      BumpGeneration(s);
    }
    s->staleSec = ep.staleSec;
    if (ep.updatedAtNs != 0) s->updatedAtNs = ep.updatedAtNs;
  }

  int result = kUpdated;
  bool membershipChanged = false;
  if (r == nullptr) {
    r = NewRoute(arena_, host, path, hash);
    r->members[0] = Member{nowMs, slotIdx};
    r->count = 1;
    r->lb = opt.lb;
    r->maxConns = opt.maxConns;
    if (!opt.routeService.empty()) r->routeService = Intern(opt.routeService);
    if (opt.lb == Lb::Hash) {
      auto* hc = new HashCfg{Intern(opt.hashHeader), opt.balance, 0, nullptr};
      RebuildHash(r, &hc->table, &hc->m);
      r->hash = hc;
    }
    s->refs++;
    std::unique_lock<std::shared_mutex> lk(sh.lock);
    if (LinkRoute(sh, r)) Hint(hash % kShards);
    routes_.fetch_add(1, std::memory_order_relaxed);
    return kAdded;
  }
  if (memberIdx < 0) {
    if (r->count == UINT16_MAX) return kIgnoredStale;  // a pool holds at most 65535 endpoints
    result = kAdded;
    membershipChanged = true;
    s->refs++;
    if (r->count < r->cap) {
      std::unique_lock<std::shared_mutex> lk(sh.lock);
      r->members[r->count] = Member{nowMs, slotIdx};
      r->count++;
    } else {
      const auto cap = static_cast<uint16_t>(std::min<uint32_t>(uint32_t{r->cap} * 2, UINT16_MAX));
      auto* grown = static_cast<Member*>(arena_.Alloc(sizeof(Member) * cap));
      std::memcpy(grown, r->members, sizeof(Member) * r->count);
      grown[r->count] = Member{nowMs, slotIdx};
      Member* old = r->members;
      const uint16_t oldCap = r->cap;
      {
        std::unique_lock<std::shared_mutex> lk(sh.lock);
        r->members = grown;
        r->cap = cap;
        r->count++;
      }
      if (old != r->inl) arena_.Free(old, sizeof(Member) * oldCap);
    }
  } else {
    std::unique_lock<std::shared_mutex> lk(sh.lock);
    r->members[memberIdx].lastSeenMs = nowMs;
  }

  // Options: the last register message wins, as in gorouter.
  const std::string_view rsNow = r->routeService == nullptr ? std::string_view() : r->routeService->view();
  if (rsNow != opt.routeService) {
    Interned* old = r->routeService;
    Interned* fresh = opt.routeService.empty() ? nullptr : Intern(opt.routeService);
    {
      std::unique_lock<std::shared_mutex> lk(sh.lock);
      r->routeService = fresh;
    }
    if (old != nullptr) Unintern(old);
  }
  const bool hashChanged =
      opt.lb == Lb::Hash &&
      (r->hash == nullptr || membershipChanged || r->hash->balance != opt.balance ||
       r->hash->header->view() != opt.hashHeader);
  if (hashChanged || r->lb != opt.lb || r->maxConns != opt.maxConns) {
    HashCfg* fresh = nullptr;
    if (opt.lb == Lb::Hash) {
      fresh = new HashCfg{Intern(opt.hashHeader), opt.balance, 0, nullptr};
      RebuildHash(r, &fresh->table, &fresh->m);
    }
    HashCfg* old = r->hash;
    {
      std::unique_lock<std::shared_mutex> lk(sh.lock);
      r->lb = opt.lb;
      r->maxConns = opt.maxConns;
      r->hash = fresh;
    }
    if (old != nullptr) {
      Unintern(old->header);
      delete old;
    }
  }
  return result;
}

bool Table::Unregister(std::string_view host, std::string_view path, std::string_view key,
                       uint64_t updatedAtNs, double nowMs) {
  std::lock_guard<std::mutex> w(writer_);
  if (closed()) return false;
  const uint32_t hash = HostHash(host);
  Shard& sh = shards_[hash % kShards];
  Route* r = FindRoute(sh, hash, host, path);
  if (r == nullptr) return false;
  const uint32_t found = byKey_.Find(key, KeyHash(key));
  if (found == 0) return false;
  const uint32_t slotIdx = found - 1;
  if (updatedAtNs != 0 && updatedAtNs < SlotAt(slotIdx)->updatedAtNs) return false;
  uint32_t i = 0;
  while (i < r->count && r->members[i].slot != slotIdx) i++;
  if (i == r->count) return false;
  bool gone = false;
  {
    std::unique_lock<std::shared_mutex> lk(sh.lock);
    RemoveMemberAt(sh, r, i);
    if (r->count == 0 && !KeepEmpty(r, nowMs)) {
      gone = true;
      UnlinkRoute(sh, r);
    }
  }
  if (gone) {
    routes_.fetch_sub(1, std::memory_order_relaxed);
    FreeRoute(r);
  } else if (r->count != 0 && r->hash != nullptr) {
    auto* fresh = new HashCfg{Intern(r->hash->header->view()), r->hash->balance, 0, nullptr};
    RebuildHash(r, &fresh->table, &fresh->m);
    HashCfg* old = r->hash;
    {
      std::unique_lock<std::shared_mutex> lk(sh.lock);
      r->hash = fresh;
    }
    Unintern(old->header);
    delete old;
  }
  ReleaseSlotRef(slotIdx);
  return true;
}

uint32_t Table::Prune(double nowMs) {
  std::lock_guard<std::mutex> w(writer_);
  if (closed()) return 0;
  uint32_t removed = 0;
  std::vector<Route*> touched;
  std::vector<Route*> emptied;  // unlinked, to free
  std::vector<uint32_t> released;
  for (Shard& sh : shards_) {
    touched.clear();
    emptied.clear();
    // Scan without the lock: only the writer (us) changes routes.
    for (Route* head : sh.buckets) {
      for (; head != nullptr; head = head->nextHost) {
        for (Route* r = head; r != nullptr; r = r->nextPath) {
          if (r->count == 0 && nowMs - EmptySince(r) > emptyPoolTimeoutMs_) emptied.push_back(r);
          for (uint32_t i = 0; i < r->count; i++) {
            const Slot* s = SlotAt(r->members[i].slot);
            double thr = s->staleSec != 0 ? s->staleSec : kDefaultStaleSec;
            if (nowMs - r->members[i].lastSeenMs > thr * 1000) {
              touched.push_back(r);
              break;
            }
          }
        }
      }
    }
    if (touched.empty() && emptied.empty()) continue;
    {
      std::unique_lock<std::shared_mutex> lk(sh.lock);
      // Routes empty for longer than the empty-pool timeout.
      for (Route* r : emptied) UnlinkRoute(sh, r);
      for (Route* r : touched) {
        for (uint32_t i = 0; i < r->count;) {
          const Slot* s = SlotAt(r->members[i].slot);
          double thr = s->staleSec != 0 ? s->staleSec : kDefaultStaleSec;
          if (nowMs - r->members[i].lastSeenMs > thr * 1000) {
            released.push_back(r->members[i].slot);
            RemoveMemberAt(sh, r, i);
            removed++;
          } else {
            i++;
          }
        }
        if (r->count == 0 && !KeepEmpty(r, nowMs)) {
          UnlinkRoute(sh, r);
          emptied.push_back(r);
        }
      }
    }
    for (Route* r : touched) {
      if (r->count == 0 || r->hash == nullptr) continue;
      auto* fresh = new HashCfg{Intern(r->hash->header->view()), r->hash->balance, 0, nullptr};
      RebuildHash(r, &fresh->table, &fresh->m);
      HashCfg* old = r->hash;
      {
        std::unique_lock<std::shared_mutex> lk(sh.lock);
        r->hash = fresh;
      }
      Unintern(old->header);
      delete old;
    }
    for (Route* r : emptied) {
      routes_.fetch_sub(1, std::memory_order_relaxed);
      FreeRoute(r);
    }
  }
  for (uint32_t idx : released) ReleaseSlotRef(idx);
  return removed;
}

void Table::Close() {
  std::lock_guard<std::mutex> w(writer_);
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  std::vector<Route*> all;
  for (Shard& sh : shards_) {
    {
      std::unique_lock<std::shared_mutex> lk(sh.lock);
      for (Route*& head : sh.buckets) {
        for (Route* h = head; h != nullptr; h = h->nextHost) {
          for (Route* r = h; r != nullptr; r = r->nextPath) all.push_back(r);
        }
        Put(&head, nullptr);
      }
      sh.hosts = 0;
    }
    for (Route* r : all) {
      for (uint32_t i = 0; i < r->count; i++) ReleaseSlotRef(r->members[i].slot);
      FreeRoute(r);
    }
    all.clear();
  }
  routes_.store(0, std::memory_order_relaxed);
}

// ---- readers ----

const Route* Table::MatchHost(const Shard& sh, uint32_t hash, std::string_view host,
                              std::string_view path) const {
  const Route* r = sh.buckets[(hash >> 8) & (sh.buckets.size() - 1)];
  while (r != nullptr && !(r->hostHash == hash && r->host() == host)) r = r->nextHost;
  for (; r != nullptr; r = r->nextPath) {
    if (PathMatches(r->path(), path)) return r;
  }
  return nullptr;
}

Route* const* Table::HintedBucket(uint32_t hash) const {
  const uint64_t w = hints_[hash % kShards].load(std::memory_order_acquire);
  if (w == 0) return nullptr;
  const auto* base = reinterpret_cast<Route* const*>(w & ((uint64_t{1} << kHintShift) - 1));
  return base + ((hash >> 8) & ((uint64_t{1} << (w >> kHintShift)) - 1));
}

uint64_t Table::Prefetch(std::string_view rawHost) const {
  char host[kHostMax];
  const size_t n = NormaliseHost(rawHost, host);
  if (n == 0) return 0;
  const uint32_t hash = HostHash(std::string_view(host, n));
  __builtin_prefetch(&shards_[hash % kShards].lock, 1);  // the read lock writes it
  Route* const* bucket = HintedBucket(hash);
  if (bucket == nullptr) return 0;
  __builtin_prefetch(bucket);
  return uint64_t{1} << 32 | hash;
}

void Table::PrefetchRoute(uint64_t token) const {
  if (token >> 32 != 1) return;
  Route* const* bucket = HintedBucket(static_cast<uint32_t>(token));
  if (bucket == nullptr) return;
  // The head may be unlinked and freed meanwhile: it is only prefetched, never read.
  const Route* r = std::atomic_ref<Route*>(*const_cast<Route**>(bucket)).load(std::memory_order_relaxed);
  if (r == nullptr) return;
  __builtin_prefetch(r);  // nextHost, and the lookup's hostHash/key in the next line
  __builtin_prefetch(reinterpret_cast<const char*>(r) + 64);
}

// Runs fn(route) under the shard's read lock for the route matching the request (exact host,
// then "*.parent" wildcards from the most specific), or fn(nullptr) without any lock.
template <typename Fn>
auto Table::WithMatch(std::string_view rawHost, std::string_view rawPath, Fn&& fn) -> decltype(fn(nullptr)) {
  char buf[kHostMax + 2];
  char* host = buf + 2;  // room to write "*." in front of a suffix
  const size_t n = NormaliseHost(rawHost, host);
  const std::string_view path = CutQuery(rawPath);
  if (n != 0) {
    std::string_view key(host, n);
    for (;;) {
      const uint32_t hash = HostHash(key);
      Shard& sh = shards_[hash % kShards];
      {
        std::shared_lock<std::shared_mutex> lk(sh.lock);
        const Route* r = MatchHost(sh, hash, key, path);
        if (r != nullptr) return fn(r);
      }
      // Next wildcard: "a.b.c" -> "*.b.c" -> "*.c" (gorouter's NextWildcard).
      size_t from = (key.size() >= 2 && key[0] == '*' && key[1] == '.') ? 2 : 0;
      size_t dot = key.find('.', from);
      if (dot == std::string_view::npos || dot + 1 >= key.size()) break;
      char* start = const_cast<char*>(key.data()) + dot - 1;
      start[0] = '*';
      start[1] = '.';
      key = std::string_view(start, key.data() + key.size() - start);
    }
  }
  return fn(nullptr);
}

double Table::Take(uint32_t slotIdx) {
  uint64_t w = SlotAt(slotIdx)->genInflight.fetch_add(1, std::memory_order_acq_rel);
  return static_cast<double>(((w >> 32) & kGenMask) * (uint64_t{1} << kSlotBits) + slotIdx);
}

double Table::Pick(const Route* r, std::string_view sticky, std::string_view hashKey, double nowMs,
                   bool routeServiceDone) {
  const uint32_t n = r->count;
  if (n == 0) return kNoEndpoints;
  if (r->routeService != nullptr && !routeServiceDone) return kRouteService;
  const Member* m = r->members;
  if (!sticky.empty()) {
    for (uint32_t i = 0; i < n; i++) {
      const Slot* s = SlotAt(m[i].slot);
      if (s->keyIsId != 0 && std::string_view(s->key, s->keyLen) == sticky) {
        if (!IsFull(s->genInflight.load(std::memory_order_relaxed), r->maxConns)) return Take(m[i].slot);
        break;
      }
    }
  }
  int fbAny = -1;
  if (r->lb == Lb::Hash) {
    if (hashKey.empty()) return kNeedHashKey;
    const HashCfg* hc = r->hash;
    uint64_t limit = UINT64_MAX;
    if (hc->balance > 0) {
      uint64_t total = 0;
      for (uint32_t i = 0; i < n; i++) {
        total += static_cast<uint32_t>(SlotAt(m[i].slot)->genInflight.load(std::memory_order_relaxed));
      }
      limit = static_cast<uint64_t>(std::ceil(hc->balance * static_cast<double>(total + 1) / n));
    }
    int fbHealthy = -1;
    const uint32_t pos = HashBytes(hashKey, kSeedKey) % hc->m;
    for (uint32_t j = 0; j < hc->m; j++) {
      uint32_t idx = hc->table[(pos + j) % hc->m];
      if (idx >= n) continue;
      const Slot* s = SlotAt(m[idx].slot);
      uint64_t w = s->genInflight.load(std::memory_order_relaxed);
      if (IsFull(w, r->maxConns)) continue;
      if (fbAny < 0) fbAny = static_cast<int>(idx);
      if (s->failedUntil.load(std::memory_order_relaxed) > nowMs) continue;
      if (fbHealthy < 0) fbHealthy = static_cast<int>(idx);
      if (static_cast<uint32_t>(w) + uint64_t{1} > limit) continue;
      return Take(m[idx].slot);
    }
    if (fbHealthy >= 0) return Take(m[fbHealthy].slot);
    return fbAny >= 0 ? Take(m[fbAny].slot) : kAllFull;
  }
  const uint32_t start = r->rr.fetch_add(1, std::memory_order_relaxed) % n;
  if (r->lb == Lb::LeastConnection) {
    int best = -1;
    uint32_t bestLoad = 0, anyLoad = 0;
    for (uint32_t j = 0; j < n; j++) {
      uint32_t i = start + j < n ? start + j : start + j - n;
      const Slot* s = SlotAt(m[i].slot);
      uint64_t w = s->genInflight.load(std::memory_order_relaxed);
      if (IsFull(w, r->maxConns)) continue;
      uint32_t load = static_cast<uint32_t>(w);
      if (fbAny < 0 || load < anyLoad) {
        fbAny = static_cast<int>(i);
        anyLoad = load;
      }
      if (s->failedUntil.load(std::memory_order_relaxed) > nowMs) continue;
      if (best < 0 || load < bestLoad) {
        best = static_cast<int>(i);
        bestLoad = load;
      }
    }
    if (best >= 0) return Take(m[best].slot);
    return fbAny >= 0 ? Take(m[fbAny].slot) : kAllFull;
  }
  for (uint32_t j = 0; j < n; j++) {
    uint32_t i = start + j < n ? start + j : start + j - n;
    const Slot* s = SlotAt(m[i].slot);
    if (IsFull(s->genInflight.load(std::memory_order_relaxed), r->maxConns)) continue;
    if (fbAny < 0) fbAny = static_cast<int>(i);
    if (s->failedUntil.load(std::memory_order_relaxed) > nowMs) continue;
    return Take(m[i].slot);
  }
  // Every endpoint failed recently: like gorouter, try one anyway rather than none.
  return fbAny >= 0 ? Take(m[fbAny].slot) : kAllFull;
}

double Table::Select(std::string_view host, std::string_view path, std::string_view sticky,
                     std::string_view hashKey, double nowMs, bool routeServiceDone) {
  return WithMatch(host, path, [&](const Route* r) -> double {
    return r == nullptr ? kNoRoute : Pick(r, sticky, hashKey, nowMs, routeServiceDone);
  });
}

double Table::SelectInstance(std::string_view host, std::string_view path, std::string_view app,
                             std::string_view index, double /*nowMs*/, bool routeServiceDone) {
  return WithMatch(host, path, [&](const Route* r) -> double {
    if (r == nullptr) return kNoRoute;
    if (r->count == 0) return kNoEndpoints;
    if (r->routeService != nullptr && !routeServiceDone) return kRouteService;
    for (uint32_t i = 0; i < r->count; i++) {
      const uint32_t idx = r->members[i].slot;
      const Slot* s = SlotAt(idx);
      bool same;
      {
        std::lock_guard<std::mutex> g(Stripe(idx));
        same = s->app->view() == app && s->index->view() == index;
      }
      if (!same) continue;
      if (IsFull(s->genInflight.load(std::memory_order_relaxed), r->maxConns)) return kAllFull;
      return Take(idx);
    }
    return kUnknownInstance;
  });
}

bool Table::HashHeader(std::string_view host, std::string_view path, std::string* out) {
  return WithMatch(host, path, [&](const Route* r) -> bool {
    if (r == nullptr || r->lb != Lb::Hash || r->hash == nullptr) return false;
    out->assign(r->hash->header->view());
    return true;
  });
}

bool Table::RouteService(std::string_view host, std::string_view path, std::string* out) {
  return WithMatch(host, path, [&](const Route* r) -> bool {
    if (r == nullptr || r->routeService == nullptr) return false;
    out->assign(r->routeService->view());
    return true;
  });
}

Slot* Table::SlotOfHandle(double handle, uint32_t* gen) const {
  if (!(handle >= 0) || handle > 9007199254740991.0) return nullptr;
  const auto h = static_cast<uint64_t>(handle);
  const auto idx = static_cast<uint32_t>(h & kSlotMask);
  *gen = static_cast<uint32_t>(h >> kSlotBits);
  return SlotAt(idx);
}

void Table::Release(double handle) {
  uint32_t gen;
  Slot* s = SlotOfHandle(handle, &gen);
  if (s == nullptr) return;
  uint64_t w = s->genInflight.load(std::memory_order_relaxed);
  for (;;) {
    if (((w >> 32) & kGenMask) != gen || static_cast<uint32_t>(w) == 0) return;
    if (s->genInflight.compare_exchange_weak(w, w - 1, std::memory_order_acq_rel)) return;
  }
}

void Table::MarkFailed(double handle, double untilMs) {
  uint32_t gen;
  Slot* s = SlotOfHandle(handle, &gen);
  if (s == nullptr || ((s->genInflight.load(std::memory_order_acquire) >> 32) & kGenMask) != gen) return;
  s->failedUntil.store(untilMs, std::memory_order_relaxed);
}

int64_t Table::InFlight(double handle) {
  uint32_t gen;
  Slot* s = SlotOfHandle(handle, &gen);
  if (s == nullptr) return 0;
  uint64_t w = s->genInflight.load(std::memory_order_acquire);
  return ((w >> 32) & kGenMask) == gen ? static_cast<uint32_t>(w) : 0;
}

bool Table::Endpoint(double handle, EndpointCopy* out) {
  uint32_t gen;
  Slot* s = SlotOfHandle(handle, &gen);
  if (s == nullptr) return false;
  const auto idx = static_cast<uint32_t>(static_cast<uint64_t>(handle) & kSlotMask);
  std::lock_guard<std::mutex> g(Stripe(idx));
  uint64_t w = s->genInflight.load(std::memory_order_acquire);
  if (((w >> 32) & kGenMask) != gen || s->host == nullptr) return false;
  out->handle = static_cast<uint64_t>(handle);
  out->host.assign(s->host->view());
  out->app.assign(s->app->view());
  out->instanceId.assign(s->keyIsId != 0 ? std::string_view(s->key, s->keyLen) : std::string_view());
  out->index.assign(s->index->view());
  out->extras.assign(s->extras->view());
  out->port = s->port;
  out->staleSec = s->staleSec;
  out->inFlight = static_cast<uint32_t>(w);
  out->failedUntil = s->failedUntil.load(std::memory_order_relaxed);
  out->updatedAtNs = s->updatedAtNs;
  return true;
}

std::vector<RouteCopy> Table::Dump() {
  std::vector<RouteCopy> out;
  for (Shard& sh : shards_) {
    std::shared_lock<std::shared_mutex> lk(sh.lock);
    for (const Route* head : sh.buckets) {
      for (; head != nullptr; head = head->nextHost) {
        for (const Route* r = head; r != nullptr; r = r->nextPath) {
          RouteCopy rc;
          rc.route.assign(r->host());
          rc.route.append(r->path());
          rc.lb = r->lb;
          rc.hashHeader = r->hash != nullptr ? std::string(r->hash->header->view()) : std::string();
          rc.balance = r->hash != nullptr ? r->hash->balance : 0;
          rc.maxConns = r->maxConns;
          if (r->routeService != nullptr) rc.routeService.assign(r->routeService->view());
          for (uint32_t i = 0; i < r->count; i++) {
            const uint32_t idx = r->members[i].slot;
            uint64_t w = SlotAt(idx)->genInflight.load(std::memory_order_acquire);
            double handle = static_cast<double>(((w >> 32) & kGenMask) * (uint64_t{1} << kSlotBits) + idx);
            EndpointCopy ec;
            if (Endpoint(handle, &ec)) rc.endpoints.emplace_back(std::move(ec), r->members[i].lastSeenMs);
          }
          out.push_back(std::move(rc));
        }
      }
    }
  }
  return out;
}

}  // namespace kiln::rt

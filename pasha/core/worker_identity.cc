#include <dlfcn.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>

#include "pasha/core/context.h"
#include "pasha/core/detail/worker_identity.h"

namespace pasha {
namespace {

thread_local int thread_worker_id = -1;
std::atomic<int> process_worker_id{-1};

// The calling thread's lineage (detail::ThreadLineage), made when it first lends an id or is started
// by a thread that has one.
thread_local std::shared_ptr<detail::ThreadLineage> thread_lineage;
thread_local bool has_lineage = false;  // thread_lineage is set (read without touching the shared_ptr)

detail::ThreadLineage* this_thread_lineage() noexcept {
  if (!has_lineage) {
    auto* made = new (std::nothrow) detail::ThreadLineage;
    if (made == nullptr) return nullptr;
    thread_lineage.reset(made);
    has_lineage = true;
  }
  return thread_lineage.get();
}

constexpr std::uint64_t kLentIdMask = 0xffff;

thread_local bool looked_up = false;  // this thread has looked for its birth (detail::look_up_birth)

}  // namespace

int this_worker_id() noexcept {
  if (thread_worker_id >= 0) return thread_worker_id;
  if (const int process = process_worker_id.load(std::memory_order_relaxed); process >= 0) return process;
  return detail::inherited_worker_id();
}

WorkerScope::WorkerScope(int worker_id) noexcept : previous_(thread_worker_id), lend_(worker_id) {
  thread_worker_id = worker_id;
}
WorkerScope::~WorkerScope() { thread_worker_id = previous_; }

namespace detail {

LentWorkerId::LentWorkerId(int worker_id) noexcept : lineage_(this_thread_lineage()), previous_(0) {
  if (lineage_ == nullptr) return;
  previous_ = lineage_->lending.load(std::memory_order_relaxed);
  const std::uint64_t generation = ++lineage_->next_generation;
  lineage_->lending.store((generation << 16) | (static_cast<std::uint64_t>(worker_id + 1) & kLentIdMask),
                          std::memory_order_release);
}

LentWorkerId::~LentWorkerId() {
  if (lineage_ != nullptr) lineage_->lending.store(previous_, std::memory_order_release);
}

namespace {

// The births of threads not yet looked up, by the new thread's pthread_t (a thread that has ended
// without looking leaves its note, which the next thread given the same pthread_t replaces or erases).
struct Births {
  std::mutex lock;
  std::unordered_map<pthread_t, ThreadBirth> by_thread;
  std::atomic<std::size_t> count{0};
};

Births& births() noexcept {
  static Births* const instance = new Births;  // never destroyed: threads may start at exit
  return *instance;
}

// The calling thread's birth, once: looked up (and taken) the first time it is needed.
void look_up_birth() noexcept {
  if (looked_up) return;
  looked_up = true;
  Births& all = births();
  if (all.count.load(std::memory_order_acquire) == 0) return;
  ThreadBirth birth;
  {
    std::lock_guard hold(all.lock);
    const auto found = all.by_thread.find(pthread_self());
    if (found == all.by_thread.end()) return;
    birth = std::move(found->second);
    all.by_thread.erase(found);
    all.count.store(all.by_thread.size(), std::memory_order_release);
  }
  begin_thread(std::move(birth));
}

}  // namespace

bool births_noted() noexcept { return births().count.load(std::memory_order_acquire) != 0; }

int create_noting_birth(ThreadBirth birth, const std::function<int()>& create, pthread_t* thread) {
  Births& all = births();
  std::lock_guard hold(all.lock);
  // Counted before the thread exists: the new thread, which may ask who it is before create()
  // returns here, then waits for this lock instead of finding no note.
  all.count.fetch_add(1, std::memory_order_acq_rel);
  const int error = create();
  if (error == 0) {
    if (birth.parent) {
      all.by_thread.insert_or_assign(*thread, std::move(birth));
    } else {
      all.by_thread.erase(*thread);  // a note a thread that ended left under this pthread_t
    }
  }
  all.count.store(all.by_thread.size(), std::memory_order_release);
  return error;
}

void forget_births_in_new_process() noexcept {
  // Another thread may have held the lock at the fork; the notes are the parent's threads'.
  Births* const fresh = &births();
  new (&fresh->lock) std::mutex;
  new (&fresh->by_thread) std::unordered_map<pthread_t, ThreadBirth>;  // the old one's memory is let go
  fresh->count.store(0, std::memory_order_relaxed);
}

ThreadBirth birth_of_new_thread() noexcept {
  look_up_birth();
  if (!has_lineage) return {};
  const std::uint64_t lending = thread_lineage->lending.load(std::memory_order_acquire);
  // A thread that works for no worker now never will through this lending: its new thread needs no
  // lineage (and chains of threads starting threads keep none alive).
  if (lending == 0 && inherited_worker_id() < 0) return {};
  return {thread_lineage, lending};
}

void begin_thread(ThreadBirth birth) noexcept {
  looked_up = true;  // told outright: nothing to look up
  if (!birth.parent) return;
  ThreadLineage* lineage = this_thread_lineage();
  if (lineage == nullptr) return;
  lineage->parent = std::move(birth.parent);
  lineage->parent_lending = birth.parent_lending;
}

int inherited_worker_id() noexcept {
  look_up_birth();
  const ThreadLineage* node = thread_lineage.get();
  for (int depth = 0; node != nullptr && node->parent && depth < 64; ++depth) {
    const std::uint64_t now = node->parent->lending.load(std::memory_order_acquire);
    if (now != node->parent_lending) return -1;  // the lending it was started in has ended
    if (now != 0) return static_cast<int>(now & kLentIdMask) - 1;
    node = node->parent.get();
  }
  return -1;
}

WorkerIdScope::WorkerIdScope(int worker_id) noexcept
    : previous_(thread_worker_id),
      previous_process_(process_worker_id.load(std::memory_order_relaxed)),
      lend_(worker_id) {
  thread_worker_id = worker_id;
  // A worker process runs one share, whose id may be numbered by a context above the one that forked
  // it (an MPI context's global ids over a process context's local ones): its threads follow the share.
  if (previous_process_ >= 0) process_worker_id.store(worker_id, std::memory_order_relaxed);
}
WorkerIdScope::~WorkerIdScope() {
  thread_worker_id = previous_;
  if (previous_process_ >= 0) process_worker_id.store(previous_process_, std::memory_order_relaxed);
}

void set_process_worker_id(int worker_id) noexcept { process_worker_id.store(worker_id, std::memory_order_relaxed); }

namespace {

// Raised in every new process, first thing: caches made in an earlier generation are stale.
std::atomic<std::uint64_t> process_generation{1};

[[maybe_unused]] const bool kNotedAtFork = (pthread_atfork(nullptr, nullptr, note_new_process), true);

}  // namespace

void note_new_process() noexcept {
  process_generation.fetch_add(1, std::memory_order_acq_rel);
  forget_births_in_new_process();
}

pid_t this_process_id() noexcept {
  thread_local pid_t cached = 0;
  thread_local std::uint64_t cached_in = 0;
  const std::uint64_t generation = process_generation.load(std::memory_order_acquire);
  if (cached_in != generation) {
    cached = getpid();
    cached_in = generation;
  }
  return cached;
}

pid_t this_thread_id() noexcept {
  thread_local pid_t cached = 0;
  thread_local std::uint64_t cached_in = 0;
  const std::uint64_t generation = process_generation.load(std::memory_order_acquire);
  if (cached_in != generation) {
    cached = static_cast<pid_t>(syscall(SYS_gettid));
    cached_in = generation;
  }
  return cached;
}

std::uint64_t this_thread_token() noexcept {
  thread_local const char token = 0;
  return reinterpret_cast<std::uintptr_t>(&token);
}

}  // namespace detail
}  // namespace pasha

// pthread_create, as every thread of a program that links pasha is started (std::thread, std::async,
// OpenMP, a library's pool): pasha's definition calls the real one (the next definition: the C
// library's, or a sanitizer's, which may call this one in turn) and notes, under the registry's lock,
// which thread started the new one when that one had a lineage; the new thread finds its note the first
// time it asks who it works for, waiting for the lock if its starter still holds it. The new thread's
// start routine is left as it is (a sanitizer's own must run first in the new thread).
namespace {

using CreateThread = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);

CreateThread real_pthread_create() noexcept {
  static const auto real = reinterpret_cast<CreateThread>(dlsym(RTLD_NEXT, "pthread_create"));
  return real;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int pthread_create(pthread_t* thread, const pthread_attr_t* attributes,
                                                                     void* (*start)(void*), void* argument) {
  const CreateThread real = real_pthread_create();
  pasha::detail::ThreadBirth birth = pasha::detail::birth_of_new_thread();
  if (!birth.parent && !pasha::detail::births_noted()) return real(thread, attributes, start, argument);
  return pasha::detail::create_noting_birth(std::move(birth), [&] { return real(thread, attributes, start, argument); },
                                            thread);
}

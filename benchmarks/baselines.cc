#include "benchmarks/baselines.h"

#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "benchmarks/kernels.h"

namespace pasha::bench {
namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "map_bench baseline: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

struct Share {
  std::size_t begin, end;
};

Share share_of(std::size_t n, int workers, int w) {
  return {n * static_cast<std::size_t>(w) / static_cast<std::size_t>(workers),
          n * static_cast<std::size_t>(w + 1) / static_cast<std::size_t>(workers)};
}

// Waits for the children; aborts if one failed.
void wait_for(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) die("child");
  }
}

// Forks `workers` children, child w running body(w) and leaving with _exit(0); returns their pids.
template <class Body>
std::vector<pid_t> fork_children(int workers, Body&& body) {
  std::fflush(nullptr);
  std::vector<pid_t> pids;
  for (int w = 0; w < workers; ++w) {
    const pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      body(w);
      _exit(0);
    }
    pids.push_back(pid);
  }
  return pids;
}

// Forks `workers` children running body(w) and waits for them; aborts if one fails.
template <class Body>
void fork_and_wait(int workers, Body&& body) {
  wait_for(fork_children(workers, std::forward<Body>(body)));
}

void write_all(int fd, const char* data, std::size_t bytes) {
  while (bytes > 0) {
    const ssize_t written = write(fd, data, bytes);
    if (written < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    data += written;
    bytes -= static_cast<std::size_t>(written);
  }
}

// Each child computes its share into private memory and streams it through its end of a channel;
// the parent reads all channels at once (poll) straight into `out`.
template <class MakeChannel>
void stream_map(Workload workload, const double* in, double* out, std::size_t n, int workers,
                MakeChannel make_channel) {
  const std::size_t per = output_per_element(workload);
  std::vector<int> read_fds(static_cast<std::size_t>(workers));
  std::vector<int> write_fds(static_cast<std::size_t>(workers));
  for (int w = 0; w < workers; ++w) make_channel(read_fds[static_cast<std::size_t>(w)], write_fds[static_cast<std::size_t>(w)]);
  const std::vector<pid_t> pids = fork_children(workers, [&](int w) {
    const Share s = share_of(n, workers, w);
    std::vector<double> result((s.end - s.begin) * per);
    run_range(workload, in, result.data(), s.begin, s.end, s.begin);
    write_all(write_fds[static_cast<std::size_t>(w)], reinterpret_cast<const char*>(result.data()),
              result.size() * sizeof(double));
  });
  std::vector<pollfd> polls;
  std::vector<char*> cursor, limit;
  for (int w = 0; w < workers; ++w) {
    close(write_fds[static_cast<std::size_t>(w)]);
    const Share s = share_of(n, workers, w);
    polls.push_back({read_fds[static_cast<std::size_t>(w)], POLLIN, 0});
    cursor.push_back(reinterpret_cast<char*>(out + s.begin * per));
    limit.push_back(reinterpret_cast<char*>(out + s.end * per));
  }
  std::size_t open_channels = polls.size();
  while (open_channels > 0) {
    if (poll(polls.data(), polls.size(), -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    for (std::size_t k = 0; k < polls.size(); ++k) {
      if (polls[k].fd < 0 || polls[k].revents == 0) continue;
      const ssize_t got = read(polls[k].fd, cursor[k], static_cast<std::size_t>(limit[k] - cursor[k]));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) die("read");
      cursor[k] += got;
      if (got == 0 || cursor[k] == limit[k]) {
        if (cursor[k] != limit[k]) die("short result");
        close(polls[k].fd);
        polls[k].fd = -1;
        --open_channels;
      }
    }
  }
  wait_for(pids);
}

}  // namespace

std::size_t output_per_element(Workload workload) { return workload == Workload::rows ? kRowLength : 1; }

void run_range(Workload workload, const double* in, double* out, std::size_t begin, std::size_t end,
               std::size_t out_first) {
  switch (workload) {
    case Workload::triple:
      for (std::size_t i = begin; i < end; ++i) out[i - out_first] = 3 * in[i];
      break;
    case Workload::compute:
      for (std::size_t i = begin; i < end; ++i) out[i - out_first] = compute_chain(in[i]);
      break;
    case Workload::rows:
      for (std::size_t i = begin; i < end; ++i) fill_row(in[i], out + (i - out_first) * kRowLength);
      break;
  }
}

SharedBuffer::SharedBuffer(std::size_t doubles) : bytes_(doubles * sizeof(double) + 1) {
  void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  data_ = static_cast<double*>(p);
}

SharedBuffer::~SharedBuffer() { munmap(data_, bytes_); }

void std_thread_map(Workload workload, const double* in, double* out, std::size_t n, int threads) {
  std::vector<std::thread> pool;
  for (int w = 0; w < threads; ++w) {
    pool.emplace_back([=] {
      const Share s = share_of(n, threads, w);
      run_range(workload, in, out, s.begin, s.end);
    });
  }
  for (auto& t : pool) t.join();
}

void fork_map(Workload workload, const double* in, double* out, std::size_t n, int workers) {
  fork_and_wait(workers, [&](int w) {
    const Share s = share_of(n, workers, w);
    run_range(workload, in, out, s.begin, s.end);
  });
}

void fork_empty(int workers) {
  fork_and_wait(workers, [](int) {});
}

void pipe_map(Workload workload, const double* in, double* out, std::size_t n, int workers) {
  stream_map(workload, in, out, n, workers, [](int& r, int& w) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) die("pipe");
    r = fds[0];
    w = fds[1];
  });
}

void socketpair_map(Workload workload, const double* in, double* out, std::size_t n, int workers) {
  stream_map(workload, in, out, n, workers, [](int& r, int& w) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) die("socketpair");
    r = fds[0];
    w = fds[1];
  });
}

void gather_map(Workload workload, const double* in, double* out, std::size_t n, int workers) {
  const std::size_t per = output_per_element(workload);
  std::vector<std::unique_ptr<SharedBuffer>> results;
  for (int w = 0; w < workers; ++w) {
    const Share s = share_of(n, workers, w);
    results.push_back(std::make_unique<SharedBuffer>((s.end - s.begin) * per));
  }
  fork_and_wait(workers, [&](int w) {
    const Share s = share_of(n, workers, w);
    run_range(workload, in, results[static_cast<std::size_t>(w)]->data(), s.begin, s.end, s.begin);
  });
  for (int w = 0; w < workers; ++w) {
    const Share s = share_of(n, workers, w);
    std::memcpy(out + s.begin * per, results[static_cast<std::size_t>(w)]->data(), (s.end - s.begin) * per * sizeof(double));
  }
}

}  // namespace pasha::bench

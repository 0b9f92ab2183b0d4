#include "contexts/processes/stdio_at_fork.h"

#include <stdio_ext.h>

#include <cstdio>
#include <ext/stdio_sync_filebuf.h>
#include <iostream>

namespace pasha::processes {
namespace {

// The C++ standard streams that keep a buffer of their own (after sync_with_stdio(false)); those
// synchronised with stdio write through stdout and stderr.
template <class Action>
void for_each_buffered_cxx_stream(Action&& action) {
  for (std::ostream* stream : {&std::cout, &std::cerr, &std::clog}) {
    std::streambuf* buffer = stream->rdbuf();
    if (buffer != nullptr && dynamic_cast<__gnu_cxx::stdio_sync_filebuf<char>*>(buffer) == nullptr) action(*buffer);
  }
}

}  // namespace

void flush_caller_output() noexcept {
  for (FILE* stream : {stdout, stderr}) {
    if (ftrylockfile(stream) == 0) {
      fflush_unlocked(stream);
      funlockfile(stream);
    }
  }
  try {
    for_each_buffered_cxx_stream([](std::streambuf& buffer) { buffer.pubsync(); });
  } catch (...) {
    // A stream's own error; nothing for the map to report.
  }
}

// Each step writes only when there is something to do: a page a worker writes is a page it copies.
void discard_inherited_output() noexcept {
  for (FILE* stream : {stdout, stderr}) {
    if (__fpending(stream) > 0) __fpurge(stream);
  }
}

void flush_worker_output() noexcept {
  try {
    for_each_buffered_cxx_stream([](std::streambuf& buffer) { buffer.pubsync(); });
  } catch (...) {
    // A stream's own error; the share is done all the same.
  }
  for (FILE* stream : {stdout, stderr}) {
    if (__fpending(stream) > 0) std::fflush(stream);
  }
}

}  // namespace pasha::processes

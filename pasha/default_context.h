// The default context and the free functions that use it: pasha::map, pasha::alloc, pasha::alloc_like.
//
// At start the default context is a ProcessContext with the default worker count, as in EXtra-pasha.
// Replacing the default context while another thread is using the old one (through these functions
// or a reference from default_context()) is not allowed.
#ifndef PASHA_DEFAULT_CONTEXT_H_
#define PASHA_DEFAULT_CONTEXT_H_

#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "pasha/core/array.h"
#include "pasha/core/context.h"
#include "pasha/core/options.h"

namespace pasha {

// A new context by name: "serial", "threads" or "processes". Without a worker count, threads and
// processes use their default (one per physical core the process may run on).
// Throws std::invalid_argument for an unknown name or a bad worker count.
std::shared_ptr<Context> make_context(std::string_view name, std::optional<int> num_workers = std::nullopt);

Context& default_context();
void set_default_context(std::shared_ptr<Context> context);
// set_default_context("threads", 4); throws like make_context.
void set_default_context(std::string_view name, std::optional<int> num_workers = std::nullopt);

template <class T>
Array<T> alloc(const Shape& shape, const AllocOptions<T>& options = {}) {
  return default_context().alloc<T>(shape, options);
}

template <class U = void, class Prototype>
auto alloc_like(const Prototype& prototype,
                const AllocLikeOptions<detail::alloc_like_t<U, detail::like_element_t<Prototype>>>& options = {}) {
  return default_context().alloc_like<U>(prototype, options);
}

template <class U = void, class T>
Array<detail::alloc_like_t<U, T>> alloc_like(const T* prototype, const Shape& shape,
                                             const AllocLikeOptions<detail::alloc_like_t<U, T>>& options = {}) {
  return default_context().alloc_like<U>(prototype, shape, options);
}

template <class Kernel, class Source>
void map(Kernel&& kernel, Source&& source, const MapOptions& options = {}) {
  default_context().map(std::forward<Kernel>(kernel), std::forward<Source>(source), options);
}

}  // namespace pasha

#endif  // PASHA_DEFAULT_CONTEXT_H_

#include "conformance/context_factory.h"

namespace pasha::conformance {

std::string ContextName::operator()(const ::testing::TestParamInfo<ContextFactory>& info) const {
  auto context = info.param();
  return context->name() + "_" + std::to_string(context->num_workers()) + "_workers";
}

}  // namespace pasha::conformance

#include <memory>

#include "conformance/conformance.h"
#include "contexts/serial_context.h"

PASHA_INSTANTIATE_CONFORMANCE_SUITE(Serial, [] { return std::make_shared<pasha::SerialContext>(); });

#pragma once
// Parses template text into a Template, following jinja2's grammar and operator precedence.
#include <string_view>

#include "ast.h"

namespace anvil::tokenizer::jinja {

// Throws anvil::Error "chat template syntax error at L:C: ..." for bad syntax, unknown
// filters/tests/tags and constructs outside the supported subset.
Template parse_template(std::string_view source);

}  // namespace anvil::tokenizer::jinja

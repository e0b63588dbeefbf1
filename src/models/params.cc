#include "recforge/models/params.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "recforge/core/error.h"

namespace recforge::models {
namespace {

std::string FormatFloat(double value) {
  // Shortest text that round-trips: 0.01, 10, 1e-05.
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, end);
}

std::string TypeName(ParamType type) {
  switch (type) {
    case ParamType::kInt: return "int";
    case ParamType::kFloat: return "float";
    case ParamType::kBool: return "bool";
    case ParamType::kChoice: return "choice";
  }
  return "?";
}

std::string ValidNames(const std::vector<ParamField>& fields) {
  std::vector<std::string> names;
  for (const auto& field : fields) names.push_back(field.name);
  std::sort(names.begin(), names.end());
  return fmt::format("{}", fmt::join(names, ", "));
}

// Validates `text` for `field` and returns its canonical form.
std::string Canonical(std::string_view family, const ParamField& field, std::string_view text) {
  auto fail = [&](std::string_view why) -> std::string {
    throw ConfigError(fmt::format("{}: {}={}: {}", family, field.name, text, why));
  };
  switch (field.type) {
    case ParamType::kInt: {
      long long value = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc() || end != text.data() + text.size()) {
        // Accept "1e3"-style integers written as floats when they are whole.
        double d = 0;
        auto [end2, ec2] = std::from_chars(text.data(), text.data() + text.size(), d);
        if (ec2 != std::errc() || end2 != text.data() + text.size() || d != std::floor(d)) {
          return fail("expected an integer");
        }
        value = static_cast<long long>(d);
      }
      if (value < field.min || value > field.max) {
        return fail(fmt::format("out of range [{}, {}]", static_cast<long long>(field.min),
                                static_cast<long long>(field.max)));
      }
      return std::to_string(value);
    }
    case ParamType::kFloat: {
      double value = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
        return fail("expected a number");
      }
      if (value < field.min || value > field.max) {
        return fail(fmt::format("out of range [{}, {}]", FormatFloat(field.min), FormatFloat(field.max)));
      }
      return FormatFloat(value);
    }
    case ParamType::kBool: {
      if (text == "true" || text == "1" || text == "yes" || text == "on") return "true";
      if (text == "false" || text == "0" || text == "no" || text == "off") return "false";
      return fail("expected true or false");
    }
    case ParamType::kChoice: {
      for (const auto& choice : field.choices) {
        if (choice == text) return choice;
      }
      return fail(fmt::format("expected one of: {}", fmt::join(field.choices, ", ")));
    }
  }
  return fail("unknown type");
}

const ParamField* FindField(const std::vector<ParamField>& fields, std::string_view key) {
  for (const auto& field : fields) {
    if (field.name == key) return &field;
    for (const auto& alias : field.aliases) {
      if (alias == key) return &field;
    }
  }
  return nullptr;
}

}  // namespace

ParamField IntParam(std::string name, long long default_value, long long min, long long max, std::string help,
                    std::vector<std::string> aliases) {
  return ParamField{std::move(name), ParamType::kInt, std::to_string(default_value), static_cast<double>(min),
                    static_cast<double>(max), {}, std::move(aliases), std::move(help)};
}

ParamField FloatParam(std::string name, double default_value, double min, double max, std::string help,
                      std::vector<std::string> aliases) {
  return ParamField{std::move(name), ParamType::kFloat, FormatFloat(default_value), min, max, {}, std::move(aliases),
                    std::move(help)};
}

ParamField BoolParam(std::string name, bool default_value, std::string help, std::vector<std::string> aliases) {
  return ParamField{std::move(name), ParamType::kBool, default_value ? "true" : "false", 0, 1, {},
                    std::move(aliases), std::move(help)};
}

ParamField ChoiceParam(std::string name, std::string default_value, std::vector<std::string> choices,
                       std::string help, std::vector<std::string> aliases) {
  return ParamField{std::move(name), ParamType::kChoice, std::move(default_value), 0, 0, std::move(choices),
                    std::move(aliases), std::move(help)};
}

const std::string& ParamValues::Get(std::string_view name) const {
  auto it = values_.find(std::string(name));
  if (it == values_.end()) throw ConfigError(fmt::format("{}: internal: no parameter '{}'", family_, name));
  return it->second;
}

long long ParamValues::Int(std::string_view name) const { return std::stoll(Get(name)); }
double ParamValues::Float(std::string_view name) const { return std::stod(Get(name)); }
bool ParamValues::Bool(std::string_view name) const { return Get(name) == "true"; }
const std::string& ParamValues::Choice(std::string_view name) const { return Get(name); }

std::string ParamValues::CanonicalSpec() const {
  std::string spec = family_;
  bool first = true;
  for (const auto& [key, value] : values_) {
    spec += first ? ':' : ',';
    first = false;
    spec += key;
    spec += '=';
    spec += value;
  }
  return spec;
}

ParamValues ParamsFromMap(std::string_view family, const std::vector<ParamField>& fields,
                          const std::map<std::string, std::string>& entries, std::string_view origin) {
  std::map<std::string, std::string> values;
  for (const auto& [key, text] : entries) {
    const ParamField* field = FindField(fields, key);
    if (field == nullptr) {
      throw ConfigError(fmt::format("{}{}: unknown parameter '{}' (valid: {})", origin, family, key,
                                    fields.empty() ? std::string("none") : ValidNames(fields)));
    }
    if (values.count(field->name) != 0) {
      throw ConfigError(fmt::format("{}{}: parameter '{}' given twice", origin, family, field->name));
    }
    values[field->name] = Canonical(family, *field, text);
  }
  for (const auto& field : fields) {
    if (values.count(field.name) == 0) values[field.name] = field.default_value;
  }
  return ParamValues(std::string(family), std::move(values));
}

ParamValues ParseParams(std::string_view family, const std::vector<ParamField>& fields, std::string_view text) {
  std::map<std::string, std::string> entries;
  std::vector<std::string> order;
  while (!text.empty()) {
    std::size_t comma = text.find(',');
    std::string_view part = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (part.empty()) continue;
    std::size_t eq = part.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      throw ConfigError(fmt::format("{}: '{}' is not key=value (valid keys: {})", family, part, ValidNames(fields)));
    }
    std::string key(part.substr(0, eq));
    if (entries.count(key) != 0) throw ConfigError(fmt::format("{}: parameter '{}' given twice", family, key));
    entries[key] = std::string(part.substr(eq + 1));
  }
  return ParamsFromMap(family, fields, entries, "");
}

std::pair<std::string, std::string> SplitSpec(std::string_view spec) {
  std::size_t colon = spec.find(':');
  if (colon == std::string_view::npos) return {std::string(spec), std::string()};
  return {std::string(spec.substr(0, colon)), std::string(spec.substr(colon + 1))};
}

std::string DescribeFields(const std::vector<ParamField>& fields) {
  std::string out;
  for (const auto& field : fields) {
    std::string range;
    if (field.type == ParamType::kInt) {
      range = fmt::format(" [{}, {}]", static_cast<long long>(field.min), static_cast<long long>(field.max));
    } else if (field.type == ParamType::kFloat) {
      range = fmt::format(" [{}, {}]", FormatFloat(field.min), FormatFloat(field.max));
    } else if (field.type == ParamType::kChoice) {
      range = fmt::format(" {{{}}}", fmt::join(field.choices, "|"));
    }
    std::string aliases = field.aliases.empty() ? "" : fmt::format(" (alias {})", fmt::join(field.aliases, ", "));
    out += fmt::format("  {}{}: {} = {}{}  {}\n", field.name, aliases, TypeName(field.type), field.default_value,
                       range, field.help);
  }
  return out;
}

}  // namespace recforge::models

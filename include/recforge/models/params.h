// Model parameters declared once per family (STYLE.md §5): every field has its main
// name, aliases, type, default, valid range and a one-line description. The same
// table drives the spec-string parser, YAML configs, --help, docs/models.md and the
// params recorded by tracking.
//
// A spec is "family:key=value,key=value". Parsing checks every key (an unknown key is
// an error listing the valid ones), every value (type and range) and fills defaults.
// The canonical spec uses main names, sorted keys and every field, so it round-trips
// and serves as the config id.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace recforge::models {

enum class ParamType { kInt, kFloat, kBool, kChoice };

struct ParamField {
  std::string name;                  // main name, used in output
  ParamType type = ParamType::kFloat;
  std::string default_value;         // canonical text of the default
  double min = 0;                    // inclusive bounds for kInt / kFloat
  double max = 0;
  std::vector<std::string> choices;  // kChoice: the allowed values
  std::vector<std::string> aliases;  // accepted on input only
  std::string help;
};

// Builders for readable field tables.
ParamField IntParam(std::string name, long long default_value, long long min, long long max, std::string help,
                    std::vector<std::string> aliases = {});
ParamField FloatParam(std::string name, double default_value, double min, double max, std::string help,
                      std::vector<std::string> aliases = {});
ParamField BoolParam(std::string name, bool default_value, std::string help, std::vector<std::string> aliases = {});
ParamField ChoiceParam(std::string name, std::string default_value, std::vector<std::string> choices,
                       std::string help, std::vector<std::string> aliases = {});

// Validated values of one family's fields, keyed by main name (text, canonical form).
class ParamValues {
 public:
  ParamValues() = default;
  ParamValues(std::string family, std::map<std::string, std::string> values)
      : family_(std::move(family)), values_(std::move(values)) {}

  const std::string& family() const { return family_; }
  long long Int(std::string_view name) const;
  double Float(std::string_view name) const;
  bool Bool(std::string_view name) const;
  const std::string& Choice(std::string_view name) const;
  const std::map<std::string, std::string>& values() const { return values_; }

  // "family:key=value,..." with sorted keys and every field.
  std::string CanonicalSpec() const;

 private:
  const std::string& Get(std::string_view name) const;
  std::string family_;
  std::map<std::string, std::string> values_;
};

// Parses "key=value,key=value" for the given fields (the part after "family:").
// Throws ConfigError naming the family and key; unknown keys list the valid ones.
ParamValues ParseParams(std::string_view family, const std::vector<ParamField>& fields, std::string_view text);

// Same from a key -> value map (YAML); `origin` names the source in errors.
ParamValues ParamsFromMap(std::string_view family, const std::vector<ParamField>& fields,
                          const std::map<std::string, std::string>& entries, std::string_view origin);

// Splits "family:rest" (rest may be empty).
std::pair<std::string, std::string> SplitSpec(std::string_view spec);

// One line per field: "name (aliases) type default [range]: help".
std::string DescribeFields(const std::vector<ParamField>& fields);

}  // namespace recforge::models

#include "recforge/ops/sweep.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>
#include <unordered_set>

#include "recforge/core/error.h"
#include "recforge/core/file_io.h"
#include "recforge/core/random.h"
#include "recforge/data/dataset.h"
#include "recforge/data/ingest.h"
#include "recforge/models/registry.h"
#include "recforge/ops/resource_monitor.h"
#include "recforge/tracking/store.h"

namespace recforge::ops {

using nlohmann::json;

namespace {

// ---- YAML helpers -------------------------------------------------------------------

// "origin:LINE:COLUMN: " of a node (yaml-cpp marks are 0-based).
std::string At(const std::string& origin, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.line < 0) return origin + ": ";
  return fmt::format("{}:{}:{}: ", origin, mark.line + 1, mark.column + 1);
}

std::string Joined(const std::vector<std::string>& names) { return fmt::format("{}", fmt::join(names, ", ")); }

std::string Scalar(const std::string& origin, const YAML::Node& node, const std::string& key) {
  if (!node.IsScalar()) throw ConfigError(fmt::format("{}'{}' must be a single value", At(origin, node), key));
  return node.Scalar();
}

// A scalar or a list of scalars, as text.
std::vector<std::string> ScalarList(const std::string& origin, const YAML::Node& node, const std::string& key) {
  std::vector<std::string> values;
  if (node.IsScalar()) {
    values.push_back(node.Scalar());
  } else if (node.IsSequence()) {
    for (const auto& item : node) values.push_back(Scalar(origin, item, key));
    if (values.empty()) throw ConfigError(fmt::format("{}'{}' is an empty list", At(origin, node), key));
  } else {
    throw ConfigError(fmt::format("{}'{}' must be a value or a list of values", At(origin, node), key));
  }
  return values;
}

// The scalar nodes of a scalar-or-list value (for per-item error positions).
std::vector<YAML::Node> ScalarNodes(const YAML::Node& node) {
  std::vector<YAML::Node> nodes;
  if (node.IsSequence()) {
    for (const auto& item : node) nodes.push_back(item);
  } else {
    nodes.push_back(node);
  }
  return nodes;
}

template <typename T>
T ParseNumber(const std::string& text, const std::string& where, const std::string& key) {
  auto bad = [&] { return ConfigError(fmt::format("{}'{}': '{}' is not a valid number", where, key, text)); };
  try {
    std::size_t used = 0;
    if constexpr (std::is_floating_point_v<T>) {
      double value = std::stod(text, &used);
      if (used != text.size() || !std::isfinite(value)) throw bad();
      return static_cast<T>(value);
    } else {
      if (!text.empty() && text[0] == '-') throw bad();
      unsigned long long value = std::stoull(text, &used);
      if (used != text.size() || value > std::numeric_limits<T>::max()) throw bad();
      return static_cast<T>(value);
    }
  } catch (const std::logic_error&) {
    throw bad();
  }
}

std::string ValueText(const json& value) {
  if (value.is_null()) return "none";
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

// ---- prepare keys -------------------------------------------------------------------

// Applies one `prepare` key; throws ConfigError (prefixed by `where`).
void ApplyPrepareKey(data::PrepareOptions& options, const std::string& key, const std::string& text,
                     const std::string& where) {
  try {
    if (key == "dedup") options.dedup = data::ParseDedupPolicy(text);
    else if (key == "split") options.split = data::ParseSplitStrategy(text);
    else if (key == "cold") options.cold = data::ParseColdPolicy(text);
    else if (key == "min_rating") options.min_rating = ParseNumber<float>(text, where, key);
    else if (key == "implicit_threshold") options.implicit_threshold = ParseNumber<float>(text, where, key);
    else if (key == "min_user") options.min_user = ParseNumber<std::uint32_t>(text, where, key);
    else if (key == "min_item") options.min_item = ParseNumber<std::uint32_t>(text, where, key);
    else if (key == "test_ratio") options.test_ratio = ParseNumber<double>(text, where, key);
    else if (key == "val_ratio") options.val_ratio = ParseNumber<double>(text, where, key);
    else if (key == "last_n") options.last_n = ParseNumber<std::uint32_t>(text, where, key);
    else if (key == "val_n") options.val_n = ParseNumber<std::uint32_t>(text, where, key);
    else if (key == "seed") options.seed = ParseNumber<std::uint64_t>(text, where, key);
    else throw ConfigError(fmt::format("{}unknown prepare key '{}' (valid: {})", where, key, Joined(SweepPrepareKeys())));
  } catch (const InvalidArgument& error) {
    throw ConfigError(where + error.what());
  }
}

// ---- the grids as mixed-radix spaces -----------------------------------------------

// A cartesian product of key -> values lists (keys in sorted order), addressed by index.
struct Product {
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  std::uint64_t Size() const {
    std::uint64_t size = 1;
    for (const auto& axis : axes) {
      if (size > std::numeric_limits<std::uint64_t>::max() / axis.second.size()) {
        return std::numeric_limits<std::uint64_t>::max();
      }
      size *= axis.second.size();
    }
    return size;
  }
  // Row-major: the last key varies fastest.
  std::map<std::string, std::string> At(std::uint64_t index) const {
    std::map<std::string, std::string> values;
    for (std::size_t a = axes.size(); a-- > 0;) {
      const auto& [key, list] = axes[a];
      values[key] = list[index % list.size()];
      index /= list.size();
    }
    return values;
  }
};

struct ModelSpace {
  std::vector<std::string> families;  // sorted
  std::vector<Product> products;
  std::vector<std::uint64_t> offsets;  // first index of each family
  std::uint64_t size = 0;

  explicit ModelSpace(const SweepConfig& config) {
    for (const auto& [family, grid] : config.model_grid) {
      Product product;
      for (const auto& [key, values] : grid) product.axes.emplace_back(key, values);
      families.push_back(family);
      offsets.push_back(size);
      std::uint64_t count = product.Size();
      size = count > std::numeric_limits<std::uint64_t>::max() - size ? std::numeric_limits<std::uint64_t>::max()
                                                                       : size + count;
      products.push_back(std::move(product));
    }
  }
  // (family, entries as written)
  std::pair<std::string, std::map<std::string, std::string>> At(std::uint64_t index) const {
    std::size_t f = static_cast<std::size_t>(
        std::upper_bound(offsets.begin(), offsets.end(), index) - offsets.begin() - 1);
    return {families[f], products[f].At(index - offsets[f])};
  }
};

models::ParamValues ModelParams(const std::string& family, const std::map<std::string, std::string>& entries,
                                const std::string& origin) {
  const auto& fam = models::FindFamily(family);
  return models::ParamsFromMap(fam.name, fam.fields(), entries, origin + ": models.");
}

// "ials factors=32 reg=0.01": the family and the keys the sweep file gives, as written.
std::string ModelLabel(const std::string& family, const std::map<std::string, std::string>& entries) {
  std::string label = family;
  for (const auto& [key, value] : entries) label += fmt::format(" {}={}", key, value);
  return label;
}

std::string Sha256Text(std::string_view text) {
  Sha256 hasher;
  hasher.Update(text);
  return hasher.HexDigest();
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// ---- keys ---------------------------------------------------------------------------

const std::vector<std::string>& SweepKeys() {
  static const std::vector<std::string> keys = {
      "direction", "eval",   "experiment", "format", "input",      "max_parallel", "memory_budget", "metric",
      "models",    "prepare", "search",    "seed",   "threads_per_trial", "train_seed", "trials"};
  return keys;
}

const std::vector<std::string>& SweepPrepareKeys() {
  static const std::vector<std::string> keys = {"cold",     "dedup",      "implicit_threshold", "last_n",
                                                "min_item", "min_rating", "min_user",           "seed",
                                                "split",    "test_ratio", "val_n",              "val_ratio"};
  return keys;
}

const std::vector<std::string>& SweepEvalKeys() {
  static const std::vector<std::string> keys = {"k", "metrics", "part", "protocol", "relevance_threshold"};
  return keys;
}

// ---- eval ---------------------------------------------------------------------------

eval::EvalOptions SweepEval::ToOptions() const {
  eval::EvalOptions options;
  options.ks = ks;
  options.metrics = metrics;
  auto [protocol_kind, negatives] = eval::EvalOptions::ParseProtocol(protocol);
  options.protocol = protocol_kind;
  if (protocol_kind == eval::Protocol::kSampled) options.sampled_negatives = negatives;
  options.relevance_threshold = relevance_threshold;
  options.part = part;
  options.bootstrap_samples = 0;
  options.Validate();
  return options;
}

json SweepEval::ToJson() const {
  std::vector<int> sorted = ks;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::vector<std::string> names = metrics;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return {{"k", sorted},
          {"metrics", names},
          {"part", part},
          {"protocol", protocol},
          {"relevance_threshold", relevance_threshold ? json(*relevance_threshold) : json(nullptr)}};
}

// ---- parsing ------------------------------------------------------------------------

namespace {

void ParseEval(const std::string& origin, const YAML::Node& node, SweepConfig& config, bool& ks_given) {
  if (!node.IsMap()) throw ConfigError(fmt::format("{}'eval' must be a mapping", At(origin, node)));
  for (const auto& entry : node) {
    const std::string key = entry.first.as<std::string>();
    const YAML::Node& value = entry.second;
    const std::string where = At(origin, value);
    if (key == "k") {
      config.eval.ks.clear();
      for (const auto& text : ScalarList(origin, value, "eval.k")) {
        int k = ParseNumber<int>(text, where, "eval.k");
        if (k < 1) throw ConfigError(fmt::format("{}'eval.k' must be >= 1, got {}", where, k));
        config.eval.ks.push_back(k);
      }
      ks_given = true;
    } else if (key == "metrics") {
      config.eval.metrics = ScalarList(origin, value, "eval.metrics");
      for (const auto& name : config.eval.metrics) {
        const auto& valid = eval::MetricNames();
        if (std::find(valid.begin(), valid.end(), name) == valid.end()) {
          throw ConfigError(fmt::format("{}unknown metric '{}' (valid: {})", where, name, Joined(valid)));
        }
      }
    } else if (key == "relevance_threshold") {
      if (value.IsNull()) {
        config.eval.relevance_threshold.reset();
      } else {
        config.eval.relevance_threshold = ParseNumber<float>(Scalar(origin, value, key), where, "eval." + key);
      }
    } else if (key == "protocol") {
      config.eval.protocol = Scalar(origin, value, key);
      try {
        eval::EvalOptions::ParseProtocol(config.eval.protocol);
      } catch (const InvalidArgument& error) {
        throw ConfigError(where + error.what());
      }
    } else if (key == "part") {
      config.eval.part = Scalar(origin, value, key);
      if (config.eval.part != "test" && config.eval.part != "val") {
        throw ConfigError(fmt::format("{}'eval.part' must be test or val, got '{}'", where, config.eval.part));
      }
    } else {
      throw ConfigError(fmt::format("{}unknown eval key '{}' (valid: {})", At(origin, entry.first), key,
                                    Joined(SweepEvalKeys())));
    }
  }
}

void ParseModels(const std::string& origin, const YAML::Node& node, SweepConfig& config) {
  if (!node.IsMap() || node.size() == 0) {
    throw ConfigError(fmt::format("{}'models' must map model families to parameter grids, e.g. "
                                  "{{ials: {{factors: [32, 64]}}}}",
                                  At(origin, node)));
  }
  for (const auto& entry : node) {
    const std::string family = entry.first.as<std::string>();
    const models::ModelFamily* fam = nullptr;
    try {
      fam = &models::FindFamily(family);
    } catch (const ConfigError& error) {
      throw ConfigError(At(origin, entry.first) + "models: " + error.what());
    }
    if (config.model_grid.count(fam->name)) {
      throw ConfigError(fmt::format("{}model family '{}' given twice", At(origin, entry.first), family));
    }
    auto& grid = config.model_grid[fam->name];
    const YAML::Node& params = entry.second;
    if (params.IsNull()) continue;  // `pop:` = the defaults
    if (!params.IsMap()) {
      throw ConfigError(fmt::format("{}'models.{}' must be a mapping of parameters to values or lists",
                                    At(origin, params), family));
    }
    const auto fields = fam->fields();
    for (const auto& param : params) {
      const std::string key = param.first.as<std::string>();
      auto values = ScalarList(origin, param.second, fmt::format("models.{}.{}", family, key));
      // Every value through the registry's parser: unknown keys list the valid ones.
      const auto nodes = ScalarNodes(param.second);
      for (std::size_t v = 0; v < values.size(); ++v) {
        try {
          models::ParamsFromMap(fam->name, fields, {{key, values[v]}}, "models.");
        } catch (const ConfigError& error) {
          const bool unknown = std::string_view(error.what()).find("unknown parameter") != std::string_view::npos;
          throw ConfigError(At(origin, unknown ? param.first : nodes[v]) + error.what());
        }
      }
      grid[key] = std::move(values);
    }
    // Aliases of one field given twice (factors and rank) are caught here.
    std::map<std::string, std::string> first;
    for (const auto& [key, values] : grid) first[key] = values.front();
    try {
      models::ParamsFromMap(fam->name, fields, first, "models.");
    } catch (const ConfigError& error) {
      throw ConfigError(At(origin, params) + error.what());
    }
  }
}

}  // namespace

SweepConfig ParseSweepConfig(const std::string& yaml_text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& error) {
    throw ConfigError(fmt::format("{}:{}:{}: invalid YAML: {}", origin, error.mark.line + 1, error.mark.column + 1,
                                  error.msg));
  }
  if (!root.IsMap()) {
    throw ConfigError(fmt::format("{}: a sweep file is a mapping with at least 'input' and 'models' (valid keys: {})",
                                  origin, Joined(SweepKeys())));
  }
  SweepConfig config;
  config.origin = origin;
  bool ks_given = false, direction_given = false;
  std::set<std::string> seen;
  for (const auto& entry : root) {
    const std::string key = entry.first.as<std::string>();
    const YAML::Node& value = entry.second;
    const std::string where = At(origin, value);
    if (!seen.insert(key).second) {
      throw ConfigError(fmt::format("{}key '{}' given twice", At(origin, entry.first), key));
    }
    if (key == "experiment") {
      config.experiment = Scalar(origin, value, key);
      if (config.experiment.empty()) throw ConfigError(where + "'experiment' is empty");
    } else if (key == "input") {
      config.inputs = ScalarList(origin, value, key);
    } else if (key == "format") {
      config.format = Scalar(origin, value, key);
      try {
        data::ParseInputFormat(config.format);
      } catch (const InvalidArgument& error) {
        throw ConfigError(where + error.what());
      }
    } else if (key == "prepare") {
      if (value.IsNull()) continue;
      if (!value.IsMap()) throw ConfigError(where + "'prepare' must be a mapping of prepare options");
      for (const auto& option : value) {
        const std::string name = option.first.as<std::string>();
        const auto& valid = SweepPrepareKeys();
        if (std::find(valid.begin(), valid.end(), name) == valid.end()) {
          throw ConfigError(fmt::format("{}unknown prepare key '{}' (valid: {})", At(origin, option.first), name,
                                        Joined(valid)));
        }
        auto values = ScalarList(origin, option.second, "prepare." + name);
        const auto nodes = ScalarNodes(option.second);
        for (std::size_t v = 0; v < values.size(); ++v) {
          data::PrepareOptions probe;
          ApplyPrepareKey(probe, name, values[v], At(origin, nodes[v]));
        }
        config.prepare_grid[name] = std::move(values);
      }
    } else if (key == "models") {
      ParseModels(origin, value, config);
    } else if (key == "metric") {
      config.metric = Scalar(origin, value, key);
      std::string base = config.metric.substr(0, config.metric.find('@'));
      const auto& valid = eval::MetricNames();
      if (std::find(valid.begin(), valid.end(), base) == valid.end()) {
        throw ConfigError(fmt::format("{}unknown metric '{}' (valid: {}, with @K where it takes a cut-off)", where,
                                      config.metric, Joined(valid)));
      }
      if (auto at = config.metric.find('@'); at != std::string::npos) {
        int k = ParseNumber<int>(config.metric.substr(at + 1), where, "metric");
        if (k < 1) throw ConfigError(fmt::format("{}metric '{}': K must be >= 1", where, config.metric));
      }
    } else if (key == "direction") {
      std::string direction = Scalar(origin, value, key);
      if (direction != "maximize" && direction != "minimize") {
        throw ConfigError(fmt::format("{}'direction' must be maximize or minimize, got '{}'", where, direction));
      }
      config.maximize = direction == "maximize";
      direction_given = true;
    } else if (key == "eval") {
      ParseEval(origin, value, config, ks_given);
    } else if (key == "search") {
      std::string search = Scalar(origin, value, key);
      if (search == "grid") config.search = SearchKind::kGrid;
      else if (search == "random") config.search = SearchKind::kRandom;
      else throw ConfigError(fmt::format("{}'search' must be grid or random, got '{}'", where, search));
    } else if (key == "trials") {
      config.trials = ParseNumber<std::size_t>(Scalar(origin, value, key), where, key);
      if (config.trials < 1) throw ConfigError(where + "'trials' must be >= 1");
    } else if (key == "seed") {
      config.seed = ParseNumber<std::uint64_t>(Scalar(origin, value, key), where, key);
    } else if (key == "train_seed") {
      config.train_seed = ParseNumber<std::uint64_t>(Scalar(origin, value, key), where, key);
    } else if (key == "max_parallel") {
      config.max_parallel = ParseNumber<int>(Scalar(origin, value, key), where, key);
      if (config.max_parallel < 1) throw ConfigError(where + "'max_parallel' must be >= 1");
    } else if (key == "threads_per_trial") {
      config.threads_per_trial = ParseNumber<int>(Scalar(origin, value, key), where, key);
      if (config.threads_per_trial < 1) throw ConfigError(where + "'threads_per_trial' must be >= 1");
    } else if (key == "memory_budget") {
      try {
        config.memory_budget = ParseByteSize(Scalar(origin, value, key));
      } catch (const InvalidArgument& error) {
        throw ConfigError(where + "'memory_budget': " + error.what());
      }
    } else {
      throw ConfigError(fmt::format("{}unknown key '{}' (valid: {})", At(origin, entry.first), key,
                                    Joined(SweepKeys())));
    }
  }
  // The metric's cut-off is measured by default; an explicit k list must contain it.
  if (auto at = config.metric.find('@'); at != std::string::npos) {
    int k = std::stoi(config.metric.substr(at + 1));
    if (!ks_given) {
      config.eval.ks = {k};
    } else if (std::find(config.eval.ks.begin(), config.eval.ks.end(), k) == config.eval.ks.end()) {
      throw ConfigError(fmt::format("{}: metric '{}' needs K={} in eval.k ({})", origin, config.metric, k,
                                    fmt::join(config.eval.ks, ", ")));
    }
  }
  std::string base = config.metric.substr(0, config.metric.find('@'));
  if (!direction_given && (base == "rmse" || base == "mae")) config.maximize = false;
  if (!config.eval.metrics.empty() &&
      std::find(config.eval.metrics.begin(), config.eval.metrics.end(), base) == config.eval.metrics.end()) {
    throw ConfigError(fmt::format("{}: metric '{}' is not among eval.metrics ({})", origin, config.metric,
                                  Joined(config.eval.metrics)));
  }
  if (config.model_grid.empty()) {
    throw ConfigError(fmt::format("{}: missing 'models' (e.g. models: {{ials: {{factors: [32, 64]}}}})", origin));
  }
  if (config.search == SearchKind::kRandom && config.trials == 0) {
    throw ConfigError(fmt::format("{}: search: random needs 'trials: N'", origin));
  }
  if (config.search == SearchKind::kGrid && config.trials > 0) {
    throw ConfigError(fmt::format("{}: 'trials' applies to search: random only", origin));
  }
  return config;
}

SweepConfig LoadSweepConfig(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw IoError(fmt::format("{}: cannot read sweep file", path.string()));
  return ParseSweepConfig(ReadFileToString(path), path.string());
}

void SweepConfig::Validate() const {
  if (inputs.empty()) throw ConfigError(fmt::format("{}: missing 'input' (raw files or a dataset directory)", origin));
  if (model_grid.empty()) throw ConfigError(fmt::format("{}: missing 'models'", origin));
  if (search == SearchKind::kRandom && trials == 0) {
    throw ConfigError(fmt::format("{}: search: random needs 'trials: N'", origin));
  }
  if (max_parallel < 0 || threads_per_trial < 1) {
    throw ConfigError(fmt::format("{}: max_parallel and threads_per_trial must be >= 1", origin));
  }
}

// ---- input --------------------------------------------------------------------------

SweepInput ResolveInput(const std::vector<std::string>& inputs) {
  if (inputs.empty()) throw InvalidArgument("sweep: no input given");
  SweepInput input;
  for (const auto& text : inputs) input.paths.emplace_back(text);
  std::error_code ec;
  for (const auto& path : input.paths) {
    if (!fs::exists(path, ec)) throw IoError(fmt::format("{}: input does not exist", path.string()));
  }
  if (input.paths.size() == 1 && fs::is_directory(input.paths[0], ec)) {
    const fs::path& dir = input.paths[0];
    json meta = data::ReadMeta(dir);
    input.kind = data::IsPreparedDir(dir) ? InputKind::kPrepared : InputKind::kRawDataset;
    input.hash = meta.value("content_hash", std::string());
    if (input.hash.empty()) input.hash = Sha256File(dir / "meta.json");
    return input;
  }
  input.kind = InputKind::kRawFiles;
  Sha256 combined;
  for (const auto& path : input.paths) {
    if (fs::is_directory(path, ec)) {
      throw InvalidArgument(fmt::format("{}: a dataset directory must be the only input", path.string()));
    }
    combined.Update(Sha256File(path));
  }
  input.hash = combined.HexDigest();
  return input;
}

// ---- expansion ----------------------------------------------------------------------

json PrepareConfig::ToJson() const { return as_is ? json{{"as_is", true}} : options.ToJson(); }

std::string PrepareConfig::Label() const {
  if (as_is) return "as is";
  std::string label;
  for (const auto& [key, value] : values) label += fmt::format("{}{}={}", label.empty() ? "" : " ", key, value);
  return label.empty() ? "defaults" : label;
}

std::map<std::string, std::string> Trial::Params(const PrepareConfig& prepare) const {
  std::map<std::string, std::string> params = model.values();
  params["family"] = model.family();
  params["model"] = model.CanonicalSpec();
  if (prepare.as_is) {
    params["prepare"] = "as_is";
  } else {
    const json options = prepare.options.ToJson();  // items() must not outlive it
    for (const auto& [key, value] : options.items()) params["prepare." + key] = ValueText(value);
  }
  return params;
}

std::string ConfigId(const std::string& input_hash, const json& prepare, const std::string& canonical_model_spec,
                     const SweepEval& eval, std::uint64_t train_seed, const std::string& format) {
  json canonical = {{"eval", eval.ToJson()},          {"format", format},
                    {"input", input_hash},             {"model", canonical_model_spec},
                    {"prepare", prepare},              {"train_seed", train_seed}};
  return Sha256Text(canonical.dump()).substr(0, 16);
}

SweepPlan ExpandSweep(const SweepConfig& config, const SweepInput& input) {
  SweepPlan plan;
  const std::string& origin = config.origin;
  // Preprocessing configs.
  Product prepare_space;
  for (const auto& [key, values] : config.prepare_grid) prepare_space.axes.emplace_back(key, values);
  if (input.kind == InputKind::kPrepared) {
    if (!config.prepare_grid.empty()) {
      throw ConfigError(fmt::format("{}: input {} is already prepared: remove the 'prepare' section, or give the "
                                    "raw data",
                                    origin, input.paths[0].string()));
    }
    PrepareConfig as_is;
    as_is.as_is = true;
    plan.prepares.push_back(as_is);
  } else {
    const std::uint64_t count = prepare_space.Size();
    if (count > kMaxGridTrials) {
      throw ConfigError(fmt::format("{}: {} preprocessing configs are too many (at most {})", origin, count,
                                    kMaxGridTrials));
    }
    for (std::uint64_t p = 0; p < count; ++p) {
      PrepareConfig prepare;
      prepare.index = plan.prepares.size();
      auto values = prepare_space.At(p);
      for (const auto& [key, value] : values) ApplyPrepareKey(prepare.options, key, value, origin + ": ");
      prepare.values = values;
      try {
        prepare.options.Validate();
      } catch (const InvalidArgument& error) {
        throw ConfigError(fmt::format("{}: prepare combination {{{}}} is invalid: {} (split the sweep in two)", origin,
                                      prepare.Label(), error.what()));
      }
      plan.prepares.push_back(std::move(prepare));
    }
  }
  const ModelSpace models_space(config);
  const std::uint64_t n_prepare = plan.prepares.size();
  plan.model_configs = models_space.size;
  plan.space_size = models_space.size > std::numeric_limits<std::uint64_t>::max() / n_prepare
                        ? std::numeric_limits<std::uint64_t>::max()
                        : models_space.size * n_prepare;

  // Which (prepare, model) indices to run.
  std::vector<std::uint64_t> chosen;
  if (config.search == SearchKind::kGrid) {
    if (plan.space_size > kMaxGridTrials) {
      throw ConfigError(fmt::format("{}: the grid has {} configs (at most {}): use search: random with trials: N",
                                    origin, plan.space_size, kMaxGridTrials));
    }
    chosen.resize(plan.space_size);
    for (std::uint64_t k = 0; k < plan.space_size; ++k) chosen[k] = k;
  } else {
    const std::uint64_t want = std::min<std::uint64_t>(config.trials, plan.space_size);
    if (want > kMaxGridTrials) {
      throw ConfigError(fmt::format("{}: trials {} is too many (at most {})", origin, want, kMaxGridTrials));
    }
    Rng rng(DeriveSeed(config.seed, 0x5eed));
    // Uniform in [0, n) without modulo bias.
    auto below = [&](std::uint64_t n) {
      const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % n;
      std::uint64_t draw;
      do draw = rng(); while (draw >= limit);
      return draw % n;
    };
    if (want == plan.space_size) {
      for (std::uint64_t k = 0; k < want; ++k) chosen.push_back(k);
    } else {
      std::unordered_set<std::uint64_t> taken;
      while (chosen.size() < want) {
        std::uint64_t k = below(plan.space_size);
        if (taken.insert(k).second) chosen.push_back(k);
      }
      std::sort(chosen.begin(), chosen.end());
    }
  }

  // Trials, grouped by prepare config; equal canonical configs kept once.
  std::set<std::string> ids;
  for (std::uint64_t k : chosen) {
    const std::size_t p = static_cast<std::size_t>(k / models_space.size);
    auto [family, entries] = models_space.At(k % models_space.size);
    Trial trial;
    trial.prepare_index = p;
    trial.model = ModelParams(family, entries, origin);
    trial.config_id = ConfigId(input.hash, plan.prepares[p].ToJson(), trial.model.CanonicalSpec(), config.eval,
                               config.train_seed, config.format);
    if (!ids.insert(trial.config_id).second) continue;
    trial.label = ModelLabel(family, entries);
    // Only the prepare keys that vary in the grid help tell configs apart.
    std::string prepare_label;
    for (const auto& [key, value] : plan.prepares[p].values) {
      if (config.prepare_grid.at(key).size() > 1) prepare_label += fmt::format(" {}={}", key, value);
    }
    if (!prepare_label.empty()) trial.label += " |" + prepare_label;
    trial.index = plan.trials.size();
    plan.trials.push_back(std::move(trial));
  }
  return plan;
}

// ---- memory -------------------------------------------------------------------------

DataShape ShapeOf(const data::PreparedDataset& prepared) {
  DataShape shape;
  shape.n_users = prepared.users.size();
  shape.n_items = prepared.items.size();
  shape.train_rows = prepared.train.size();
  shape.total_rows = prepared.train.size() + prepared.test.size() + (prepared.val ? prepared.val->size() : 0);
  return shape;
}

DataShape ReadShape(const fs::path& prepared_dir) {
  json meta = data::ReadMeta(prepared_dir);
  DataShape shape;
  shape.n_users = meta.value("n_users", std::uint64_t{0});
  shape.n_items = meta.value("n_items", std::uint64_t{0});
  for (const char* part : {"train", "val", "test"}) {
    std::error_code ec;
    if (!fs::exists(prepared_dir / part / "meta.json", ec)) continue;
    std::uint64_t rows = data::ReadMeta(prepared_dir / part).value("rows", std::uint64_t{0});
    shape.total_rows += rows;
    if (std::string_view(part) == "train") shape.train_rows = rows;
  }
  return shape;
}

std::uint64_t EstimateTrialBytes(const DataShape& shape, const models::ParamValues& model, int threads) {
  const double users = static_cast<double>(shape.n_users), items = static_cast<double>(shape.n_items);
  const double t = std::max(1, threads);
  const auto& values = model.values();
  auto number = [&](const char* name, double fallback) {
    auto found = values.find(name);
    if (found == values.end()) return fallback;
    try {
      return std::stod(found->second);
    } catch (const std::logic_error&) {
      return fallback;
    }
  };
  double bytes = 24.0 * (1 << 20);                                     // the process itself
  bytes += 20.0 * static_cast<double>(shape.total_rows);               // loaded columns
  bytes += 2.0 * (8.0 * static_cast<double>(shape.train_rows) + 8.0 * (users + items + 2));  // CSR x2
  bytes += t * 256.0 * items * 4.0;                                    // scoring chunks
  const std::string& family = model.family();
  if (family == "ials" || family == "als" || family == "svd" || family == "mf" || family == "nmf" ||
      family == "bpr") {
    double factors = number("factors", number("rank", 64));
    double model_bytes = (users + items) * factors * 4.0;
    if (family == "ials" || family == "als") {
      bytes += 2.0 * model_bytes + t * factors * factors * 8.0 * 2;  // factors + solver state per thread
    } else if (family == "svd") {
      bytes += (users + items) * (factors + number("oversample", 10)) * 8.0 * 3;  // double range finder
    } else {
      bytes += 1.5 * model_bytes;
    }
  } else if (family == "itemknn") {
    bytes += items * number("neighbors", 20) * 8.0 * 2 + t * items * 8.0;
  } else if (family == "userknn") {
    bytes += users * number("neighbors", 50) * 8.0 * 2 + t * users * 8.0;
  } else if (family == "assoc") {
    bytes += items * number("rules", 100) * 8.0 * 2 + t * items * 8.0;
  } else if (family == "pop" || family == "random") {
    bytes += items * 8.0;
  } else {
    bytes += (users + items) * 64 * 4.0;  // a family added later: a factor model's worth
  }
  return static_cast<std::uint64_t>(bytes);
}

// ---- trial --------------------------------------------------------------------------

json TrialSpec::ToJson() const {
  return {{"run_id", run_id}, {"tracking", tracking}, {"artifacts", artifacts}, {"dataset", dataset}, {"model", model},
          {"eval", eval.ToJson()}, {"seed", seed}, {"result", result}};
}

TrialSpec TrialSpec::FromJson(const json& j) {
  try {
    TrialSpec spec;
    spec.run_id = j.at("run_id").get<std::string>();
    spec.tracking = j.at("tracking").get<std::string>();
    spec.artifacts = j.value("artifacts", std::string());
    spec.dataset = j.at("dataset").get<std::string>();
    spec.model = j.at("model").get<std::string>();
    spec.seed = j.at("seed").get<std::uint64_t>();
    spec.result = j.at("result").get<std::string>();
    const json& e = j.at("eval");
    spec.eval.ks = e.at("k").get<std::vector<int>>();
    spec.eval.metrics = e.at("metrics").get<std::vector<std::string>>();
    spec.eval.part = e.at("part").get<std::string>();
    spec.eval.protocol = e.at("protocol").get<std::string>();
    if (!e.at("relevance_threshold").is_null()) spec.eval.relevance_threshold = e["relevance_threshold"].get<float>();
    return spec;
  } catch (const json::exception& error) {
    throw FormatError(fmt::format("trial spec: {}", error.what()));
  }
}

json TrialResult::ToJson() const { return {{"metrics", metrics}, {"epochs", epochs}}; }

TrialResult TrialResult::FromJson(const json& j) {
  try {
    TrialResult result;
    for (const auto& [key, value] : j.at("metrics").items()) {
      result.metrics[key] = value.is_number() ? value.get<double>() : std::nan("");
    }
    result.epochs = j.value("epochs", 0);
    return result;
  } catch (const json::exception& error) {
    throw FormatError(fmt::format("trial result: {}", error.what()));
  }
}

TrialResult RunTrial(const TrialSpec& spec, const Context& ctx, tracking::Store* store,
                     const std::function<bool()>& interrupted) {
  using Clock = std::chrono::steady_clock;
  const eval::EvalOptions options = spec.eval.ToOptions();
  auto model = models::CreateModel(models::ParseSpec(spec.model));
  data::PreparedDataset prepared = data::LoadPrepared(spec.dataset);
  models::TrainingData training = models::TrainingData::FromPrepared(prepared, ctx.threads);
  Context fit_ctx = ctx;
  fit_ctx.seed = spec.seed;
  fit_ctx.progress = {};
  TrialResult result;
  models::TrainCallback callback = [&](const models::Recommender&, models::EpochReport& report) {
    result.epochs = report.epoch;
    ctx.log().Info("epoch {}/{}{} ({:.2f}s)", report.epoch, report.epochs,
                   report.has_loss ? fmt::format(" loss={:.6g}", report.loss) : std::string(), report.seconds);
    if (store != nullptr && !spec.run_id.empty() && report.has_loss && std::isfinite(report.loss)) {
      store->LogMetric(spec.run_id, "loss", report.loss, report.epoch);
    }
    if (interrupted && interrupted()) throw Error("trial interrupted");
  };
  auto start = Clock::now();
  model->Fit(training, fit_ctx, callback);
  const double fit_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  start = Clock::now();
  Context eval_ctx = ctx;
  eval_ctx.progress = {};
  eval::EvalReport report = eval::Evaluate(*model, prepared, options, eval_ctx);
  const double eval_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const auto& note : report.notes) ctx.log().Warn("{}", note);
  result.metrics = report.metrics;
  result.metrics["fit_seconds"] = fit_seconds;
  result.metrics["eval_seconds"] = eval_seconds;
  if (store != nullptr && !spec.run_id.empty()) {
    std::vector<tracking::Metric> rows;
    const std::int64_t now = NowMs();
    for (const auto& [key, value] : result.metrics) {
      if (std::isfinite(value)) rows.push_back({key, value, 0, now});
    }
    store->LogMetrics(spec.run_id, rows);
  }
  return result;
}

std::vector<TrialOutcome> RankOutcomes(const std::vector<TrialOutcome>& outcomes, bool maximize, std::size_t n) {
  std::vector<TrialOutcome> ranked;
  for (const auto& outcome : outcomes) {
    if (std::isfinite(outcome.value)) ranked.push_back(outcome);
  }
  std::stable_sort(ranked.begin(), ranked.end(), [&](const TrialOutcome& a, const TrialOutcome& b) {
    if (a.value != b.value) return maximize ? a.value > b.value : a.value < b.value;
    return a.index < b.index;
  });
  if (ranked.size() > n) ranked.resize(n);
  return ranked;
}

}  // namespace recforge::ops
